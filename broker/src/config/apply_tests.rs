//! Tests for mapping configs onto `Options`. Error texts marked "nats-server
//! 2.15" were compared with `nats-server -c x.conf -t` output.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{apply_str, ConfigErrors};
use crate::options::{Options, User};

fn apply(src: &str) -> (Options, Vec<String>) {
    let mut o = Options::default();
    match apply_str(&mut o, src, Path::new("x.conf")) {
        Ok(w) => (o, w),
        Err(e) => panic!("apply failed:\n{e}\n--- source ---\n{src}"),
    }
}

fn errors(src: &str) -> Vec<String> {
    let mut o = Options::default();
    match apply_str(&mut o, src, Path::new("x.conf")) {
        Ok(w) => panic!("expected errors, got Ok (warnings {w:?})"),
        Err(ConfigErrors(errs)) => errs.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn basic_top_level_options() {
    let (o, w) = apply(concat!(
        "server_name: n1\nhost: 127.0.0.1\nport: 4333\nclient_advertise: \"pub:4222\"\n",
        "debug: true\ntrace: on\nlogtime: false\nlogtime_utc: yes\n",
        "log_file: /var/log/t.log\npidfile: /run/t.pid\nports_file_dir: /tmp\n",
        "max_control_line: 2KB\nmax_payload: 2MB\nmax_pending: 32MB\n",
        "max_conn: 100\nmax_subs: 50\nping_interval: \"30s\"\nping_max: 3\n",
        "write_deadline: \"5s\"\nlame_duck_duration: \"1m\"\nlame_duck_grace_period: \"5s\"\n",
        "no_header_support: true\nhttp_base_path: /mon\n",
    ));
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(o.server_name.as_deref(), Some("n1"));
    assert_eq!(o.host, "127.0.0.1");
    assert_eq!(o.port, 4333);
    assert_eq!(o.client_advertise.as_deref(), Some("pub:4222"));
    assert!(o.debug && o.trace && !o.logtime && o.logtime_utc);
    assert_eq!(o.log_file, Some(PathBuf::from("/var/log/t.log")));
    assert_eq!(o.pid_file, Some(PathBuf::from("/run/t.pid")));
    assert_eq!(o.ports_file_dir, Some(PathBuf::from("/tmp")));
    assert_eq!(o.max_control_line, 2048);
    assert_eq!(o.max_payload, 2 * 1024 * 1024);
    assert_eq!(o.max_pending, 32 * 1024 * 1024);
    assert_eq!((o.max_connections, o.max_subs), (100, 50));
    assert_eq!(o.ping_interval, Duration::from_secs(30));
    assert_eq!(o.ping_max, 3);
    assert_eq!(o.write_deadline, Duration::from_secs(5));
    assert_eq!(o.lame_duck_duration, Duration::from_secs(60));
    assert_eq!(o.lame_duck_grace_period, Duration::from_secs(5));
    assert!(o.no_header_support);
    assert_eq!(o.http_base_path, "/mon");
}

#[test]
fn aliases() {
    let (o, _) = apply("net: 10.0.0.1\nlogfile: a.log\npid_file: p\nmax_connections: 7\nmax_subscriptions: 9\nmonitor_port: 8300\n");
    assert_eq!(o.host, "10.0.0.1");
    assert_eq!(o.log_file, Some(PathBuf::from("a.log")));
    assert_eq!(o.pid_file, Some(PathBuf::from("p")));
    assert_eq!((o.max_connections, o.max_subs), (7, 9));
    assert_eq!(o.http_port, Some(8300));
    // Keys are case-insensitive, as in nats-server.
    let (o, _) = apply("PORT: 4555\nDebug: true\n");
    assert_eq!(o.port, 4555);
    assert!(o.debug);
}

#[test]
fn listen_forms() {
    let (o, _) = apply("listen: \"127.0.0.1:4999\"\n");
    assert_eq!((o.host.as_str(), o.port), ("127.0.0.1", 4999));
    let (o, _) = apply("listen: 0.0.0.0:-1\n");
    assert_eq!(o.port, 0, "-1 means a random port");
    let (o, _) = apply("listen: \"[::1]:4223\"\n");
    assert_eq!((o.host.as_str(), o.port), ("::1", 4223));
    let (o, _) = apply("listen: 4224\n");
    assert_eq!((o.host.as_str(), o.port), ("0.0.0.0", 4224));
    // nats-server 2.15 wording for all three.
    assert_eq!(
        errors("listen: \"abc\"\n"),
        ["x.conf:1:1: could not parse address string \"abc\""]
    );
    assert_eq!(
        errors("listen: \"a:b\"\n"),
        ["x.conf:1:1: could not parse port \"b\""]
    );
    assert_eq!(
        errors("listen: true\n"),
        ["x.conf:1:1: expected port or host:port, got boolean"]
    );
}

#[test]
fn http_forms() {
    let (o, _) = apply("http: 8222\n");
    assert_eq!((o.monitor_host(), o.http_port), ("0.0.0.0", Some(8222)));
    let (o, _) = apply("http: \"localhost:8223\"\n");
    assert_eq!(
        (o.http_host.as_str(), o.http_port),
        ("localhost", Some(8223))
    );
    let (o, _) = apply("http_port: 8224\n");
    assert_eq!(o.http_port, Some(8224));
    // Without its own host, monitoring binds where clients do.
    let (o, _) = apply("host: 127.0.0.1\nhttp: 8222\n");
    assert_eq!(o.monitor_host(), "127.0.0.1");
    let (o, _) = apply("http_port: -1\n");
    assert_eq!(o.http_port, Some(0));
}

#[test]
fn zero_means_default_like_nats_server() {
    let d = Options::default();
    let (o, _) =
        apply("port: 0\nmax_payload: 0\nmax_pending: 0\nping_max: 0\nping_interval: \"0s\"\n");
    assert_eq!(o.port, d.port);
    assert_eq!(o.max_payload, d.max_payload);
    assert_eq!(o.max_pending, d.max_pending);
    assert_eq!(o.ping_max, d.ping_max);
    assert_eq!(o.ping_interval, d.ping_interval);
    let (o, _) = apply("max_connections: 0\n");
    assert_eq!(
        o.max_connections, 0,
        "zero refuses clients, as in nats-server"
    );
}

#[test]
fn durations_accept_integer_seconds_with_a_warning() {
    let (o, w) = apply("ping_interval: 30\nwrite_deadline: 3\n");
    assert_eq!(o.ping_interval, Duration::from_secs(30));
    assert_eq!(o.write_deadline, Duration::from_secs(3));
    // nats-server 2.15 prints exactly this warning.
    assert_eq!(w[0], "x.conf:1:1: invalid use of field \"ping_interval\": ping_interval should be converted to a duration");
    assert_eq!(w.len(), 2);
    let (o, _) = apply("ping_interval: 2m30s\n");
    assert_eq!(o.ping_interval, Duration::from_secs(150));
    assert_eq!(
        errors("ping_interval: \"1x\"\n"),
        ["x.conf:1:1: error parsing ping_interval: time: unknown unit \"x\" in duration \"1x\""]
    );
    assert_eq!(
        errors("lame_duck_duration: \"10s\"\n"),
        ["x.conf:1:1: invalid lame_duck_duration of 10s, minimum is 30 seconds"]
    );
    assert_eq!(
        errors("lame_duck_grace_period: \"-1s\"\n"),
        ["x.conf:1:1: invalid lame_duck_grace_period, needs to be positive"]
    );
}

#[test]
fn unknown_fields_are_errors_with_positions() {
    // nats-server 2.15: "x.conf:2:3: unknown field \"bar\"" (its columns are
    // 0-based on line 1 only; ours are 1-based everywhere).
    let errs = errors("foo: 1\n  bar: 2\nport: 4222\ncluster {\n  nope: true\n}\n");
    assert_eq!(
        errs,
        [
            "x.conf:1:1: unknown field \"foo\"",
            "x.conf:2:3: unknown field \"bar\"",
            "x.conf:5:3: unknown field \"nope\"",
        ]
    );
}

#[test]
fn variable_only_keys_are_not_unknown() {
    let (o, _) = apply("PASS: secret\nauthorization { user: u, password: $PASS }\n");
    assert_eq!(o.password.as_deref(), Some("secret"));
    // ... but an unused one is.
    assert_eq!(
        errors("PASS: secret\n"),
        ["x.conf:1:1: unknown field \"PASS\""]
    );
}

#[test]
fn type_errors_are_collected() {
    let errs = errors("debug: 1\ntrace: \"x\"\nport: true\nserver_name: 5\n");
    assert_eq!(
        errs,
        [
            "x.conf:1:1: invalid type for field \"debug\": expected boolean, got integer",
            "x.conf:2:1: invalid type for field \"trace\": expected boolean, got string",
            "x.conf:3:1: invalid type for field \"port\": expected integer, got boolean",
            "x.conf:4:1: invalid type for field \"server_name\": expected string, got integer",
        ]
    );
}

#[test]
fn limits() {
    // nats-server 2.15: "max_payload value is too big".
    assert_eq!(
        errors("max_payload: 3GB\n"),
        ["x.conf:1:1: max_payload value is too big"]
    );
    assert_eq!(
        errors("max_subs: -1\n"),
        ["x.conf:1:1: max_subs value can not be negative"]
    );
    assert_eq!(
        errors("port: 70000\n"),
        ["x.conf:1:1: invalid port 70000, must be between -1 and 65535"]
    );
    assert_eq!(
        errors("server_name: \"a b\"\n"),
        ["x.conf:1:1: server name cannot contain spaces"]
    );
}

#[test]
fn cross_option_validation() {
    assert_eq!(
        errors("max_pending: 100\nmax_payload: 1000\n"),
        ["x.conf:2:1: max_payload (1000) cannot be higher than max_pending (100)"]
    );
    assert_eq!(
        errors("lame_duck_duration: \"30s\"\nlame_duck_grace_period: \"45s\"\n"),
        ["x.conf:2:1: lame duck grace period (45s) should be strictly lower than lame duck duration (30s)"]
    );
    assert_eq!(
        errors("no_auth_user: bob\n"),
        ["x.conf:1:1: no_auth_user: \"bob\" present, but users/nkeys are not defined"]
    );
    let (_, w) = apply("max_payload: 16MB\n");
    assert!(
        w[0].contains("Maximum payloads over 8.00 MB are generally discouraged"),
        "{w:?}"
    );
}

#[test]
fn unsupported_options_warn() {
    let (_, w) = apply("leafnodes { port: 7422 }\ncluster { pool_size: 3 }\n");
    assert_eq!(
        w,
        [
            "x.conf:1:1: option \"leafnodes\" is not supported by tribune-broker yet; ignoring",
            "x.conf:2:11: option \"cluster.pool_size\" is not supported by tribune-broker yet; ignoring",
        ]
    );
}

#[test]
fn accounts_users_and_permissions() {
    let (o, w) = apply(concat!(
        "accounts {\n  APP: { users: [ {user: app, password: a, permissions: { publish: \"sports.>\", subscribe: { allow: [\"svc.>\"], deny: \"svc.x\" }, allow_responses: { max: 2, expires: \"1m\" } }} ],\n",
        "         exports: [ {stream: \"sports.>\"}, {service: \"svc.time\", accounts: [WEB]} ] }\n",
        "  WEB: { users: [ {nkey: UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4} ],\n",
        "         imports: [ {stream: {account: APP, subject: \"sports.>\"}, prefix: feed}, {service: {account: APP, subject: \"svc.time\"}, to: time} ] }\n",
        "}\nsystem_account: SYS\nauthorization { default_permissions: { publish: { deny: \">\" } } }\n",
    ));
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(o.accounts.len(), 2);
    assert_eq!(o.system_account.as_deref(), Some("SYS"));
    let app = o.users.iter().find(|u| u.username == "app").unwrap();
    assert_eq!(app.account.as_deref(), Some("APP"));
    let p = app.permissions.as_ref().unwrap();
    assert!(p.can_publish("sports.x") && !p.can_publish("other"));
    assert_eq!(p.allow_responses.unwrap().max_msgs, 2);
    let web = o.users.iter().find(|u| u.nkey.is_some()).unwrap();
    assert_eq!(web.account.as_deref(), Some("WEB"));
    assert_eq!(o.accounts[1].imports[0].to.as_deref(), Some("feed"));
    assert!(!o.default_permissions.unwrap().can_publish("x"));
    assert!(!errors("accounts { A: { users: [ {nkey: NOTAKEY} ] } }\n").is_empty());
}

#[test]
fn unsupported_security_options_are_errors() {
    assert_eq!(
        errors("resolver_pinned_accounts: [A]\ndefault_sentinel: x\nauthorization { users: [ {user: a, pass: b, proxy_required: true} ] }\n"),
        [
            "x.conf:1:1: option \"resolver_pinned_accounts\" is not supported by tribune-broker yet; refusing to run without it",
            "x.conf:2:1: option \"default_sentinel\" is not supported by tribune-broker yet; refusing to run without it",
            "x.conf:3:45: option \"authorization.users.proxy_required\" is not supported by tribune-broker yet; refusing to run without it",
        ]
    );
    assert_eq!(
        errors("accounts { A: { exports: [ {stream: \"a.*\", account_token_position: 2} ] } }\n"),
        ["x.conf:1:44: option \"exports.account_token_position\" is not supported by tribune-broker yet; refusing to run without it"]
    );
    // Encryption at rest, the API's domain and replica placement by tag
    // change what is promised: never ignored.
    assert_eq!(
        errors("jetstream { key: \"s3cr3t\", domain: hub, unique_tag: \"az:\" }\n"),
        [
            "x.conf:1:13: option \"jetstream.key\" is not supported by tribune-broker yet; refusing to run without it",
            "x.conf:1:28: option \"jetstream.domain\" is not supported by tribune-broker yet; refusing to run without it",
            "x.conf:1:41: option \"jetstream.unique_tag\" is not supported by tribune-broker yet; refusing to run without it",
        ]
    );
}

/// `default_permissions` bind the users of their own block or account that
/// have none, as nats-server applies them when it reads the configuration:
/// an account's defaults never reach another account's users, and the
/// authorization block's never reach account users.
#[test]
fn default_permissions_go_to_their_own_users() {
    let (o, w) = apply(concat!(
        "accounts {\n",
        "  APP: { users: [ {user: a, password: x}, {user: b, password: x, permissions: { publish: \"b.>\" }} ],\n",
        "         default_permissions: { publish: { deny: \">\" } } }\n",
        "  WEB: { users: [ {user: w, password: x} ] }\n",
        "}\n",
        "authorization { default_permissions: { subscribe: { deny: \">\" } }, users: [ {user: g, password: x} ] }\n",
    ));
    assert!(w.is_empty(), "{w:?}");
    let perms = |name: &str| {
        o.users
            .iter()
            .find(|u| u.username == name)
            .unwrap()
            .permissions
            .clone()
    };
    let a = perms("a").expect("account defaults");
    assert!(!a.can_publish("x"));
    let b = perms("b").expect("own permissions");
    assert!(b.can_publish("b.1") && !b.can_publish("x"));
    assert!(
        perms("w").is_none(),
        "another account's defaults do not apply"
    );
    let g = perms("g").expect("authorization defaults");
    assert!(g.check_subscribe("x", None) == crate::permissions::SubVerdict::Denied);
    let app = o.accounts.iter().find(|a| a.name == "APP").unwrap();
    assert!(app.default_permissions.is_some(), "kept for callout users");
}

#[test]
fn account_limits() {
    use crate::limits::Limit;
    let (o, w) = apply(
        "accounts { A: { limits: { max_connections: 2, max_subs: 0, max_payload: 1024 } }, B: { limits: { max_conn: -1 } } }\n",
    );
    assert!(w.is_empty(), "{w:?}");
    let a = &o.accounts[0].limits;
    assert_eq!(a.max_connections, Limit::AtMost(2));
    assert_eq!(
        a.conn.subs,
        Limit::AtMost(0),
        "0 is zero, as in nats-server"
    );
    assert_eq!(a.conn.payload, Limit::AtMost(1024));
    assert_eq!(o.accounts[1].limits.max_connections, Limit::Unlimited);
    assert_eq!(
        errors("accounts { A: { limits: { max_bogus: 1 } } }\n"),
        ["x.conf:1:27: Unknown field \"max_bogus\" parsing account limits"]
    );
}

#[test]
fn allowed_connection_types() {
    let (o, w) = apply(
        "authorization { users: [ {user: a, password: b, allowed_connection_types: [\"standard\", \"WEBSOCKET\"]} ] }\n",
    );
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(
        o.users[0].allowed_connection_types,
        ["STANDARD", "WEBSOCKET"]
    );
    assert_eq!(
        errors("authorization { users: [ {user: a, password: b, allowed_connection_types: [\"STANDARD\", \"FOO\", \"bar\"]} ] }\n"),
        ["x.conf:1:49: invalid connection types [\"FOO\" \"BAR\"]"]
    );
}

#[test]
fn authorization_single_user_and_token() {
    let (o, w) = apply("authorization { user: u, password: p, timeout: 1.5 }\n");
    assert!(w.is_empty());
    assert_eq!(
        (o.username.as_deref(), o.password.as_deref()),
        (Some("u"), Some("p"))
    );
    assert_eq!(o.auth_timeout, Duration::from_millis(1500));
    let (o, _) = apply("authorization { token: \"t0k\" }\n");
    assert_eq!(o.authorization.as_deref(), Some("t0k"));
    assert!(o.auth_required());
    // nats-server 2.15 wording.
    assert_eq!(
        errors("authorization { user: a, pass: b, token: c }\n"),
        ["x.conf:1:1: Cannot have a user/pass and token"]
    );
    assert_eq!(
        errors("authorization { users: [], user: x }\n"),
        ["x.conf:1:1: Can not have a single user/pass and a users array"]
    );
    let (_, w) = apply("authorization { user: a, pass: b, timeout: 90 }\n");
    assert!(w[0].starts_with("x.conf:1:35: invalid use of field \"timeout\": timeout of 90 (90.000000 seconds) is high"), "{w:?}");
}

#[test]
fn authorization_users() {
    let (o, w) = apply(concat!(
        "authorization {\n  users = [\n    {user: alice, password: a1}\n",
        "    {username: bob, pass: \"$2a$11$xyz\", account: SALES}\n  ]\n}\n",
        "no_auth_user: alice\n",
    ));
    assert_eq!(
        o.users,
        vec![
            User {
                username: "alice".into(),
                password: "a1".into(),
                account: None,
                ..Default::default()
            },
            User {
                username: "bob".into(),
                password: "$2a$11$xyz".into(),
                account: Some("SALES".into()),
                ..Default::default()
            },
        ]
    );
    assert_eq!(o.no_auth_user.as_deref(), Some("alice"));
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(
        errors("authorization { users: [ {user: a}, {user: a} ] }\n"),
        ["x.conf:1:1: Duplicate user \"a\" detected"]
    );
    assert_eq!(
        errors("authorization { users: [ {password: a} ] }\n"),
        ["x.conf:1:26: User entry requires a user"]
    );
    assert_eq!(
        errors("authorization { users: [ {user: a} ] }\nno_auth_user: b\n"),
        ["x.conf:2:1: no_auth_user: \"b\" not present as user or nkey in authorization block or account configuration"]
    );
}

#[test]
fn cluster_block() {
    let (o, w) = apply(concat!(
        "cluster {\n  name: east\n  listen: 0.0.0.0:6222\n  no_advertise: true\n",
        "  routes: [\n    nats-route://a:6222\n    nats-route://b:6222\n    nats-route://a:6222\n  ]\n}\n",
    ));
    assert_eq!(o.cluster.name.as_deref(), Some("east"));
    assert_eq!(
        (o.cluster.host.as_str(), o.cluster.port),
        ("0.0.0.0", Some(6222))
    );
    assert!(o.cluster.no_advertise);
    assert_eq!(
        o.cluster.routes,
        ["nats-route://a:6222", "nats-route://b:6222"]
    );
    // nats-server 2.15 warns about the duplicate with this text.
    assert_eq!(w, ["x.conf:8:5: invalid use of field \"nats-route://a:6222\": Duplicate route entry detected"]);
    let (o, _) = apply("cluster { host: 10.1.1.1, port: 7222 }\n");
    assert_eq!(
        (o.cluster.host.as_str(), o.cluster.port),
        ("10.1.1.1", Some(7222))
    );
    assert_eq!(
        errors("cluster: 5\n"),
        ["x.conf:1:1: Expected map to define cluster, got integer"]
    );
    assert_eq!(
        errors("cluster { name: \"a b\" }\n"),
        ["x.conf:1:11: cluster name cannot contain spaces"]
    );
}

/// `cluster { authorization { user, password, timeout } }`: the timeout is
/// nats-server's `timeout` (seconds, a float, or a duration string).
#[test]
fn cluster_authorization() {
    let (o, w) = apply(
        "cluster {\n  port: 6222\n  authorization { user: r, password: \"$2a$11$abc\", timeout: 0.5 }\n}\n",
    );
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(o.cluster.username.as_deref(), Some("r"));
    assert_eq!(o.cluster.password.as_deref(), Some("$2a$11$abc"));
    assert_eq!(o.cluster.auth_timeout, Duration::from_millis(500));
    let (o, _) =
        apply("cluster { port: 6222, authorization { user: r, password: p, timeout: \"3s\" } }\n");
    assert_eq!(o.cluster.auth_timeout, Duration::from_secs(3));
    // Unset (or 0) is left for resolve_defaults.
    let (o, _) =
        apply("cluster { port: 6222, authorization { user: r, password: p, timeout: 0 } }\n");
    assert_eq!(o.cluster.auth_timeout, Duration::ZERO);
    // nats-server's text (its column is one less, as for the top-level
    // authorization timeout).
    let errs =
        errors("cluster { port: 6222, authorization { user: r, password: p, timeout: \"1x\" } }\n");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].ends_with(
            "error parsing authorization config, 'timeout' time: unknown unit \"x\" in duration \"1x\""
        ),
        "{errs:?}"
    );
}

