//! Parser tests. Where a test says "nats-server 2.15", the behaviour was
//! checked with `nats-server -c file.conf -t`.

use std::path::Path;

use super::super::value::{Map, Value};
use super::super::ConfigError;
use super::parse_str;

fn parse(src: &str) -> Map {
    match parse_str(src, Path::new("test.conf")) {
        Ok(m) => m,
        Err(e) => panic!("parse failed: {e}\n--- source ---\n{src}"),
    }
}

fn parse_err(src: &str) -> ConfigError {
    match parse_str(src, Path::new("test.conf")) {
        Ok(m) => panic!("expected an error, got {m:?}"),
        Err(e) => e,
    }
}

fn get<'m>(m: &'m Map, key: &str) -> &'m Value {
    &m.get(key)
        .unwrap_or_else(|| panic!("no key {key} in {m:?}"))
        .value
}

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

#[test]
fn key_separators() {
    let m = parse("a: 1\nb = 2\nc 3\nd:4\ne=5\n\"f g\": 6\n'h' = 7\n");
    for (k, v) in [
        ("a", 1),
        ("b", 2),
        ("c", 3),
        ("d", 4),
        ("e", 5),
        ("f g", 6),
        ("h", 7),
    ] {
        assert_eq!(get(&m, k), &Value::Int(v), "{k}");
    }
}

#[test]
fn entry_terminators_and_comments() {
    let m = parse("# comment\na: 1; b: 2, c: 3 # trailing\n// slashes\nd: x // after\n  \n");
    assert_eq!(get(&m, "a"), &Value::Int(1));
    assert_eq!(get(&m, "b"), &Value::Int(2));
    assert_eq!(get(&m, "c"), &Value::Int(3));
    assert_eq!(get(&m, "d"), &s("x"));
    // A '#' inside a bare word is part of it (nats-server does the same).
    assert_eq!(get(&parse("p: a#b\n"), "p"), &s("a#b"));
}

#[test]
fn value_on_next_line_only_without_separator() {
    // nats-server 2.15: `port\n4222` is valid, `port =\n4222` is
    // "Expected value but found new line".
    assert_eq!(get(&parse("port\n4222\n"), "port"), &Value::Int(4222));
    assert_eq!(
        parse_err("port =\n4222\n").message,
        "Expected value but found new line"
    );
}

#[test]
fn booleans() {
    let m = parse("a: true\nb: FALSE\nc: yes\nd: No\ne: on\nf: off\ng: \"true\"\n");
    for (k, v) in [
        ("a", true),
        ("b", false),
        ("c", true),
        ("d", false),
        ("e", true),
        ("f", false),
    ] {
        assert_eq!(get(&m, k), &Value::Bool(v), "{k}");
    }
    assert_eq!(get(&m, "g"), &s("true"));
}

#[test]
fn strings() {
    let m = parse(concat!(
        "a: \"tab\\there \\\"q\\\" \\\\ \\x41\"\n",
        "b: 'raw \\t $x'\n",
        "c: bare\n",
        "d: nats://host:4222\n",
        "e: \"\"\n",
        "f: \"multi\nline\"\n",
        "g: caf\u{e9}\n",
    ));
    assert_eq!(get(&m, "a"), &s("tab\there \"q\" \\ A"));
    assert_eq!(get(&m, "b"), &s("raw \\t $x"));
    assert_eq!(get(&m, "c"), &s("bare"));
    assert_eq!(get(&m, "d"), &s("nats://host:4222"));
    assert_eq!(get(&m, "e"), &s(""));
    assert_eq!(get(&m, "f"), &s("multi\nline"));
    assert_eq!(get(&m, "g"), &s("caf\u{e9}"));
}

#[test]
fn bad_escape() {
    let e = parse_err("a: \"\\q\"\n");
    assert!(
        e.message.starts_with("Invalid escape character 'q'."),
        "{e}"
    );
    let e = parse_err("a: \"\\xZZ\"\n");
    assert_eq!(
        e.message,
        "Expected two hexadecimal digits after '\\x', but got 'ZZ'"
    );
}

