//! The parsed configuration tree.
//!
//! Every node remembers where it came from (file, line, column) because the
//! whole point of a config error is to send the operator to the right line,
//! and with `include` the "right file" is not always the one passed to `-c`.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// A location in a configuration file. Lines and columns are 1-based.
///
/// The file is shared (`Arc`) because every node of a file points at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pos {
    pub file: Arc<Path>,
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
    }
}

/// A configuration value. Date-times (`2020-01-01T00:00:00Z`), which the
/// format accepts but no option uses, are kept as strings.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Map(Map),
    Array(Vec<Node>),
    String(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Value {
    /// Human name of the type, used in "expected X, got Y" errors.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Map(_) => "map",
            Value::Array(_) => "array",
            Value::String(_) => "string",
            Value::Int(_) => "integer",
            Value::Float(_) => "float",
            Value::Bool(_) => "boolean",
        }
    }

    pub fn as_map(&self) -> Option<&Map> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Node]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// A value plus where it was written.
///
/// For a map entry `pos` is the position of the *key*, as nats-server reports
/// it: "unknown field" and "wrong type" errors are about the line the key is
/// on. For an array element it is the element's own position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub pos: Pos,
    /// Set when some later `$name` referenced this entry. nats-server does not
    /// report such entries as unknown fields: defining `PASS = "x"` at the top
    /// level only to use it as `$PASS` is the documented way to use variables.
    pub used_as_variable: bool,
}

impl Node {
    pub fn new(value: Value, pos: Pos) -> Self {
        Node {
            value,
            pos,
            used_as_variable: false,
        }
    }

    /// Moves this node and everything under it to `pos`. Used for values
    /// coming from the environment, which have no position of their own.
    pub(crate) fn relocate(&mut self, pos: &Pos) {
        self.pos = pos.clone();
        match &mut self.value {
            Value::Map(m) => m.entries.iter_mut().for_each(|(_, n)| n.relocate(pos)),
            Value::Array(a) => a.iter_mut().for_each(|n| n.relocate(pos)),
            _ => {}
        }
    }
}

/// An order-preserving map. Configs are small, so a vector beats a hash map
/// and keeps "later lines win" deterministic, which a Go map does not.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Map {
    entries: Vec<(String, Node)>,
}

impl Map {
    pub fn new() -> Self {
        Map::default()
    }

    /// Inserts `key`, replacing an earlier entry with the exact same key. The
    /// replacement moves to the end so that iteration follows the file order
    /// of the definitions that are in effect.
    pub fn insert(&mut self, key: String, node: Node) {
        self.entries.retain(|(k, _)| *k != key);
        self.entries.push((key, node));
    }

    /// Exact-key lookup (variables are case-sensitive).
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, n)| n)
    }

    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        self.entries
            .iter_mut()
            .find(|(k, _)| k == key)
            .map(|(_, n)| n)
    }

    /// Case-insensitive lookup, as option names are matched. If several keys
    /// differ only by case, the last one in the file wins.
    pub fn get_ignore_case(&self, key: &str) -> Option<&Node> {
        self.entries
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, n)| n)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.entries.iter().map(|(k, n)| (k.as_str(), n))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl IntoIterator for Map {
    type Item = (String, Node);
    type IntoIter = std::vec::IntoIter<(String, Node)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}
