//! Scalars: quoted and bare strings, booleans, variables, numbers with size
//! suffixes, floats, IP-looking strings, date-times and `( ... )` blocks.
//!
//! The rules mirror nats-server's lexer, because they decide what type a
//! value gets and therefore whether an option accepts it:
//! - a bare word is a string, except `true/false/yes/no/on/off` (any case),
//!   which are booleans, and `$name`, which is a variable;
//! - something starting with a digit is an integer, a float, or, as soon as a
//!   character does not fit, a bare string (`10s`, `1h30m` and `127.0.0.1:4222`
//!   are strings; that is how durations and addresses stay unquoted);
//! - an integer may end in a size suffix: `k m g t p e` are powers of 1000,
//!   the same letters followed by `b`, `i` or `ib` (`KB`, `Ki`, `KiB`) are
//!   powers of 1024, case-insensitive. So `1MB` is 1048576 but `1M` is 1000000.

use super::parser::{is_nl, is_ws, Parser};
use super::value::{Node, Pos, Value};
use super::ConfigError;

/// Characters that end a number (nats-server's list, plus `]`).
fn ends_number(c: Option<char>) -> bool {
    match c {
        None => true,
        Some(c) => is_nl(c) || is_ws(c) || matches!(c, '}' | ']' | ';' | ','),
    }
}

fn is_size_letter(c: char) -> bool {
    matches!(c.to_ascii_lowercase(), 'k' | 'm' | 'g' | 't' | 'p' | 'e')
}

/// Multiplier for a (lower-cased) size suffix; `None` if unknown.
fn size_multiplier(suffix: &str) -> Option<i64> {
    let (letter, rest) = suffix.split_at(suffix.chars().next().map_or(0, char::len_utf8));
    let power = match letter {
        "" => return Some(1),
        "k" => 1,
        "m" => 2,
        "g" => 3,
        "t" => 4,
        "p" => 5,
        "e" => 6,
        _ => return None,
    };
    let base: i64 = match rest {
        "" => 1000,
        "b" | "i" | "ib" => 1024,
        _ => return None,
    };
    base.checked_pow(power)
}

/// Converts integer text (`-12`, `64MB`) to its value.
pub(super) fn integer_value(text: &str) -> Result<i64, String> {
    let digits_end = text
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && c == '-')))
        .map_or(text.len(), |(i, _)| i);
    let (digits, suffix) = text.split_at(digits_end);
    let out_of_range = || format!("integer '{text}' is out of the range");
    let n: i64 = digits.parse().map_err(|_| out_of_range())?;
    let mult = size_multiplier(&suffix.to_ascii_lowercase())
        .ok_or_else(|| format!("invalid size suffix in integer '{text}'"))?;
    n.checked_mul(mult).ok_or_else(out_of_range)
}