#[test]
fn block_string() {
    let m = parse("a (\nline one\n  line (two)\n)\nb: 1\n");
    assert_eq!(get(&m, "a"), &s("\nline one\n  line (two)\n"));
    assert_eq!(get(&m, "b"), &Value::Int(1));
}

#[test]
fn numbers() {
    let m = parse("a: 42\nb: -7\nc: 1.5\nd: -0.25\ne: 0\n");
    assert_eq!(get(&m, "a"), &Value::Int(42));
    assert_eq!(get(&m, "b"), &Value::Int(-7));
    assert_eq!(get(&m, "c"), &Value::Float(1.5));
    assert_eq!(get(&m, "d"), &Value::Float(-0.25));
    assert_eq!(get(&m, "e"), &Value::Int(0));
    assert_eq!(
        parse_err("a: 99999999999999999999\n").message,
        "integer '99999999999999999999' is out of the range"
    );
    assert_eq!(
        parse_err("a: .5\n").message,
        "Floats must start with a digit"
    );
    assert!(parse_err("a: 1.x\n")
        .message
        .starts_with("Floats must have a digit after the '.'"));
}

#[test]
fn size_suffixes() {
    // k/m/g/t/p/e are decimal; with b, i or ib they are binary (lex.go/parse.go).
    let cases = [
        ("1k", 1_000),
        ("1K", 1_000),
        ("1KB", 1_024),
        ("1kb", 1_024),
        ("1Ki", 1_024),
        ("1KiB", 1_024),
        ("1m", 1_000_000),
        ("1MB", 1_048_576),
        ("64MB", 64 * 1_048_576),
        ("1MiB", 1_048_576),
        ("1G", 1_000_000_000),
        ("1GB", 1 << 30),
        ("2T", 2_000_000_000_000),
        ("1TB", 1 << 40),
        ("1P", 1_000_000_000_000_000),
        ("1PB", 1 << 50),
        ("1E", 1_000_000_000_000_000_000),
        ("1EB", 1 << 60),
        ("-1K", -1_000),
    ];
    for (text, want) in cases {
        let m = parse(&format!("v: {text}\n"));
        assert_eq!(get(&m, "v"), &Value::Int(want), "{text}");
    }
    assert_eq!(
        parse_err("v: 8EB\n").message,
        "integer '8EB' is out of the range"
    );
    assert_eq!(
        parse_err("v: 1kbi\n").message,
        "invalid size suffix in integer '1kbi'"
    );
}

#[test]
fn words_that_start_with_digits_are_strings() {
    let m = parse("a: 10s\nb: 1h30m\nc: 1ms\nd: 127.0.0.1\ne: 0.0.0.0:4222\nf: 5min\ng: 2m30s\n");
    assert_eq!(get(&m, "a"), &s("10s"));
    assert_eq!(get(&m, "b"), &s("1h30m"));
    assert_eq!(get(&m, "c"), &s("1ms"));
    assert_eq!(get(&m, "d"), &s("127.0.0.1"));
    assert_eq!(get(&m, "e"), &s("0.0.0.0:4222"));
    assert_eq!(get(&m, "f"), &s("5min"));
    // nats-server 2.15 reads these as strings too (checked with -t).
    assert_eq!(get(&m, "g"), &s("2m30s"));
    assert_eq!(get(&parse("a: 1k5\n"), "a"), &s("1k5"));
    // `1m` alone is one million, exactly as nats-server reads it.
    assert_eq!(get(&parse("a: 1m\n"), "a"), &Value::Int(1_000_000));
}

#[test]
fn datetimes_are_strings() {
    let m = parse("t: 2024-05-01T10:20:30Z\n");
    assert_eq!(get(&m, "t"), &s("2024-05-01T10:20:30Z"));
    assert!(parse_err("t: 2024-13-01T10:20:30Z\n")
        .message
        .starts_with("expected Zulu"));
    assert_eq!(
        parse_err("t: 24-01\n").message,
        "All ISO8601 dates must be in full Zulu form."
    );
}

