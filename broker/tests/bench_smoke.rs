//! Runs every tribune-bench scenario with a handful of messages against a
//! real server, so the benchmark tool is exercised by `make test` and
//! cannot rot. It measures nothing and asserts no time.
//!
//! The core scenarios run against tribune-broker; the JetStream ones run
//! against the JetStream flavors (`common/js.rs`: nats-server always,
//! tribune-broker per the flavor switch), with the same
//! `jetstream { sync_interval: always }` the comparison uses. The auth
//! flood runs against both servers with the users the tool itself prints
//! (`tribune-bench auth-flood-config`), at bcrypt cost 4 rather than the
//! comparison's 11 so that a debug build stays quick: the flood reads each
//! server's refusals, and the comparison relies on reading nats-server's.
//! The clustered JetStream scenarios start their own 3-node clusters, so
//! they run through `compare` itself, one short round of each.

mod common;

use std::path::Path;
use std::process::Command;

const CORE: &[&str] = &[
    "pub16",
    "pub128",
    "pub-sub",
    "fanout",
    "queue",
    "req-rep",
    "idle",
    "connect-burst",
    "cross-node",
    "mass-fanout1k",
    "mass-fanout1k-cluster",
    "churn",
    "cluster-fanout",
    "cluster-queue",
];
const JETSTREAM: &[&str] = &["js-pub", "js-fetch"];

const BENCH: &str = env!("CARGO_BIN_EXE_tribune-bench");

fn smoke(server: &common::Server, scenarios: &[&str]) {
    let out = Command::new(BENCH)
        .args(["smoke", "--addr", &format!("127.0.0.1:{}", server.port)])
        .arg("--scenario")
        .args(scenarios)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log_excerpt()
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("smoke ")).count(),
        scenarios.len(),
        "{stdout}"
    );
}

#[test]
fn every_scenario_runs() {
    let server = common::ServerSpec::new(common::tribune_bin(env!("CARGO_BIN_EXE_tribune-broker")))
        .start()
        .unwrap();
    smoke(&server, CORE);
}

#[test]
fn jetstream_scenarios_run() {
    for f in common::js::flavors(env!("CARGO_BIN_EXE_tribune-broker")) {
        eprintln!("=== {}", f.label);
        let server = common::ServerSpec::new(Path::new(&f.bin))
            .config("jetstream {\n  store_dir: \"{dir}/js\"\n  sync_interval: always\n}\n")
            .start()
            .unwrap_or_else(|e| panic!("{}: {e}", f.label));
        smoke(&server, JETSTREAM);
    }
}

