//! End-to-end tests through real files: includes, a realistic config, the
//! public API's error formatting, and garbage input that must not panic.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::{apply_file, apply_str, parse_file, parse_str, Value};
use crate::options::Options;

/// A fresh directory per test; std only, so no tempfile crate.
fn scratch_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tribune-config-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).expect("mkdir");
    }
    fs::write(&p, text).expect("write config");
    p
}

#[test]
fn include_is_relative_to_the_including_file() {
    let dir = scratch_dir();
    write(
        &dir,
        "conf/auth.conf",
        "authorization {\n  user: admin\n  password: $ADMIN_PASS\n}\n",
    );
    write(&dir, "conf/limits.conf", "max_payload: 2MB\n");
    let main = write(
        &dir,
        "conf/main.conf",
        "ADMIN_PASS: 'pw'\nport: 4333\ninclude ./limits.conf\ninclude 'auth.conf'\n",
    );
    // The included file cannot see the includer's variables (nats-server
    // parses includes on their own), so ADMIN_PASS must come from elsewhere.
    let err = parse_file(&main).expect_err("variable is not visible in include");
    assert!(
        err.to_string()
            .contains("auth.conf:3:13: variable reference for 'ADMIN_PASS'"),
        "{err}"
    );

    write(
        &dir,
        "conf/auth.conf",
        "authorization {\n  user: admin\n  password: secret\n}\n",
    );
    let main = write(
        &dir,
        "conf/main.conf",
        "port: 4333\ninclude ./limits.conf\ninclude 'auth.conf'\n",
    );
    let mut o = Options::default();
    let warnings = apply_file(&mut o, &main).expect("valid");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(o.port, 4333);
    assert_eq!(o.max_payload, 2 * 1024 * 1024);
    assert_eq!(o.password.as_deref(), Some("secret"));
    assert_eq!(o.config_file.as_deref(), Some(main.as_path()));
}

#[test]
fn include_inside_a_block_and_errors_point_into_the_included_file() {
    let dir = scratch_dir();
    write(&dir, "routes.conf", "routes: [ nats://a:6222 ]\nbogus: 1\n");
    let main = write(
        &dir,
        "main.conf",
        "cluster {\n  port: 6222\n  include routes.conf\n}\n",
    );
    let mut o = Options::default();
    let errs = apply_file(&mut o, &main).expect_err("bogus is unknown");
    let text = errs.to_string();
    let want = format!(
        "{}:2:1: unknown field \"bogus\"",
        dir.join("routes.conf").display()
    );
    assert_eq!(text, want);
}

#[test]
fn missing_and_cyclic_includes() {
    let dir = scratch_dir();
    let main = write(&dir, "main.conf", "port: 1\ninclude ./nope.conf\n");
    let err = parse_file(&main).expect_err("missing include");
    // nats-server 2.15: "error parsing include file './nope.conf', open nope.conf: no such file or directory"
    assert!(
        err.message
            .starts_with("error parsing include file './nope.conf', open "),
        "{err}"
    );
    assert_eq!((err.line, err.col), (2, 1));

    let a = write(&dir, "a.conf", "include b.conf\n");
    write(&dir, "b.conf", "include a.conf\n");
    let err = parse_file(&a).expect_err("cycle");
    assert!(err.message.contains("include cycle detected"), "{err}");
}

#[test]
fn missing_file() {
    let mut o = Options::default();
    let errs = apply_file(&mut o, Path::new("/nonexistent/tribune.conf")).expect_err("no file");
    assert!(
        errs.to_string()
            .starts_with("/nonexistent/tribune.conf: error opening config file: "),
        "{errs}"
    );
}

#[test]
fn all_errors_are_reported_one_per_line() {
    let mut o = Options::default();
    let errs =
        apply_str(&mut o, "foo: 1\nport: x\nbar: 2\n", Path::new("t.conf")).expect_err("errors");
    assert_eq!(errs.errors().len(), 3);
    assert_eq!(
        errs.to_string(),
        "t.conf:1:1: unknown field \"foo\"\n\
         t.conf:2:1: invalid type for field \"port\": expected integer, got string\n\
         t.conf:3:1: unknown field \"bar\""
    );
}

#[test]
fn parse_str_exposes_the_tree_for_later_blocks() {
    let root = parse_str(
        "accounts {\n  A: { users: [ {user: a} ] }\n}\n",
        Path::new("t.conf"),
    )
    .expect("parse");
    let Value::Map(root) = root else {
        panic!("root must be a map")
    };
    let accounts = root
        .get("accounts")
        .and_then(|n| n.value.as_map())
        .expect("accounts");
    let a = accounts.get("A").expect("A");
    assert_eq!((a.pos.line, a.pos.col), (2, 3));
}