#[test]
fn jetstream_forms() {
    assert!(apply("jetstream: true\n").0.jetstream.enabled);
    assert!(apply("jetstream: enabled\n").0.jetstream.enabled);
    assert!(!apply("jetstream: disabled\n").0.jetstream.enabled);
    let (o, _) =
        apply("jetstream { store_dir: /data, max_memory_store: 1GB, max_file_store: \"10G\" }\n");
    let js = &o.jetstream;
    assert!(js.enabled);
    assert_eq!(js.store_dir, Some(PathBuf::from("/data")));
    assert_eq!(js.max_memory_store, Some(1 << 30));
    assert_eq!(js.max_file_store, Some(10 << 30));
    assert!(!apply("jetstream { enabled: false }\n").0.jetstream.enabled);
    let (o, _) = apply("store_dir: /srv/js\njetstream: true\n");
    assert_eq!(o.jetstream.store_dir, Some(PathBuf::from("/srv/js")));
    // nats-server 2.15 wording.
    assert_eq!(
        errors("jetstream: maybe\n"),
        ["x.conf:1:1: Expected 'enabled' or 'disabled' for string value, got 'maybe'"]
    );
    assert_eq!(
        errors("jetstream { max_mem: \"1X\" }\n"),
        ["x.conf:1:13: max_mem_store sizes defined as strings must end in K, M, G, T"]
    );
    assert_eq!(
        errors("jetstream { max_mem: 1.5 }\n"),
        ["x.conf:1:13: max_mem_store must be int64 or string"]
    );
    assert_eq!(
        errors("store_dir: /a\njetstream { store_dir: /b }\n"),
        ["x.conf:2:13: Duplicate 'store_dir' configuration"]
    );
}

