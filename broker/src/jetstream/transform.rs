//! Subject transforms as nats-server defines them for a stream's
//! `republish` (and `subject_transform`): a source pattern and a
//! destination that may pull tokens of the matched subject in with `$n` or
//! `{{wildcard(n)}}`, hash them with `{{partition(k, n...)}}`, cut them
//! with `left`, `right`, `splitFromLeft`, `splitFromRight`,
//! `sliceFromLeft`, `sliceFromRight` and `split`, or draw `random(k)`. A
//! trailing `>` carries the rest of the subject over.
//!
//! The transform is parsed once, when the configuration is set, so that
//! applying it to each stored message only walks precomputed tokens.

use std::fmt::Write as _;

/// Why a transform is not valid (nats-server answers with its own wording
/// around these; callers wrap it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformError(pub String);

impl std::fmt::Display for TransformError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One destination token.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// Copied as is.
    Literal(String),
    /// The source subject's token at this index.
    Wildcard(usize),
    /// FNV-1a of the named source tokens (all tokens when empty), modulo
    /// the bucket count.
    Partition { buckets: u32, tokens: Vec<usize> },
    /// The first `len` bytes of a source token.
    Left { token: usize, len: usize },
    /// The last `len` bytes of a source token.
    Right { token: usize, len: usize },
    /// A source token cut in two, `at` bytes from its start.
    SplitFromLeft { token: usize, at: usize },
    /// A source token cut in two, `at` bytes from its end.
    SplitFromRight { token: usize, at: usize },
    /// A source token cut into `size`-byte tokens from its start.
    SliceFromLeft { token: usize, size: usize },
    /// A source token cut into `size`-byte tokens from its end.
    SliceFromRight { token: usize, size: usize },
    /// A source token split into tokens on `delim`.
    Split { token: usize, delim: String },
    /// A random number below `max`.
    Random { max: u32 },
    /// `>`: the remaining source tokens.
    Rest,
}

/// A parsed source/destination pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectTransform {
    src: String,
    dest: String,
    /// How many tokens the source has before a trailing `>`.
    src_fixed: usize,
    tokens: Vec<Token>,
}

/// Splits `token`, if it is `{{name(args)}}`, into name and arguments.
fn mustache(token: &str) -> Option<(String, Vec<&str>)> {
    let inner = token.strip_prefix("{{")?.strip_suffix("}}")?.trim();
    let open = inner.find('(')?;
    let args = inner[open + 1..].strip_suffix(')')?;
    let name = inner[..open].trim().to_ascii_lowercase();
    Some((name, args.split(',').map(str::trim).collect()))
}

/// nats-server's wording: `invalid mapping destination: <why> in <token>`.
fn dest_err(why: &str, token: &str) -> TransformError {
    TransformError(format!("invalid mapping destination: {why} in {token}"))
}

fn int_arg<T: std::str::FromStr>(token: &str, arg: &str) -> Result<T, TransformError> {
    arg.parse()
        .map_err(|_| dest_err("function argument is invalid or in the wrong format", token))
}