#[test]
fn auth_flood_runs_against_both_servers() {
    let out = Command::new(BENCH)
        .args(["auth-flood-config", "--cost", "4"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let config = String::from_utf8(out.stdout).unwrap();
    for (label, bin) in common::both_servers() {
        eprintln!("=== {label}");
        let server = common::ServerSpec::new(bin)
            .config(config.clone())
            .start()
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        smoke(&server, &["auth-flood"]);
    }
}

/// `tribune-bench compare` of both servers with `args`; its stdout and
/// stderr once it has succeeded and every row has a figure for both
/// servers (a server with no finished round shows "failed"; NaN was the
/// renderer's word for it before).
fn compare(args: &[&str]) -> (String, String) {
    let nats = common::nats_server_bin();
    let tribune = common::tribune_bin(env!("CARGO_BIN_EXE_tribune-broker"));
    let out = Command::new(BENCH)
        .arg("compare")
        .arg("--nats-server")
        .arg(&nats)
        .arg("--tribune")
        .arg(&tribune)
        .args(["--rounds", "1"])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(!stdout.contains("| NaN |"), "{stdout}");
    assert!(!stdout.contains("| failed |"), "{stdout}");
    (stdout, stderr)
}

/// How many rows of the table name `metric` (as `| metric |`).
fn rows_of(stdout: &str, metric: &str) -> usize {
    stdout.lines().filter(|l| l.contains(metric)).count()
}

#[test]
fn js_cluster_scenarios_run_against_both_servers() {
    let (stdout, stderr) = compare(&[
        "--js-r3-msgs",
        "500",
        "--failovers",
        "1",
        "--scenario",
        "js-r3-pub",
        "js-r3-failover",
    ]);
    // Two nats-server settings for the publish row, one for the failover.
    for (metric, rows) in [("| msgs/s |", 2), ("| kill -> next ack, median (ms) |", 1)] {
        assert_eq!(rows_of(&stdout, metric), rows, "{stdout}\n{stderr}");
    }
}

#[test]
fn websocket_scenarios_run_against_both_servers() {
    // Through `compare`, which gives both servers the same websocket block.
    let (stdout, stderr) = compare(&[
        "--ws-conns",
        "50",
        "--ws-events",
        "2",
        "--scenario",
        "ws-fanout",
        "ws-idle",
    ]);
    for metric in [
        "| delivery p99 (ms) |",
        "| server CPU s / M deliveries |",
        "| RSS above baseline per 10,000 (MiB) |",
    ] {
        assert_eq!(rows_of(&stdout, metric), 1, "{metric}\n{stdout}\n{stderr}");
    }
    // Every delivery had the kernel's receive stamp.
    assert!(!stderr.contains("without kernel stamp"), "{stderr}");
}

/// The match-night rows through `compare`: the NKEY storms (whose user
/// only `compare` configures, the same for both servers; their clients
/// come from worker processes) and the mass fan-outs, each on one server
/// and on a 3-node cluster, with a handful of clients, held by worker
/// processes of at most 12 (30 subscribers: 3 of 10), as the
/// 50,000-subscriber fan-out's are by workers of at most 15,000.
#[test]
fn match_night_scenarios_run_against_both_servers() {
    let (stdout, stderr) = compare(&[
        "--storm-conns",
        "40",
        "--mass-conns",
        "30",
        "--mass-events",
        "3",
        "--mass-per-process",
        "12",
        "--scenario",
        "storm-nkey",
        "storm-nkey-cluster",
        "mass-fanout1k",
        "mass-fanout1k-cluster",
    ]);
    for (metric, rows) in [
        ("| time to all subscribed (ms) |", 2),
        ("| failed attempts |", 2),
        ("| bench CPU s |", 4),
        ("| last sub has it, p99 (ms) |", 2),
    ] {
        assert_eq!(rows_of(&stdout, metric), rows, "{stdout}\n{stderr}");
    }
    assert!(!stdout.contains("Failed measurements"), "{stdout}");
}

/// The lame-duck row through `compare`: a handful of storm clients on a
/// 3-node cluster of each server, then one node's lame duck (30 s, the
/// shortest nats-server accepts) moves its clients to the other two.
#[test]
fn lame_duck_storm_runs_against_both_servers() {
    let (stdout, stderr) = compare(&["--storm-conns", "30", "--scenario", "storm-lame-duck"]);
    for metric in [
        "| moved clients |",
        "| re-login after close, p99 (ms) |",
        "| failed attempts |",
    ] {
        assert_eq!(rows_of(&stdout, metric), 1, "{metric}\n{stdout}\n{stderr}");
    }
    // Every third client was on the node that went.
    let moved = stdout
        .lines()
        .find(|l| l.contains("| moved clients |"))
        .unwrap_or_default();
    assert!(moved.contains("| 10.00 | 10.00 |"), "{moved}\n{stdout}");
}

/// The auth-callout storm through `compare`: a handful of web users on a
/// 3-node cluster of each server, each node with `auth_callout` and a
/// tribune-auth beside it (the one cargo built next to tribune-broker:
/// build the workspace first).
#[test]
fn callout_storm_runs_against_both_servers() {
    let (stdout, stderr) = compare(&["--storm-conns", "30", "--scenario", "storm-callout"]);
    for metric in [
        "| time to all subscribed (ms) |",
        "| failed attempts |",
        "| tribune-auth CPU s (3) |",
    ] {
        assert_eq!(rows_of(&stdout, metric), 1, "{metric}\n{stdout}\n{stderr}");
    }
    assert!(!stdout.contains("Not measured"), "{stdout}");
}
