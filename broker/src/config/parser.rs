//! Structure of nats-server's configuration syntax: keys, maps, arrays,
//! comments, `include` and `$variables`. Scalars (strings, numbers) are in
//! `scalar.rs`.
//!
//! The grammar, as nats-server's lexer accepts it:
//! - an entry is `key value`, `key = value` or `key: value`; keys may be
//!   quoted with `"` or `'`; entries end at a newline, `;` or `,`;
//! - `{ ... }` is a map, `[ ... ]` an array (elements separated by `,` or
//!   newlines, a trailing `,` is fine);
//! - `#` and `//` start comments wherever an entry or element could end;
//! - the whole file may be wrapped in `{ ... }` (JSON-looking configs);
//! - `include path` merges another file's entries into the current map;
//! - an unquoted `$name` is replaced by the value of `name` defined earlier in
//!   the current or an enclosing map, else by the environment variable `name`
//!   (itself parsed as a config value, so `MAX=1MB` is an integer).
//!
//! Deliberate differences from nats-server, all for input it mishandles:
//! - a number directly followed by `]` ends the number (nats-server swallows
//!   the `]` into a string and then fails on the next line);
//! - an unknown size suffix (`1kbi`) is an error (nats-server silently drops
//!   the entry);
//! - columns are 1-based on every line (nats-server's are 0-based on line 1);
//! - a key with no value before `}` or EOF, and include cycles, are errors
//!   instead of undefined behaviour;
//! - nesting deeper than [`MAX_DEPTH`] is refused rather than overflowing the
//!   stack on hostile input.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::value::{Map, Node, Pos, Value};
use super::ConfigError;

/// Maximum nesting of maps, arrays and includes.
pub(crate) const MAX_DEPTH: usize = 100;

pub(crate) fn parse_file(path: &Path) -> Result<Map, ConfigError> {
    let src = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::in_file(path, format!("error opening config file: {e}")))?;
    let mut env_refs = HashSet::new();
    let chain = vec![canonical(path)];
    Parser::new(&src, path, &mut env_refs, chain, 0).parse_document()
}

pub(crate) fn parse_str(src: &str, origin: &Path) -> Result<Map, ConfigError> {
    let mut env_refs = HashSet::new();
    Parser::new(src, origin, &mut env_refs, vec![canonical(origin)], 0).parse_document()
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

enum Key {
    Name(String),
    Include(String),
}

/// Where an entry lives; the two places end entries slightly differently.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    Top,
    Map,
}

pub(super) struct Parser<'e> {
    pub(super) src: Vec<char>,
    pub(super) pos: usize,
    line_starts: Vec<usize>,
    file: Arc<Path>,
    dir: PathBuf,
    /// Maps under construction, innermost last: the scopes `$name` searches.
    frames: Vec<Map>,
    /// Environment variables being expanded, to detect `A=$A` cycles.
    env_refs: &'e mut HashSet<String>,
    /// Canonical paths of the files being included, to detect cycles.
    chain: Vec<PathBuf>,
    /// Current nesting (maps, arrays, includes).
    depth: usize,
}

pub(super) fn is_nl(c: char) -> bool {
    c == '\n' || c == '\r'
}

pub(super) fn is_ws(c: char) -> bool {
    c == ' ' || c == '\t'
}

impl<'e> Parser<'e> {
    fn new(
        src: &str,
        file: &Path,
        env_refs: &'e mut HashSet<String>,
        chain: Vec<PathBuf>,
        depth: usize,
    ) -> Self {
        let src: Vec<char> = src.chars().collect();
        let mut line_starts = vec![0];
        line_starts.extend(
            src.iter()
                .enumerate()
                .filter(|(_, c)| **c == '\n')
                .map(|(i, _)| i + 1),
        );
        Parser {
            src,
            pos: 0,
            line_starts,
            file: Arc::from(file),
            dir: file.parent().map(Path::to_path_buf).unwrap_or_default(),
            frames: Vec::new(),
            env_refs,
            chain,
            depth,
        }
    }

    // ---- cursor -------------------------------------------------------

    pub(super) fn peek(&self) -> Option<char> {
        self.src.get(self.pos).copied()
    }

    pub(super) fn peek_at(&self, n: usize) -> Option<char> {
        self.src.get(self.pos + n).copied()
    }

    pub(super) fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    pub(super) fn pos_at(&self, idx: usize) -> Pos {
        let line = self.line_starts.partition_point(|&s| s <= idx);
        let start = self
            .line_starts
            .get(line.wrapping_sub(1))
            .copied()
            .unwrap_or(0);
        Pos {
            file: self.file.clone(),
            line: line.max(1),
            col: idx.saturating_sub(start) + 1,
        }
    }