impl SubjectTransform {
    /// Parse `src` (empty means `>`) and `dest` by nats-server's rules:
    /// both valid subjects, no `*` in the destination, a `>` in both or
    /// neither, and wildcard references within the source's `*` count.
    pub fn new(src: &str, dest: &str) -> Result<SubjectTransform, TransformError> {
        let src = if src.is_empty() { ">" } else { src };
        let bad = || TransformError("invalid subject".to_string());
        let info = |s: &str| -> Option<(Vec<String>, usize, bool)> {
            if s.is_empty() {
                return None;
            }
            let toks: Vec<String> = s.split('.').map(str::to_string).collect();
            let mut pwcs = 0;
            let mut fwc = false;
            for t in &toks {
                if t.is_empty() || fwc {
                    return None;
                }
                match t.as_str() {
                    ">" => fwc = true,
                    "*" => pwcs += 1,
                    _ => {}
                }
            }
            Some((toks, pwcs, fwc))
        };
        let (stoks, npwcs, sfwc) = info(src).ok_or_else(bad)?;
        let (dtoks, dpwcs, dfwc) = info(dest).ok_or_else(bad)?;
        if dpwcs > 0 || sfwc != dfwc {
            return Err(bad());
        }
        // Wildcard n (1-based) -> the index of the n-th `*` in the source.
        let positions: Vec<usize> = stoks
            .iter()
            .enumerate()
            .filter(|(_, t)| *t == "*")
            .map(|(i, _)| i)
            .collect();
        let wildcard = |token: &str, n: usize| -> Result<usize, TransformError> {
            if npwcs == 0 && !sfwc {
                return Err(dest_err("wildcard index out of range", token));
            }
            if n > npwcs {
                return Err(dest_err(
                    "wildcard index out of range",
                    &format!("{token}: [{n}]"),
                ));
            }
            // nats-server maps an index of 0 to the first source token.
            Ok(n.checked_sub(1)
                .and_then(|i| positions.get(i).copied())
                .unwrap_or(0))
        };
        let mut tokens = Vec::with_capacity(dtoks.len());
        for t in &dtoks {
            if t == ">" {
                tokens.push(Token::Rest);
                continue;
            }
            if let Some(n) = t.strip_prefix('$') {
                match n.parse::<usize>() {
                    Ok(n) => tokens.push(Token::Wildcard(wildcard(t, n)?)),
                    // Other `$` tokens are literal in nats-server too.
                    Err(_) => tokens.push(Token::Literal(t.clone())),
                }
                continue;
            }
            let Some((name, args)) = mustache(t) else {
                tokens.push(Token::Literal(t.clone()));
                continue;
            };
            let need = |n: usize| -> Result<(), TransformError> {
                match args.len() {
                    l if l < n || args.first() == Some(&"") => {
                        Err(dest_err("not enough arguments passed to the function", t))
                    }
                    l if l > n => Err(dest_err("too many arguments passed to the function", t)),
                    _ => Ok(()),
                }
            };
            let tok = match name.as_str() {
                "wildcard" => {
                    need(1)?;
                    Token::Wildcard(wildcard(t, int_arg(t, args[0])?)?)
                }
                "partition" => {
                    if args.first().is_none_or(|a| a.is_empty()) {
                        return Err(dest_err("not enough arguments passed to the function", t));
                    }
                    let buckets: u32 = int_arg(t, args[0])?;
                    let mut idx = Vec::with_capacity(args.len() - 1);
                    for a in &args[1..] {
                        idx.push(wildcard(t, int_arg(t, a)?)?);
                    }
                    Token::Partition {
                        buckets,
                        tokens: idx,
                    }
                }
                "left" | "right" | "splitfromleft" | "splitfromright" | "slicefromleft"
                | "slicefromright" => {
                    need(2)?;
                    let token = wildcard(t, int_arg(t, args[0])?)?;
                    // nats-server reads a negative as "leave the token whole".
                    let n: i32 = int_arg(t, args[1])?;
                    let n = usize::try_from(n).unwrap_or(0);
                    match name.as_str() {
                        "left" => Token::Left { token, len: n },
                        "right" => Token::Right { token, len: n },
                        "splitfromleft" => Token::SplitFromLeft { token, at: n },
                        "splitfromright" => Token::SplitFromRight { token, at: n },
                        "slicefromleft" => Token::SliceFromLeft { token, size: n },
                        _ => Token::SliceFromRight { token, size: n },
                    }
                }
                "split" => {
                    need(2)?;
                    let token = wildcard(t, int_arg(t, args[0])?)?;
                    if args[1].contains([' ', '.']) {
                        return Err(dest_err(
                            "function argument is invalid or in the wrong format",
                            t,
                        ));
                    }
                    Token::Split {
                        token,
                        delim: args[1].to_string(),
                    }
                }
                "random" => {
                    if args.len() != 1 {
                        return Err(dest_err("not enough arguments passed to the function", t));
                    }
                    Token::Random {
                        max: int_arg(t, args[0])?,
                    }
                }
                _ => return Err(dest_err("unknown function", t)),
            };
            tokens.push(tok);
        }
        Ok(SubjectTransform {
            src: src.to_string(),
            dest: dest.to_string(),
            src_fixed: if sfwc { stoks.len() - 1 } else { stoks.len() },
            tokens,
        })
    }