impl Parser<'_> {
    /// Parses a scalar starting at the cursor; `pos` is where it starts.
    pub(super) fn parse_scalar(&mut self, pos: Pos) -> Result<Node, ConfigError> {
        let value = match self.peek() {
            Some('\'') => Value::String(self.single_quoted()?),
            Some('"') => Value::String(self.double_quoted()?),
            Some('(') => Value::String(self.block()?),
            Some('-') => self.negative_number()?,
            Some(c) if c.is_ascii_digit() => self.number()?,
            _ => return self.bare_word(pos),
        };
        Ok(Node::new(value, pos))
    }

    /// `'...'`: no escapes at all, which is why passwords go in single quotes.
    fn single_quoted(&mut self) -> Result<String, ConfigError> {
        self.pos += 1;
        let start = self.pos;
        while let Some(c) = self.bump() {
            if c == '\'' {
                return Ok(self.src[start..self.pos - 1].iter().collect());
            }
        }
        Err(self.err("Unexpected EOF."))
    }

    /// `"..."` with escapes `\t \n \r \" \\ \xHH`.
    fn double_quoted(&mut self) -> Result<String, ConfigError> {
        self.pos += 1;
        let mut buf = Vec::new();
        loop {
            match self.bump() {
                None => return Err(self.err("Unexpected EOF.")),
                Some('"') => break,
                Some('\\') => self.escape(&mut buf)?,
                Some(c) => push_char(&mut buf, c),
            }
        }
        self.utf8(buf)
    }

    /// Handles the character after a backslash (already consumed).
    fn escape(&mut self, buf: &mut Vec<u8>) -> Result<(), ConfigError> {
        let c = self.bump();
        let simple = match c {
            Some('t') => '\t',
            Some('n') => '\n',
            Some('r') => '\r',
            Some('"') => '"',
            Some('\\') => '\\',
            Some('x') => {
                let hex: String = (0..2).filter_map(|i| self.peek_at(i)).collect();
                if hex.chars().count() < 2 || hex.chars().any(is_nl) {
                    return Err(self
                        .err("Expected two hexadecimal digits after '\\x', but hit end of line"));
                }
                let byte = u8::from_str_radix(&hex, 16).map_err(|_| {
                    self.err(format!(
                        "Expected two hexadecimal digits after '\\x', but got '{hex}'"
                    ))
                })?;
                self.pos += 2;
                buf.push(byte);
                return Ok(());
            }
            other => {
                let shown = match other {
                    Some('\n') => "\\n".to_string(),
                    Some(c) => c.to_string(),
                    None => String::new(),
                };
                return Err(self.err(format!(
                    "Invalid escape character '{shown}'. Only the following escape characters are allowed: \\xXX, \\t, \\n, \\r, \\\", \\\\."
                )));
            }
        };
        push_char(buf, simple);
        Ok(())
    }

    fn utf8(&self, buf: Vec<u8>) -> Result<String, ConfigError> {
        String::from_utf8(buf)
            .map_err(|_| self.err("string is not valid UTF-8 (check its \\x escapes)"))
    }

    /// `( ... )`: raw text up to a `)` alone on its line. The text keeps its
    /// final newline, as in nats-server.
    fn block(&mut self) -> Result<String, ConfigError> {
        self.pos += 1;
        let start = self.pos;
        while let Some(c) = self.bump() {
            let closes = c == ')'
                && self.pos >= 2
                && self.src.get(self.pos - 2) == Some(&'\n')
                && self.peek().is_none_or(is_nl);
            if closes {
                return Ok(self.src[start..self.pos - 1].iter().collect());
            }
        }
        Err(self.err("Unexpected EOF processing block."))
    }

    /// Unquoted text: a string, boolean or `$variable`.
    fn bare_word(&mut self, pos: Pos) -> Result<Node, ConfigError> {
        let mut buf = Vec::new();
        let mut escaped = false;
        while let Some(c) = self.peek() {
            if is_nl(c) || is_ws(c) || matches!(c, ';' | ',' | ']' | '}') {
                break;
            }
            self.pos += 1;
            match c {
                // A quote ends a bare word and is swallowed (nats-server does).
                '\'' => return Ok(Node::new(Value::String(self.utf8(buf)?), pos)),
                '\\' => {
                    escaped = true;
                    self.escape(&mut buf)?;
                }
                c => push_char(&mut buf, c),
            }
        }
        let word = self.utf8(buf)?;
        if !escaped {
            match word.to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" => return Ok(Node::new(Value::Bool(true), pos)),
                "false" | "no" | "off" => return Ok(Node::new(Value::Bool(false), pos)),
                _ => {}
            }
            if let Some(name) = word.strip_prefix('$') {
                return self.resolve_variable(name, &pos);
            }
        }
        Ok(Node::new(Value::String(word), pos))
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
    }

    fn text_from(&self, start: usize) -> String {
        self.src[start..self.pos].iter().collect()
    }

    /// Something starting with a digit.
    fn number(&mut self) -> Result<Value, ConfigError> {
        let start = self.pos;
        self.digits();
        match self.peek() {
            Some('-') if self.pos - start == 4 => return self.datetime(start),
            Some('-') => return Err(self.err("All ISO8601 dates must be in full Zulu form.")),
            Some('.') => return self.fraction(start),
            Some(c) if is_size_letter(c) => {
                if let Some(v) = self.sized(start)? {
                    return Ok(v);
                }
            }
            c if ends_number(c) => return self.int(start),
            _ => {}
        }
        // Not a number after all: re-read it as a bare string.
        self.pos = start;
        let node = self.bare_word(self.pos_at(start))?;
        Ok(node.value)
    }

    /// After `-`: an integer or a float, nothing else.
    fn negative_number(&mut self) -> Result<Value, ConfigError> {
        let start = self.pos;
        self.pos += 1;
        match self.peek() {
            Some(c) if c.is_ascii_digit() => {}
            Some('.') => return Err(self.err("Floats must start with a digit, not '.'.")),
            c => {
                return Err(self.err(format!(
                    "Expected a digit but got '{}'.",
                    c.map(String::from).unwrap_or_default()
                )))
            }
        }
        self.digits();
        match self.peek() {
            Some('.') => self.fraction(start),
            Some(c) if is_size_letter(c) => match self.sized(start)? {
                Some(v) => Ok(v),
                None => {
                    self.pos = start;
                    Ok(self.bare_word(self.pos_at(start))?.value)
                }
            },
            _ => self.int(start),
        }
    }

    fn int(&self, start: usize) -> Result<Value, ConfigError> {
        integer_value(&self.text_from(start))
            .map(Value::Int)
            .map_err(|m| self.err_at(start, m))
    }

    /// Digits then a size letter: `1k`, `64MB`, `2GiB`. `None` if what
    /// follows shows it is a word such as `1ms`, `5min` or `2m30s`.
    fn sized(&mut self, start: usize) -> Result<Option<Value>, ConfigError> {
        self.pos += 1;
        while self
            .peek()
            .is_some_and(|c| matches!(c, 'b' | 'B' | 'i' | 'I'))
        {
            self.pos += 1;
        }
        // A digit after the suffix (`2m30s`) makes it a word; nats-server
        // 2.15 behaves so, which keeps such durations usable unquoted.
        if ends_number(self.peek()) {
            return self.int(start).map(Some);
        }
        Ok(None)
    }

    /// After the integer part, at `.`: a float, or an IP address (a string).
    fn fraction(&mut self, start: usize) -> Result<Value, ConfigError> {
        self.pos += 1;
        match self.peek() {
            Some(c) if c.is_ascii_digit() => {}
            c => {
                return Err(self.err(format!(
                    "Floats must have a digit after the '.', but got '{}' instead.",
                    c.map(String::from).unwrap_or_default()
                )))
            }
        }
        self.digits();
        if self.peek() == Some('.') {
            while self
                .peek()
                .is_some_and(|c| c.is_ascii_digit() || matches!(c, '.' | ':' | '-'))
            {
                self.pos += 1;
            }
            return Ok(Value::String(self.text_from(start)));
        }
        let text = self.text_from(start);
        text.parse::<f64>()
            .map(Value::Float)
            .map_err(|_| self.err_at(start, format!("expected float, but got '{text}'")))
    }

    /// `YYYY-MM-DDTHH:MM:SSZ`, kept as a string. `start` is at the year.
    fn datetime(&mut self, start: usize) -> Result<Value, ConfigError> {
        self.pos += 1; // the '-' after the year
        for expected in "00-00T00:00:00Z".chars() {
            let got = self.bump();
            let ok = match expected {
                '0' => got.is_some_and(|c| c.is_ascii_digit()),
                e => got == Some(e),
            };
            if !ok {
                let got = got.map(String::from).unwrap_or_default();
                let want = if expected == '0' {
                    "digit".to_string()
                } else {
                    format!("'{expected}'")
                };
                return Err(self.err(format!(
                    "Expected {want} in ISO8601 datetime, but found '{got}' instead."
                )));
            }
        }
        let text = self.text_from(start);
        let field = |r: std::ops::Range<usize>| {
            text.get(r)
                .and_then(|s| s.parse::<u32>().ok())
                .unwrap_or(99)
        };
        let valid = (1..=12).contains(&field(5..7))
            && (1..=31).contains(&field(8..10))
            && field(11..13) < 24
            && field(14..16) < 60
            && field(17..19) < 60;
        if !valid {
            return Err(self.err_at(
                start,
                format!("expected Zulu formatted DateTime, but got '{text}'"),
            ));
        }
        Ok(Value::String(text))
    }
}

fn push_char(buf: &mut Vec<u8>, c: char) {
    let mut tmp = [0u8; 4];
    buf.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
}
