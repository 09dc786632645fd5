//! Differential test: every scenario in `tests/scenarios/*.txt` runs against
//! the reference `nats-server` and against `tribune-broker`; the recordings
//! must be equal after normalisation (see `common/scenario.rs`).
//!
//! Environment:
//! - `DIFF_SELF_CHECK=1`: run nats-server on both sides (validates the harness
//!   and the scenarios' determinism).
//! - `DIFF_FILTER=a,b`: only scenarios whose name contains one of the words.
//! - `DIFF_SHOW=1`: print both recordings of every scenario (use with
//!   `-- --nocapture`) — handy to see what nats-server does.
//! - `DIFF_JOBS=N`: scenarios run in parallel (default 4).
//! - `DIFF_MAX_REPORTS=N`: full failure reports for the first N failing
//!   scenarios (default 5), the first difference only for the others.
//! - `DIFF_INFO_OPTIONAL=k1,k2`: do not compare these INFO keys (exploration
//!   aid, to see past INFO differences; the real list is in common/scenario.rs).
//! - `NATS_SERVER_BIN`, `TRIBUNE_BROKER_BIN`: override the binaries.
//! - `TRIBUNE_KEEP_LOGS=1`: keep each server's temp dir (log, config).
//!
//! Adding a scenario = adding a `.txt` file; nothing to register.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use common::scenario::{compare, render, scenario_files, Scenario};

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

struct Outcome {
    name: String,
    failure: Option<String>,
}

fn run_one(sc: &Scenario, reference: &Path, candidate: &Path, labels: (&str, &str)) -> Outcome {
    // Both sides run at the same time: halves the wall time of slow scenarios.
    let (left, right) = std::thread::scope(|s| {
        let l = s.spawn(|| sc.run(reference));
        let r = s.spawn(|| sc.run(candidate));
        (
            l.join().expect("reference run panicked"),
            r.join().expect("candidate run panicked"),
        )
    });
    let (left, right) = match (left, right) {
        (Ok(l), Ok(r)) => (l, r),
        (l, r) => {
            let mut msg = format!("scenario {}: a server failed to start\n", sc.name);
            if let Err(e) = l {
                msg += &format!("  {}: {e}\n", labels.0);
            }
            if let Err(e) = r {
                msg += &format!("  {}: {e}\n", labels.1);
            }
            return Outcome {
                name: sc.name.clone(),
                failure: Some(msg),
            };
        }
    };
    let diff = compare(sc, labels.0, &left.records, labels.1, &right.records);
    if env_flag("DIFF_SHOW") {
        // One recording when both agree, both otherwise.
        let mut shown = format!(
            "=== {} ===\n--- {} ---\n{}",
            sc.name,
            labels.0,
            render(&left.records)
        );
        if diff.is_some() {
            shown += &format!("--- {} ---\n{}", labels.1, render(&right.records));
        }
        println!("{shown}");
    }
    let failure = diff.map(|report| {
        format!(
            "{report}\n{} logs:\n{}\n{} logs:\n{}\n",
            labels.0,
            left.log_excerpts(),
            labels.1,
            right.log_excerpts()
        )
    });
    Outcome {
        name: sc.name.clone(),
        failure,
    }
}

#[test]
fn differential_scenarios() {
    let reference = common::nats_server_bin();
    let self_check = env_flag("DIFF_SELF_CHECK");
    let candidate: PathBuf = if self_check {
        reference.clone()
    } else {
        common::tribune_bin(env!("CARGO_BIN_EXE_tribune-broker"))
    };
    let labels = if self_check {
        ("nats-server(1)", "nats-server(2)")
    } else {
        ("nats-server", "tribune-broker")
    };

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let filter: Vec<String> = std::env::var("DIFF_FILTER")
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let scenarios: Vec<Scenario> = scenario_files(&dir)
        .iter()
        .map(|p| Scenario::load(p).unwrap_or_else(|e| panic!("{e}")))
        .filter(|s| filter.is_empty() || filter.iter().any(|f| s.name.contains(f.as_str())))
        .collect();
    assert!(
        !scenarios.is_empty(),
        "no scenarios selected in {}",
        dir.display()
    );

    let jobs: usize = std::env::var("DIFF_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4)
        .max(1);
    let next = AtomicUsize::new(0);
    let outcomes = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.min(scenarios.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(sc) = scenarios.get(i) else { break };
                let o = run_one(sc, &reference, &candidate, labels);
                println!(
                    "scenario {:<40} {}",
                    o.name,
                    if o.failure.is_some() { "FAILED" } else { "ok" }
                );
                outcomes.lock().unwrap().push(o);
            });
        }
    });

    let mut outcomes = outcomes.into_inner().unwrap();
    outcomes.sort_by(|a, b| a.name.cmp(&b.name));
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.failure.is_some()).collect();
    if !failed.is_empty() {
        // Full reports (recordings, logs) for the first few; the first lines
        // (where it differs) for all of them.
        let max_reports: usize = std::env::var("DIFF_MAX_REPORTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5);
        let mut msg = String::new();
        for (i, o) in failed.iter().enumerate() {
            let report = o.failure.as_deref().unwrap_or_default();
            if i < max_reports {
                msg += report;
            } else {
                msg += &report
                    .lines()
                    .take_while(|l| !l.starts_with("full recordings"))
                    .collect::<Vec<_>>()
                    .join("\n");
                msg += "\n  (full report: DIFF_FILTER=";
                msg += &o.name;
                msg += ")\n";
            }
            msg += "\n";
        }
        msg += &format!(
            "{} of {} scenarios differ ({} vs {}): {}",
            failed.len(),
            outcomes.len(),
            labels.0,
            labels.1,
            failed
                .iter()
                .map(|o| o.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        panic!("{msg}");
    }
}

/// The harness's own plumbing, independent of any server.
#[test]
fn scenario_parser_and_normaliser() {
    use common::scenario::{escape, normalise, unescape, Event, Record};
    assert_eq!(
        unescape(r"PUB a 2\r\nhi\r\n\x20\t\\").unwrap(),
        b"PUB a 2\r\nhi\r\n \t\\"
    );
    assert_eq!(escape(b"a\r\n\x01"), r"a\r\n\x01");
    let sc = Scenario::parse(
        "t",
        Path::new("t.txt"),
        "# c\nserver s --user a\nconfig s max_payload: 8\\nfoo: 1\nconnect A\nsend A  x y \nping A\n",
    )
    .unwrap();
    assert_eq!(sc.servers[0].args, ["--user", "a"]);
    assert_eq!(
        sc.servers[0].config.as_deref(),
        Some("max_payload: 8\nfoo: 1")
    );
    assert!(matches!(&sc.steps[1].action, common::scenario::Action::Send(b) if b == b" x y "));
    let info = |json: &str| Record {
        conn: "A".into(),
        step_line: 1,
        event: Event::Line(format!("INFO {json} \r\n").into_bytes()),
    };
    // Ignored values and key order do not matter; other values and key sets do.
    let a = normalise(&info(r#"{"server_id":"X","port":1,"headers":true}"#));
    let b = normalise(&info(r#"{"headers":true,"port":2,"server_id":"Y"}"#));
    assert_eq!(a, b);
    let c = normalise(&info(r#"{"server_id":"X","port":1,"headers":false}"#));
    assert_ne!(a, c);
    let d = normalise(&info(r#"{"server_id":"X","headers":true}"#));
    assert_ne!(a, d);
    assert!(Scenario::parse("t", Path::new("t"), "bogus A\n").is_err());
}