    /// Transform a literal `subject`, or `None` when it does not match the
    /// source pattern.
    pub fn apply(&self, subject: &str) -> Option<String> {
        if self.src == ">" && self.dest == ">" {
            return Some(subject.to_string());
        }
        if !crate::subject::matches(self.src.as_bytes(), subject.as_bytes()) {
            return None;
        }
        let toks: Vec<&str> = subject.split('.').collect();
        let get = |i: usize| toks.get(i).copied().unwrap_or("");
        let mut out = String::with_capacity(subject.len() + self.dest.len());
        for (i, t) in self.tokens.iter().enumerate() {
            if i > 0 {
                out.push('.');
            }
            match t {
                Token::Literal(s) => out.push_str(s),
                Token::Wildcard(n) => out.push_str(get(*n)),
                Token::Partition { buckets, tokens } => {
                    let mut h = Fnv1a::default();
                    if tokens.is_empty() {
                        h.write(subject.as_bytes());
                    } else {
                        for n in tokens {
                            h.write(get(*n).as_bytes());
                        }
                    }
                    let p = match buckets {
                        0 => 0,
                        b => h.0 % b,
                    };
                    let _ = write!(out, "{p}");
                }
                Token::Left { token, len } => {
                    let s = get(*token);
                    out.push_str(if *len > 0 && *len < s.len() {
                        s.get(..*len).unwrap_or(s)
                    } else {
                        s
                    });
                }
                Token::Right { token, len } => {
                    let s = get(*token);
                    out.push_str(if *len > 0 && *len < s.len() {
                        s.get(s.len() - *len..).unwrap_or(s)
                    } else {
                        s
                    });
                }
                Token::SplitFromLeft { token, at } => {
                    let s = get(*token);
                    match (s.get(..*at), s.get(*at..)) {
                        (Some(a), Some(b)) if *at > 0 && *at < s.len() => {
                            out.push_str(a);
                            out.push('.');
                            out.push_str(b);
                        }
                        _ => out.push_str(s),
                    }
                }
                Token::SplitFromRight { token, at } => {
                    let s = get(*token);
                    let cut = s.len().saturating_sub(*at);
                    match (s.get(..cut), s.get(cut..)) {
                        (Some(a), Some(b)) if *at > 0 && *at < s.len() => {
                            out.push_str(a);
                            out.push('.');
                            out.push_str(b);
                        }
                        _ => out.push_str(s),
                    }
                }
                Token::SliceFromLeft { token, size } => {
                    slice(&mut out, get(*token), *size, 0);
                }
                Token::SliceFromRight { token, size } => {
                    let s = get(*token);
                    let first = if *size > 0 { s.len() % *size } else { 0 };
                    slice(&mut out, s, *size, first);
                }
                Token::Split { token, delim } => {
                    let parts = get(*token).split(delim.as_str()).filter(|p| !p.is_empty());
                    for (i, p) in parts.enumerate() {
                        if i > 0 {
                            out.push('.');
                        }
                        out.push_str(p);
                    }
                }
                Token::Random { max } => {
                    let n = match max {
                        0 => 0,
                        m => rand::random::<u32>() % m,
                    };
                    let _ = write!(out, "{n}");
                }
                Token::Rest => {
                    out.push_str(&toks[self.src_fixed.min(toks.len())..].join("."));
                }
            }
        }
        Some(out)
    }
}

/// Write `s` cut into `size`-byte tokens, the first one `first` bytes long
/// when that is not 0 (slicing from the right); a token no longer than
/// `size` (or a size of 0) stays whole.
fn slice(out: &mut String, s: &str, size: usize, first: usize) {
    if size == 0 || size >= s.len() || !s.is_char_boundary(0) {
        out.push_str(s);
        return;
    }
    let mut start = 0;
    let mut end = if first > 0 { first } else { size };
    while start < s.len() {
        if start > 0 {
            out.push('.');
        }
        let stop = end.min(s.len());
        out.push_str(s.get(start..stop).unwrap_or(""));
        start = stop;
        end = stop + size;
    }
}

