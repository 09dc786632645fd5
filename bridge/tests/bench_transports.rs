//! `make bench-bridge`: MQTT QoS 1 -> JetStream through the bridge over each
//! provider transport (`mqtt://`, `mqtts://`, `wss://`) into a stream with
//! one replica on one node and three replicas on a 3-node cluster, unpaced
//! (throughput) and paced (latency to stored). Ignored in `make test`: it
//! is a benchmark, run in release (`cargo test --release ... -- --ignored`),
//! and prints BENCHMARKS.md rows; it asserts nothing about speed.
//!
//! A test rather than `tribune-bridge bench` because the MQTT broker serving
//! `wss://` and `mqtts://` is rumqttd with its TLS and WebSocket features,
//! which only test builds have (bridge/Cargo.toml).
//!
//! Server: `BRIDGE_TEST_SERVER=nats|tribune` with `NATS_SERVER_BIN` /
//! `TRIBUNE_BROKER_BIN` (a release build). `BENCH_MSGS` (default 200,000),
//! `BENCH_LAT_MSGS` (20,000) at `BENCH_LAT_RATE` (5,000/s). To run part of
//! it (while profiling one path, say): `BENCH_REPLICAS=3` (or `1`) and
//! `BENCH_TRANSPORTS=wss` (a comma-separated list of `mqtt`, `mqtts`, `wss`).

mod support;

use support::ws_broker::ws_broker;
use support::*;
use tribune_bridge::bench::{self, BenchMqtt, BenchOptions};

/// CPU seconds (user + system) a process has used so far, from /proc.
fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime, stime: fields 14 and 15 of stat(5), 12 and 13 after the name.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    ticks as f64 / 100.0 // USER_HZ is 100 on Linux
}

/// Resident set size in MiB, from /proc.
fn rss_mib(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: make bench-bridge"]
async fn bridge_transports_and_replicas() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let mqtt = ws_broker(dir.path()).await;
    let provider_addr = mqtt
        .mqtt_url
        .trim_start_matches("mqtt://")
        .parse()
        .expect("the broker's TCP address");
    let server = std::env::var("BRIDGE_TEST_SERVER").unwrap_or_else(|_| "nats".into());
    let (msgs, lat_msgs) = (
        env_u64("BENCH_MSGS", 200_000),
        env_u64("BENCH_LAT_MSGS", 20_000),
    );
    let rate = env_u64("BENCH_LAT_RATE", 5_000) as f64;

    let wanted = |var: &str, what: &str| {
        std::env::var(var).map_or(true, |list| list.split(',').any(|w| w.trim() == what))
    };
    let mut rows = Vec::new();
    for replicas in [1usize, 3] {
        if !wanted("BENCH_REPLICAS", &replicas.to_string()) {
            continue;
        }
        let node_dir = dir.path().join(format!("r{replicas}"));
        std::fs::create_dir_all(&node_dir).unwrap();
        let nodes = if replicas == 1 {
            vec![NatsServer::start(&node_dir, None)]
        } else {
            NatsServer::cluster(&node_dir, 3)
        };
        for (url, ca) in [
            (&mqtt.mqtt_url, None),
            (&mqtt.mqtts_url, Some(mqtt.ca_file.clone())),
            (&mqtt.wss_url, Some(mqtt.ca_file.clone())),
        ] {
            let scheme = url.split("://").next().unwrap_or_default();
            if !wanted("BENCH_TRANSPORTS", scheme) {
                continue;
            }
            for (messages, rate) in [(msgs, 0.0), (lat_msgs, rate)] {
                let opts = BenchOptions {
                    nats_url: nodes[0].url(),
                    messages,
                    qos: 1,
                    label: server.clone(),
                    rate,
                    matches: 1000,
                    replicas,
                    mqtt: Some(BenchMqtt {
                        bridge_url: url.clone(),
                        ca_file: ca.clone(),
                        provider_addr,
                    }),
                };
                let pids: Vec<String> = nodes
                    .iter()
                    .filter_map(|n| n.pid().map(|p| p.to_string()))
                    .collect();
                let server_cpu = || pids.iter().map(|p| cpu_secs(p)).sum::<f64>();
                let (server0, bench0) = (server_cpu(), cpu_secs("self"));
                match bench::run(opts).await {
                    Ok(r) => {
                        let server_s = server_cpu() - server0;
                        let bench_s = cpu_secs("self") - bench0;
                        let rss: f64 = pids.iter().map(|p| rss_mib(p)).sum();
                        println!("{}", serde_json::to_string(&r).unwrap());
                        // CPU per second of the run, in cores; RSS of all nodes.
                        rows.push(format!(
                            "{} {:.2} | {:.2} | {:.0} MiB |",
                            r.markdown_row(),
                            server_s / r.seconds,
                            bench_s / r.seconds,
                            rss
                        ));
                    }
                    Err(e) => {
                        rows.push(format!("| {server} | {url} R{replicas} | failed: {e:#} |"))
                    }
                }
            }
        }
    }
    println!("| server | path | updates | offered | throughput | p50 | p99 | server CPU (cores) | bridge+MQTT CPU (cores) | server RSS |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!("{r}");
    }
}