#[test]
fn arrays() {
    let m = parse("a: [1, 2, 3]\nb: [\n  x\n  y, z,\n  # comment\n]\nc: []\nd: [[1], {k: v}]\n");
    let ints = |v: &Value| -> Vec<i64> {
        v.as_array()
            .unwrap_or(&[])
            .iter()
            .filter_map(|n| n.value.as_int())
            .collect()
    };
    assert_eq!(ints(get(&m, "a")), vec![1, 2, 3]);
    let b: Vec<&str> = get(&m, "b")
        .as_array()
        .unwrap_or(&[])
        .iter()
        .filter_map(|n| n.value.as_str())
        .collect();
    assert_eq!(b, vec!["x", "y", "z"]);
    assert_eq!(get(&m, "c"), &Value::Array(vec![]));
    let d = get(&m, "d").as_array().unwrap_or(&[]);
    assert_eq!(d.len(), 2);
    assert!(matches!(&d[1].value, Value::Map(inner) if inner.get("k").is_some()));
    assert_eq!(
        parse_err("a: [,1]\n").message,
        "Unexpected array value terminator ','."
    );
    assert_eq!(
        parse_err("a: [1 2]\n").message,
        "Expected an array value terminator ',' or an array terminator ']', but got '2' instead."
    );
}

#[test]
fn maps_nested_and_separators() {
    let m = parse("a {\n  b: 1, c = 2; d 3\n  e {\n f: { g: true } }\n}\nh: {}\n");
    let a = get(&m, "a").as_map().map(|x| x.len());
    assert_eq!(a, Some(4));
    let Value::Map(a) = get(&m, "a") else {
        unreachable!()
    };
    let Value::Map(e) = get(a, "e") else {
        panic!("e")
    };
    let Value::Map(f) = get(e, "f") else {
        panic!("f")
    };
    assert_eq!(get(f, "g"), &Value::Bool(true));
    assert_eq!(get(&m, "h"), &Value::Map(Map::new()));
}

#[test]
fn order_is_preserved_and_last_definition_wins() {
    let m = parse("z: 1\na: 2\nm: 3\na: 4\n");
    let keys: Vec<&str> = m.iter().map(|(k, _)| k).collect();
    assert_eq!(keys, vec!["z", "m", "a"]);
    assert_eq!(get(&m, "a"), &Value::Int(4));
}

#[test]
fn whole_file_in_braces() {
    // nats-server 2.15 accepts JSON-looking files.
    let m = parse("{\n  \"port\": 4222,\n  \"debug\": true\n}\n");
    assert_eq!(get(&m, "port"), &Value::Int(4222));
    assert_eq!(get(&m, "debug"), &Value::Bool(true));
}

#[test]
fn positions_point_at_keys() {
    let m = parse("a: 1\n  bb: {\n    c: [x,\n  y]\n  }\n");
    let bb = m.get("bb").map(|n| (n.pos.line, n.pos.col));
    assert_eq!(bb, Some((2, 3)));
    let Value::Map(inner) = get(&m, "bb") else {
        panic!()
    };
    let c = inner.get("c").map(|n| (n.pos.line, n.pos.col));
    assert_eq!(c, Some((3, 5)));
    let items = inner
        .get("c")
        .and_then(|n| n.value.as_array())
        .unwrap_or(&[]);
    assert_eq!((items[1].pos.line, items[1].pos.col), (4, 3));
    assert_eq!(&*items[1].pos.file, Path::new("test.conf"));
}

#[test]
fn parse_errors_name_file_line_col() {
    let e = parse_err("port: 4222\nfoo {\n  bar: 1\n");
    assert_eq!(
        e.to_string(),
        "test.conf:4:1: Unexpected EOF processing map."
    );
    let e = parse_err("port 4222 x\n");
    // nats-server 2.15: same text, without position.
    assert_eq!(
        e.message,
        "Expected a top-level value to end with a new line, comment or EOF, but got 'x' instead."
    );
    assert_eq!((e.line, e.col), (1, 11));
    assert_eq!(parse_err("a: \"abc\n").message, "Unexpected EOF.");
    assert_eq!(parse_err("= 1\n").message, "Unexpected key separator '='");
    assert_eq!(
        parse_err("foo\n").message,
        "config is invalid: no value for key \"foo\""
    );
}