/// 32-bit FNV-1a, the hash nats-server partitions with.
struct Fnv1a(u32);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0x811c_9dc5)
    }
}

impl Fnv1a {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u32::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0193);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(src: &str, dest: &str, subject: &str) -> Option<String> {
        SubjectTransform::new(src, dest)
            .map_err(|e| format!("{src} -> {dest}: {e}"))
            .unwrap()
            .apply(subject)
    }

    #[test]
    fn wildcards_and_rest() {
        assert_eq!(
            t("orders.*.*", "rp.{{wildcard(2)}}.$1", "orders.eu.7").as_deref(),
            Some("rp.7.eu")
        );
        assert_eq!(t("a.>", "b.>", "a.x.y").as_deref(), Some("b.x.y"));
        assert_eq!(t("a.*.>", "b.$1.>", "a.x.y.z").as_deref(), Some("b.x.y.z"));
        assert_eq!(t(">", "rp.>", "k.v").as_deref(), Some("rp.k.v"));
        assert_eq!(t("", "rp.>", "k.v").as_deref(), Some("rp.k.v"));
        assert_eq!(t("a.b", "c", "a.b").as_deref(), Some("c"));
        assert_eq!(t("a.*", "c.$1", "x.y"), None);
    }

    #[test]
    fn functions() {
        assert_eq!(t("a.*", "{{left(1,2)}}", "a.hello").as_deref(), Some("he"));
        assert_eq!(
            t("a.*", "{{Right(1, 2)}}", "a.hello").as_deref(),
            Some("lo")
        );
        let p = t("a.*", "p.{{partition(3,1)}}", "a.hello").unwrap();
        let n: u32 = p.trim_start_matches("p.").parse().unwrap();
        assert!(n < 3);
        assert_eq!(
            t("a.*", "{{splitFromLeft(1,2)}}", "a.hello").as_deref(),
            Some("he.llo")
        );
        assert_eq!(
            t("a.*", "{{SplitFromRight(1,2)}}", "a.hello").as_deref(),
            Some("hel.lo")
        );
        assert_eq!(
            t("a.*", "{{splitFromLeft(1,9)}}", "a.hello").as_deref(),
            Some("hello")
        );
        assert_eq!(
            t("a.*", "{{sliceFromLeft(1,2)}}", "a.hello").as_deref(),
            Some("he.ll.o")
        );
        assert_eq!(
            t("a.*", "{{sliceFromRight(1,2)}}", "a.hello").as_deref(),
            Some("h.el.lo")
        );
        assert_eq!(
            t("a.*", "{{sliceFromRight(1,2)}}", "a.abcd").as_deref(),
            Some("ab.cd")
        );
        assert_eq!(
            t("a.*", "{{split(1,-)}}", "a.-x--y-").as_deref(),
            Some("x.y")
        );
        let r = t("a.*", "r.{{random(4)}}", "a.b").unwrap();
        assert!(r.trim_start_matches("r.").parse::<u32>().unwrap() < 4);
    }

    #[test]
    fn fnv_matches_reference_values() {
        // FNV-1a 32 of "" and "a" (published test vectors).
        assert_eq!(Fnv1a::default().0, 0x811c_9dc5);
        let mut h = Fnv1a::default();
        h.write(b"a");
        assert_eq!(h.0, 0xe40c_292c);
    }

    #[test]
    fn refused() {
        for (src, dest) in [
            ("a.*", "b.*"),
            ("a.>", "b"),
            ("a", "b.>"),
            ("a.*", "b.$2"),
            ("a", "b.$1"),
            ("a.*", "{{wildcard()}}"),
            ("a.*", "{{wildcard(1,2)}}"),
            ("a.*", "{{nope(1)}}"),
            ("a..b", "c"),
            ("a", ""),
        ] {
            assert!(
                SubjectTransform::new(src, dest).is_err(),
                "{src} -> {dest} accepted"
            );
        }
    }
}