#[test]
fn reload_is_apply_on_fresh_defaults() {
    let dir = scratch_dir();
    let path = write(&dir, "r.conf", "port: 4300\ndebug: true\n");
    let mut first = Options::default();
    apply_file(&mut first, &path).expect("first load");
    write(&dir, "r.conf", "port: 4301\n");
    let mut second = Options::default();
    apply_file(&mut second, &path).expect("reload");
    assert_eq!(second.port, 4301);
    assert!(
        !second.debug,
        "options removed from the file go back to defaults"
    );
}

/// A production-looking config using most supported syntax at once.
const FULL: &str = r#"
# Tribune node 1
server_name: "tribune-1"
listen: 0.0.0.0:4222
http: 127.0.0.1:8222
http_base_path: "/nats"

debug = false
trace: false
logtime: true
log_file: "/var/log/tribune/tribune.log"
pid_file: /var/run/tribune.pid

max_connections: 10K
max_payload: 4MB
max_pending: 128MB
max_control_line: 8KB
max_subscriptions: 10000
ping_interval: "1m"
ping_max: 3
write_deadline: "15s"
lame_duck_duration: "2m"
lame_duck_grace_period: "20s"

APP_PASS: "app-secret"
authorization {
  timeout: 3
  users: [
    { user: "admin", password: "$2a$11$W2zko751KUvVy59mUTWmpOdWjpEm5qhcCZRd05GjI/sSOT.xtiHyG" }
    { user: app, password: $APP_PASS, account: APP }
  ]
}
no_auth_user: app

cluster {
  name: "east"
  listen: "0.0.0.0:6222"
  routes = [
    nats-route://tribune-2:6222
    nats-route://tribune-3:6222 // third node
  ]
}

jetstream {
  store_dir: "/data/jetstream"
  max_memory_store: 1GB
  max_file_store: 100GB
}

leafnodes {
  port: 7422
}
"#;

#[test]
fn realistic_full_config() {
    let mut o = Options::default();
    let warnings = apply_str(&mut o, FULL, Path::new("/etc/tribune/tribune.conf")).expect("valid");
    assert_eq!(
        warnings,
        ["/etc/tribune/tribune.conf:50:1: option \"leafnodes\" is not supported by tribune-broker yet; ignoring"]
    );
    assert_eq!(o.server_name.as_deref(), Some("tribune-1"));
    assert_eq!((o.host.as_str(), o.port), ("0.0.0.0", 4222));
    assert_eq!((o.monitor_host(), o.http_port), ("127.0.0.1", Some(8222)));
    assert_eq!(o.max_connections, 10_000);
    assert_eq!(o.max_payload, 4 << 20);
    assert_eq!(o.max_pending, 128 << 20);
    assert_eq!(o.max_control_line, 8 << 10);
    assert_eq!(o.ping_interval, Duration::from_secs(60));
    assert_eq!(o.auth_timeout, Duration::from_secs(3));
    assert_eq!(o.users.len(), 2);
    assert!(o.users[0].password.starts_with("$2a$11$"));
    assert_eq!(o.users[1].password, "app-secret");
    assert_eq!(o.users[1].account.as_deref(), Some("APP"));
    assert_eq!(o.no_auth_user.as_deref(), Some("app"));
    assert_eq!(o.cluster.routes.len(), 2);
    assert_eq!(o.cluster.port, Some(6222));
    assert!(o.jetstream.enabled);
    assert_eq!(o.jetstream.max_file_store, Some(100 << 30));
}

/// Cheap deterministic fuzzing: every prefix of real configs, plus mutated
/// bytes, must give Ok or Err, never a panic.
#[test]
fn truncated_and_garbage_input_never_panics() {
    let mut inputs: Vec<String> = Vec::new();
    let samples = [
        FULL,
        "a: \"\\x4",
        "a: (\nb\n",
        "{ { a: [ { b: $",
        "a: 2024-01-0",
        "a: -",
        "x: 1e",
        "include ",
    ];
    for s in samples {
        let chars: Vec<char> = s.chars().collect();
        for end in 0..=chars.len() {
            inputs.push(chars[..end].iter().collect());
        }
    }
    // Byte substitutions with structural characters.
    let specials = [
        '{', '}', '[', ']', '"', '\'', '$', '\\', '\n', '=', ':', ',', '(', ')', '#', '-', '.', 'k',
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let base: Vec<char> = FULL.chars().collect();
    for _ in 0..3000 {
        let mut v = base.clone();
        for _ in 0..3 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let i = (seed as usize) % v.len();
            v[i] = specials[(seed >> 32) as usize % specials.len()];
        }
        inputs.push(v.into_iter().collect());
    }
    for input in &inputs {
        let mut o = Options::default();
        let _ = apply_str(&mut o, input, Path::new("/nonexistent/fuzz.conf"));
    }
}
