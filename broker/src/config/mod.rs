//! Configuration files in nats-server's format.
//!
//! Tribune is a drop-in replacement for nats-server, so it has to read the
//! configuration files people already have, with the same leniency (three
//! kinds of key separators, optional commas, `include`, `$variables`, size
//! suffixes) and the same strictness (an unknown option is an error, not a
//! silently ignored typo). Where nats-server's behaviour is an accident of its
//! implementation rather than a rule (see `parser.rs`), we pick the reading
//! that accepts every config nats-server accepts and reports the rest clearly.
//!
//! The work is split in two so later features can reuse the first half:
//! - [`parse_file`] / [`parse_str`] turn text into a [`Value`] tree where every
//!   node knows its file, line and column. Accounts, TLS and JetStream code can
//!   walk their own blocks from this tree.
//! - [`apply_file`] maps the tree onto [`Options`], collecting *all* errors
//!   (nats-server reports every problem at once, so an operator fixes a file in
//!   one round trip) and returning warnings for options Tribune knows about but
//!   does not implement yet.
//!
//! Reloading on SIGHUP is `apply_file` on a fresh `Options::default()`: the
//! file is the whole truth, nothing carries over from the previous load.

mod accounts;
mod apply;
mod blocks;
mod callout;
mod duration;
mod exports;
mod js_limits;
mod operator;
mod parser;
mod scalar;
mod tls;
mod validate;
mod value;
mod websocket;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::options::Options;

pub use duration::{format_go_duration, parse_go_duration};
pub use validate::validate_options;
pub use value::{Map, Node, Pos, Value};

/// One configuration problem, located as precisely as we can.
///
/// Displayed as `<file>:<line>:<col>: <message>`, the way nats-server prints
/// its config errors. `line == 0` means the problem concerns the file as a
/// whole (for example two options that contradict each other), and displays as
/// `<file>: <message>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl ConfigError {
    pub(crate) fn at(pos: &Pos, message: impl Into<String>) -> Self {
        ConfigError {
            file: pos.file.to_path_buf(),
            line: pos.line,
            col: pos.col,
            message: message.into(),
        }
    }

    pub(crate) fn in_file(file: &Path, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            line: 0,
            col: 0,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.col,
                self.message
            )
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every error found in a configuration, in file order. Displayed one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn errors(&self) -> &[ConfigError] {
        &self.0
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Parses a configuration file (following its `include`s) into a tree whose
/// root is always a [`Value::Map`].
pub fn parse_file(path: &Path) -> Result<Value, ConfigError> {
    parser::parse_file(path).map(Value::Map)
}

/// Parses configuration text. `origin_path` names the text in positions and
/// anchors relative `include` paths (its directory is used).
pub fn parse_str(src: &str, origin_path: &Path) -> Result<Value, ConfigError> {
    parser::parse_str(src, origin_path).map(Value::Map)
}

/// Parses the file, applies it over `opts` (which holds defaults) and returns
/// the warnings. On error `opts` may be partially updated; callers that need
/// all-or-nothing (reload) should apply to a copy.
pub fn apply_file(opts: &mut Options, path: &Path) -> Result<Vec<String>, ConfigErrors> {
    let root = parser::parse_file(path)?;
    opts.config_file = Some(path.to_path_buf());
    apply::apply_map(opts, &root, path)
}

/// Same as [`apply_file`] for configuration text, e.g. from tests.
pub fn apply_str(
    opts: &mut Options,
    src: &str,
    origin_path: &Path,
) -> Result<Vec<String>, ConfigErrors> {
    let root = parser::parse_str(src, origin_path)?;
    apply::apply_map(opts, &root, origin_path)
}