    pub(super) fn err_at(&self, idx: usize, msg: impl Into<String>) -> ConfigError {
        ConfigError::at(&self.pos_at(idx), msg)
    }

    pub(super) fn err(&self, msg: impl Into<String>) -> ConfigError {
        self.err_at(self.pos, msg)
    }

    fn skip_blanks(&mut self) {
        while self.peek().is_some_and(is_ws) {
            self.pos += 1;
        }
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    /// True (and consumes the comment, not its newline) if a comment starts here.
    fn skip_comment(&mut self) -> bool {
        let starts = match self.peek() {
            Some('#') => true,
            Some('/') => self.peek_at(1) == Some('/'),
            _ => false,
        };
        if starts {
            while self.peek().is_some_and(|c| !is_nl(c)) {
                self.pos += 1;
            }
        }
        starts
    }

    fn enter(&mut self) -> Result<(), ConfigError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(format!(
                "configuration nested deeper than {MAX_DEPTH} levels"
            )));
        }
        Ok(())
    }

    // ---- structure ----------------------------------------------------

    fn parse_document(mut self) -> Result<Map, ConfigError> {
        self.frames.push(Map::new());
        // Depth of `{` wrapping top-level entries, JSON style.
        let mut groups = 0usize;
        loop {
            self.skip_space();
            if self.skip_comment() {
                continue;
            }
            match self.peek() {
                None => break,
                Some('{') => {
                    self.pos += 1;
                    groups += 1;
                }
                Some('}') if groups > 0 => {
                    self.pos += 1;
                    groups -= 1;
                }
                // A stray closing brace at the top level is tolerated, as
                // nats-server does (it ends JSON-looking files).
                Some('}') => self.pos += 1,
                Some(_) => {
                    self.parse_entry(Scope::Top)?;
                    if self.end_top_entry()? && groups > 0 {
                        groups -= 1;
                    }
                }
            }
        }
        Ok(self.frames.pop().unwrap_or_default())
    }

    /// After a top-level value: blanks, then a comment, newline, `;`, `,`,
    /// `}` or EOF. Returns true if it consumed a `}`.
    fn end_top_entry(&mut self) -> Result<bool, ConfigError> {
        self.skip_blanks();
        if self.skip_comment() {
            return Ok(false);
        }
        match self.peek() {
            None => Ok(false),
            Some(c) if is_nl(c) || c == ';' || c == ',' => {
                self.pos += 1;
                Ok(false)
            }
            Some('}') => {
                self.pos += 1;
                Ok(true)
            }
            Some(c) => Err(self.err(format!(
                "Expected a top-level value to end with a new line, comment or EOF, but got '{c}' instead."
            ))),
        }
    }

    /// Parses `key [sep] value` (or `include path`) into the innermost frame.
    fn parse_entry(&mut self, scope: Scope) -> Result<(), ConfigError> {
        let key_at = self.pos;
        let key = match self.parse_key(scope)? {
            Key::Name(k) => k,
            Key::Include(path) => return self.parse_include(key_at, &path),
        };
        let key_pos = self.pos_at(key_at);
        self.skip_space();
        let mut sep = false;
        if matches!(self.peek(), Some('=' | ':')) {
            self.pos += 1;
            sep = true;
        }
        if scope == Scope::Map || !sep {
            // In maps, and before a value without separator, newlines are
            // just whitespace; after `key =` at the top level they are not.
            self.skip_space();
        }
        match self.peek() {
            None if scope == Scope::Map => return Err(self.err("Unexpected EOF processing map.")),
            None | Some('}') => {
                return Err(ConfigError::at(
                    &key_pos,
                    format!("config is invalid: no value for key \"{key}\""),
                ))
            }
            Some(',') if scope == Scope::Map => {
                return Err(self.err("Unexpected map value terminator ','."))
            }
            _ => {}
        }
        let mut node = self.parse_value()?;
        node.pos = key_pos;
        if let Some(frame) = self.frames.last_mut() {
            frame.insert(key, node);
        }
        Ok(())
    }

    /// Reads a key. An unquoted `include` followed by whitespace is the
    /// include keyword (a key named "include" needs a separator or quotes).
    fn parse_key(&mut self, scope: Scope) -> Result<Key, ConfigError> {
        let quote = match self.peek() {
            Some(c @ ('=' | ':')) => {
                return Err(self.err(format!("Unexpected key separator '{c}'")))
            }
            Some(']') if scope == Scope::Map => {
                return Err(self.err("Unexpected array end ']' processing map."))
            }
            Some(q @ ('"' | '\'')) => Some(q),
            _ => None,
        };
        if let Some(q) = quote {
            self.pos += 1;
            let start = self.pos;
            while let Some(c) = self.bump() {
                if c == q {
                    return Ok(Key::Name(self.src[start..self.pos - 1].iter().collect()));
                }
            }
            return Err(self.err(match scope {
                Scope::Top => "Unexpected EOF.",
                Scope::Map => "Unexpected EOF processing quoted map key.",
            }));
        }
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_whitespace() || c == '=' || c == ':' {
                break;
            }
            self.pos += 1;
        }
        let key: String = self.src[start..self.pos].iter().collect();
        if key.is_empty() {
            return Err(self.err("Expected a key"));
        }
        if scope == Scope::Map && self.peek().is_none() {
            return Err(self.err("Unexpected EOF processing map key."));
        }
        if key.eq_ignore_ascii_case("include") && self.peek().is_some_and(char::is_whitespace) {
            return Ok(Key::Include(self.parse_include_path()?));
        }
        Ok(Key::Name(key))
    }

    /// The operand of `include`: quoted (no escapes) or a bare word.
    fn parse_include_path(&mut self) -> Result<String, ConfigError> {
        self.skip_blanks();
        let fail =
            |p: &Self, what: &str| Err(p.err(format!("Expected include value but found {what}")));
        match self.peek() {
            None => fail(self, "EOF"),
            Some('[') => fail(self, "start of an array"),
            Some('{') => fail(self, "start of a map"),
            Some('(') => fail(self, "start of a block"),
            Some('\\') => fail(self, "escape sequence"),
            Some(c) if c.is_ascii_digit() || c == '-' => fail(self, "start of a number"),
            Some(c) if is_nl(c) => fail(self, "new line"),
            Some(q @ ('"' | '\'')) => {
                self.pos += 1;
                let start = self.pos;
                while let Some(c) = self.bump() {
                    if c == q {
                        return Ok(self.src[start..self.pos - 1].iter().collect());
                    }
                }
                Err(self.err(if q == '"' {
                    "Unexpected EOF in double quoted include"
                } else {
                    "Unexpected EOF in quoted include"
                }))
            }
            Some(_) => {
                let start = self.pos;
                while let Some(c) = self.peek() {
                    if is_nl(c) || is_ws(c) || c == ';' || c == '}' {
                        break;
                    }
                    if c == '\'' {
                        self.pos += 1;
                        return Ok(self.src[start..self.pos - 1].iter().collect());
                    }
                    self.pos += 1;
                }
                Ok(self.src[start..self.pos].iter().collect())
            }
        }
    }

    /// Parses the included file on its own (it cannot see our variables, as in
    /// nats-server) and merges its entries into the current map.
    fn parse_include(&mut self, at: usize, rel: &str) -> Result<(), ConfigError> {
        let path = self.dir.join(rel);
        let canon = canonical(&path);
        if self.chain.contains(&canon) {
            return Err(self.err_at(
                at,
                format!("error parsing include file '{rel}', include cycle detected"),
            ));
        }
        if self.depth + 1 > MAX_DEPTH {
            return Err(self.err_at(
                at,
                format!("error parsing include file '{rel}', includes nested too deeply"),
            ));
        }
        let src = std::fs::read_to_string(&path).map_err(|e| {
            self.err_at(
                at,
                format!(
                    "error parsing include file '{rel}', open {}: {e}",
                    path.display()
                ),
            )
        })?;
        let mut chain = self.chain.clone();
        chain.push(canon);
        let mut env_refs = HashSet::new();
        let included =
            Parser::new(&src, &path, &mut env_refs, chain, self.depth + 1).parse_document()?;
        if let Some(frame) = self.frames.last_mut() {
            for (k, v) in included {
                frame.insert(k, v);
            }
        }
        Ok(())
    }

    /// Parses any value. Leading blanks are skipped, a newline is an error.
    pub(super) fn parse_value(&mut self) -> Result<Node, ConfigError> {
        self.skip_blanks();
        let at = self.pos;
        let pos = self.pos_at(at);
        let value = match self.peek() {
            None => return Err(self.err("Expected value but found EOF")),
            Some(c) if is_nl(c) => return Err(self.err("Expected value but found new line")),
            Some('[') => self.parse_array()?,
            Some('{') => Value::Map(self.parse_map()?),
            Some('.') => return Err(self.err("Floats must start with a digit")),
            Some(_) => return self.parse_scalar(pos),
        };
        Ok(Node::new(value, pos))
    }

    fn parse_array(&mut self) -> Result<Value, ConfigError> {
        self.enter()?;
        self.pos += 1; // '['
        let mut items = Vec::new();
        loop {
            self.skip_space();
            if self.skip_comment() {
                continue;
            }
            match self.peek() {
                None => return Err(self.err("Unexpected EOF processing array.")),
                Some(',') => return Err(self.err("Unexpected array value terminator ','.")),
                Some(']') => {
                    self.pos += 1;
                    break;
                }
                Some(_) => {}
            }
            items.push(self.parse_value()?);
            self.skip_blanks();
            self.skip_comment();
            match self.peek() {
                None => return Err(self.err("Unexpected EOF processing array.")),
                Some(c) if c == ',' || is_nl(c) => self.pos += 1,
                Some(']') => {
                    self.pos += 1;
                    break;
                }
                Some(c) => {
                    return Err(self.err(format!(
                        "Expected an array value terminator ',' or an array terminator ']', but got '{c}' instead."
                    )))
                }
            }
        }
        self.depth -= 1;
        Ok(Value::Array(items))
    }

    fn parse_map(&mut self) -> Result<Map, ConfigError> {
        self.enter()?;
        self.pos += 1; // '{'
        self.frames.push(Map::new());
        loop {
            self.skip_space();
            if self.skip_comment() {
                continue;
            }
            match self.peek() {
                None => return Err(self.err("Unexpected EOF processing map.")),
                Some('}') => {
                    self.pos += 1;
                    break;
                }
                Some(_) => {}
            }
            self.parse_entry(Scope::Map)?;
            self.skip_blanks();
            self.skip_comment();
            match self.peek() {
                None => return Err(self.err("Unexpected EOF processing map.")),
                Some(c) if c == ',' || c == ';' || is_nl(c) => self.pos += 1,
                Some('}') => {
                    self.pos += 1;
                    break;
                }
                Some(c) => {
                    return Err(self.err(format!(
                        "Expected a map value terminator ',' or a map terminator '}}', but got '{c}' instead."
                    )))
                }
            }
        }
        self.depth -= 1;
        Ok(self.frames.pop().unwrap_or_default())
    }

    // ---- variables ----------------------------------------------------

    /// Resolves `$name` found at `pos`. Block scoping first (innermost map
    /// outwards, only entries already defined), then the environment.
    pub(super) fn resolve_variable(&mut self, name: &str, pos: &Pos) -> Result<Node, ConfigError> {
        // Unquoted bcrypt hashes (`$2a$11$...`) look like variables.
        if name.starts_with("2a$") {
            return Ok(Node::new(Value::String(format!("${name}")), pos.clone()));
        }
        for frame in self.frames.iter_mut().rev() {
            if let Some(found) = frame.get_mut(name) {
                found.used_as_variable = true;
                let mut node = found.clone();
                node.used_as_variable = false;
                node.relocate(pos);
                return Ok(node);
            }
        }
        let line = pos.line;
        if self.env_refs.contains(name) {
            return Err(ConfigError::at(pos, format!(
                "variable reference for '{name}' on line {line} could not be parsed: variable reference cycle for '{name}'"
            )));
        }
        let Some(raw) = std::env::var_os(name) else {
            return Err(ConfigError::at(
                pos,
                format!("variable reference for '{name}' on line {line} can not be found"),
            ));
        };
        let text = raw.to_string_lossy();
        // Parse the value as nats-server does: as the right-hand side of an
        // entry in a one-line config of its own.
        self.env_refs.insert(name.to_string());
        let doc = format!("pk={text}");
        let parsed = Parser::new(
            &doc,
            &self.file,
            &mut *self.env_refs,
            self.chain.clone(),
            self.depth + 1,
        )
        .parse_document();
        self.env_refs.remove(name);
        let mut map = parsed.map_err(|e| {
            ConfigError::at(
                pos,
                format!(
                    "variable reference for '{name}' on line {line} could not be parsed: {}",
                    e.message
                ),
            )
        })?;
        let mut node = map.get_mut("pk").cloned().ok_or_else(|| {
            ConfigError::at(
                pos,
                format!("variable reference for '{name}' on line {line} can not be found"),
            )
        })?;
        node.relocate(pos);
        Ok(node)
    }
}

#[cfg(test)]
#[path = "parser_tests.rs"]
mod tests;
