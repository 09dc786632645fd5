//! Runs every tribune-bench scenario with a handful of messages against a
//! real tribune-broker, so the benchmark tool is exercised by `make test`
//! and cannot rot. It measures nothing and asserts no time.

mod common;

use std::process::Command;

#[test]
fn every_scenario_runs() {
    let server = common::ServerSpec::new(common::tribune_bin(env!("CARGO_BIN_EXE_tribune-broker")))
        .start()
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tribune-bench"))
        .args(["smoke", "--addr", &format!("127.0.0.1:{}", server.port)])
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
        8,
        "{stdout}"
    );
}