#[test]
fn jetstream_server_limits() {
    let (o, w) = apply(
        "jetstream { limits { max_ack_pending: 500, max_request_batch: 100, \
         duplicate_window: \"30s\", max_ha_assets: 10 } }\n",
    );
    let l = o.jetstream.limits;
    assert_eq!(
        (l.max_ack_pending, l.max_request_batch, l.duplicate_window),
        (500, 100, Duration::from_secs(30))
    );
    // Not applied yet, and said so rather than ignored silently.
    assert_eq!(
        w,
        ["x.conf:1:93: option \"jetstream.limits.max_ha_assets\" is not supported by tribune-broker yet; ignoring"]
    );
    assert_eq!(
        errors("jetstream { limits: 5 }\n"),
        ["x.conf:1:13: Expected a map to define JetStreamLimits, got integer"]
    );
    assert_eq!(
        errors("jetstream { limits { max_batch: 5 } }\n"),
        ["x.conf:1:22: unknown field \"max_batch\""]
    );
}

#[test]
fn empty_config_warns() {
    let (_, w) = apply("# nothing here\n");
    assert_eq!(w, ["x.conf: config has no values or is empty"]);
}

#[test]
fn several_nkey_users_in_authorization() {
    let a = nkeys::KeyPair::new_user().public_key();
    let b = nkeys::KeyPair::new_user().public_key();
    let (o, _) = apply(&format!(
        "authorization {{ users: [ {{ nkey: {a} }}, {{ nkey: {b} }} ] }}"
    ));
    assert_eq!(o.users.len(), 2);
    let errs = errors(&format!(
        "authorization {{ users: [ {{ nkey: {a} }}, {{ nkey: {a} }} ] }}"
    ));
    assert!(errs[0].contains("Duplicate nkey"), "{errs:?}");
}