#[test]
fn variables_from_same_and_enclosing_blocks() {
    let m = parse("pass = 's3cr3t'\nport = 4222\nauth {\n  inner = 9\n  password: $pass\n  n: $inner\n  list: [$port]\n}\n");
    let Value::Map(auth) = get(&m, "auth") else {
        panic!()
    };
    assert_eq!(get(auth, "password"), &s("s3cr3t"));
    assert_eq!(get(auth, "n"), &Value::Int(9));
    let list = get(auth, "list").as_array().unwrap_or(&[]);
    assert_eq!(list[0].value, Value::Int(4222));
    // The definitions are marked so apply does not call them unknown fields.
    assert!(m.get("pass").is_some_and(|n| n.used_as_variable));
    assert!(!auth.get("password").is_some_and(|n| n.used_as_variable));
    // The reference keeps the position of where it is used.
    assert_eq!(auth.get("password").map(|n| n.pos.line), Some(5));
}

#[test]
fn variables_only_see_earlier_definitions() {
    let e = parse_err("a: $later\nlater: 1\n");
    assert_eq!(
        e.message,
        "variable reference for 'later' on line 1 can not be found"
    );
    let e = parse_err("a { x: 1 }\nb: $x\n");
    assert_eq!(
        e.to_string(),
        "test.conf:2:4: variable reference for 'x' on line 2 can not be found"
    );
}

#[test]
fn variables_fall_back_to_environment() {
    // Unique names: tests run in parallel and share the process environment.
    std::env::set_var("TRIBUNE_CFG_T_STR", "hello");
    std::env::set_var("TRIBUNE_CFG_T_SIZE", "2MB");
    std::env::set_var("TRIBUNE_CFG_T_MAP", "{ user: x, pass: y }");
    std::env::set_var("TRIBUNE_CFG_T_BAD", "a b");
    std::env::set_var("TRIBUNE_CFG_T_LOOP", "$TRIBUNE_CFG_T_LOOP");
    let m = parse("a: $TRIBUNE_CFG_T_STR\nb: $TRIBUNE_CFG_T_SIZE\nc: $TRIBUNE_CFG_T_MAP\n");
    assert_eq!(get(&m, "a"), &s("hello"));
    assert_eq!(get(&m, "b"), &Value::Int(2 * 1024 * 1024));
    assert!(matches!(get(&m, "c"), Value::Map(x) if x.get("pass").is_some()));
    // A key defined in the file shadows the environment.
    let m = parse("TRIBUNE_CFG_T_STR: local\na: $TRIBUNE_CFG_T_STR\n");
    assert_eq!(get(&m, "a"), &s("local"));
    // nats-server 2.15 reports the same two messages.
    let e = parse_err("a: $TRIBUNE_CFG_T_BAD\n");
    assert_eq!(e.message, "variable reference for 'TRIBUNE_CFG_T_BAD' on line 1 could not be parsed: Expected a top-level value to end with a new line, comment or EOF, but got 'b' instead.");
    let e = parse_err("a: $TRIBUNE_CFG_T_LOOP\n");
    assert_eq!(e.message, "variable reference for 'TRIBUNE_CFG_T_LOOP' on line 1 could not be parsed: variable reference for 'TRIBUNE_CFG_T_LOOP' on line 1 could not be parsed: variable reference cycle for 'TRIBUNE_CFG_T_LOOP'");
}

#[test]
fn bcrypt_hash_is_not_a_variable() {
    let m = parse("p: $2a$11$abcdefghijklmnopqrstuu\n");
    assert_eq!(get(&m, "p"), &s("$2a$11$abcdefghijklmnopqrstuu"));
}

#[test]
fn quoted_dollar_is_literal() {
    assert_eq!(get(&parse("p: \"$nope\"\n"), "p"), &s("$nope"));
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    let src = format!("a: {}\n", "[".repeat(100_000));
    assert!(parse_err(&src).message.contains("nested deeper"));
    let src = format!("a: {}\n", "{b: ".repeat(100_000));
    assert!(parse_err(&src).message.contains("nested deeper"));
}
