//! Side-by-side runs of nats-server and tribune-broker, and the report.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::js_cluster::{self, NatsSync};
use crate::scenarios::{self, Outcome, Params, Scenario};
use crate::servers::{self, Cluster, JS_SYNC};

/// Let the idle-connection scenario open enough sockets.
pub fn raise_fd_limit(conns: u64) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let want = (conns * 2 + 1024).min(hard);
        if soft < want {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, want, hard);
        }
    }
}

/// One line describing an outcome.
pub fn describe(o: &Outcome) -> String {
    let mut parts = Vec::new();
    if let Some(r) = o.rate {
        parts.push(format!("{r:.0}/s"));
    }
    if let Some(c) = o.cpu_per_million {
        parts.push(format!("{c:.3} server cpu-s per M deliveries"));
    }
    if let Some((p50, p99, p999)) = o.latency_us {
        parts.push(format!("p50 {p50:.1}us p99 {p99:.1}us p99.9 {p999:.1}us"));
    }
    if let Some(max) = o.latency_max_us {
        parts.push(format!("max {max:.1}us"));
    }
    if let Some((p50, p99, max)) = o.last_delivery_us {
        parts.push(format!(
            "last sub p50 {p50:.1}us p99 {p99:.1}us max {max:.1}us"
        ));
    }
    if let Some(l) = o.logins {
        parts.push(format!(
            "refused {:.1} wrong logins/s ({:.1}/s Authentication Timeout), admitted {} of {} right ones",
            l.refused_per_sec, l.timeouts_per_sec, l.right_admitted, l.right_tried
        ));
    }
    if !o.failover_ms.is_empty() {
        let ms: Vec<String> = o.failover_ms.iter().map(|m| format!("{m:.0}")).collect();
        parts.push(format!("failover {} ms", ms.join(", ")));
    }
    if let Some(c) = o.server_cpu {
        parts.push(format!("server cpu {c:.2}s"));
    }
    if let Some(rss) = o.rss {
        parts.push(format!("rss {:.1} MiB", rss as f64 / 1048576.0));
    }
    if let Some(g) = o.rss_per_10k {
        parts.push(format!("(+{:.1} MiB per 10,000 conns)", g / 1048576.0));
    }
    for (name, v) in &o.notes {
        parts.push(format!("{name} {v:.1}"));
    }
    parts.push(format!(
        "(bench cpu {:.2}s, wall {:.2}s)",
        o.bench_cpu,
        o.elapsed.as_secs_f64()
    ));
    parts.join("  ")
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One table row: a metric for both servers.
struct Row {
    scenario: String,
    metric: &'static str,
    nats: f64,
    tribune: f64,
    /// Ratio tribune/nats-server, and the target as text.
    target: &'static str,
    higher_is_better: bool,
}

/// The rows of scenario `s` (titled `title`) from each server's outcomes,
/// one per round.
fn rows_for(s: Scenario, title: &str, nats: &[Outcome], tri: &[Outcome]) -> Vec<Row> {
    let pick = |v: &[Outcome], f: &dyn Fn(&Outcome) -> Option<f64>| {
        median(v.iter().filter_map(f).collect())
    };
    let row = |metric, f: &dyn Fn(&Outcome) -> Option<f64>, target, higher_is_better| Row {
        scenario: title.to_string(),
        metric,
        nats: pick(nats, f),
        tribune: pick(tri, f),
        target,
        higher_is_better,
    };
    match s {
        Scenario::Fanout => vec![
            row("deliveries/s", &|o| o.rate, ">= 2.0x", true),
            row(
                "server CPU s / M deliveries",
                &|o| o.cpu_per_million,
                "<= 0.4x",
                false,
            ),
            row("server RSS (MiB)", &|o| mib(o.rss), "-", false),
        ],
        Scenario::ReqRep => vec![
            row(
                "p50 latency (us)",
                &|o| o.latency_us.map(|l| l.0),
                "-",
                false,
            ),
            row(
                "p99 latency (us)",
                &|o| o.latency_us.map(|l| l.1),
                "<= 0.8x",
                false,
            ),
            row(
                "p99.9 latency (us)",
                &|o| o.latency_us.map(|l| l.2),
                "-",
                false,
            ),
            row(
                "server CPU s / M msgs (requests and replies)",
                &|o| o.cpu_per_million,
                "-",
                false,
            ),
        ],
        Scenario::ConnectBurst => vec![
            row("connections/s", &|o| o.rate, "-", true),
            row(
                "wall time (ms)",
                &|o| Some(o.elapsed.as_secs_f64() * 1000.0),
                "-",
                false,
            ),
            row("server CPU s", &|o| o.server_cpu, "-", false),
            row(
                "server RSS (MiB)",
                &|o| o.rss.map(|r| r as f64 / 1048576.0),
                "-",
                false,
            ),
        ],
        Scenario::Idle => vec![
            row(
                "server RSS (MiB)",
                &|o| o.rss.map(|r| r as f64 / 1048576.0),
                "<= 0.5x",
                false,
            ),
            // One client connecting after another, each waiting for its
            // PONG only at the end: the accept path's steady rate.
            row("connections/s", &|o| o.rate, "-", true),
        ],
        Scenario::AuthFlood => {
            let ms = |us: Option<f64>| us.map(|us| us / 1000.0);
            vec![
                row(
                    "round trip p50 (ms)",
                    &|o| ms(o.latency_us.map(|l| l.0)),
                    "-",
                    false,
                ),
                row(
                    "round trip p99 (ms)",
                    &|o| ms(o.latency_us.map(|l| l.1)),
                    "-",
                    false,
                ),
                row("round trip max (ms)", &|o| ms(o.latency_max_us), "-", false),
                row("round trips/s", &|o| o.rate, "-", true),
                row(
                    "wrong logins refused/s",
                    &|o| o.logins.map(|l| l.refused_per_sec),
                    "-",
                    true,
                ),
                row(
                    "of which Authentication Timeout /s",
                    &|o| o.logins.map(|l| l.timeouts_per_sec),
                    "-",
                    false,
                ),
                row(
                    "right bcrypt logins admitted (%)",
                    &|o| {
                        o.logins
                            .filter(|l| l.right_tried > 0)
                            .map(|l| 100.0 * l.right_admitted as f64 / l.right_tried as f64)
                    },
                    "-",
                    true,
                ),
                row("server CPU s", &|o| o.server_cpu, "-", false),
                row(
                    "server RSS (MiB)",
                    &|o| o.rss.map(|r| r as f64 / 1048576.0),
                    "-",
                    false,
                ),
            ]
        }
        Scenario::JsR3Pub => {
            let ms = |us: Option<f64>| us.map(|us| us / 1000.0);
            vec![
                row("msgs/s", &|o| o.rate, "-", true),
                row(
                    "ack p50 (ms)",
                    &|o| ms(o.latency_us.map(|l| l.0)),
                    "-",
                    false,
                ),
                row(
                    "ack p99 (ms)",
                    &|o| ms(o.latency_us.map(|l| l.1)),
                    "-",
                    false,
                ),
                row("server CPU s, 3 nodes", &|o| o.server_cpu, "-", false),
                row(
                    "peak RSS, 3 nodes (MiB)",
                    &|o| o.rss.map(|r| r as f64 / 1048576.0),
                    "-",
                    false,
                ),
            ]
        }
        Scenario::JsR3Failover => {
            // Every kill of every round is one sample.
            let all = |v: &[Outcome]| -> Vec<f64> {
                v.iter()
                    .flat_map(|o| o.failover_ms.iter().copied())
                    .collect()
            };
            let max = |v: Vec<f64>| v.into_iter().fold(f64::NAN, f64::max);
            let row2 = |metric, f: &dyn Fn(Vec<f64>) -> f64| Row {
                scenario: title.to_string(),
                metric,
                nats: f(all(nats)),
                tribune: f(all(tri)),
                target: "-",
                higher_is_better: false,
            };
            vec![
                row2("kill -> next ack, median (ms)", &median),
                row2("kill -> next ack, max (ms)", &max),
            ]
        }
        Scenario::WsFanout => {
            let ms = |us: Option<f64>| us.map(|us| us / 1000.0);
            vec![
                row(
                    "delivery p50 (ms)",
                    &|o| ms(o.latency_us.map(|l| l.0)),
                    "-",
                    false,
                ),
                row(
                    "delivery p99 (ms)",
                    &|o| ms(o.latency_us.map(|l| l.1)),
                    "<= 0.5x",
                    false,
                ),
                row(
                    "server CPU s / M deliveries",
                    &|o| o.cpu_per_million,
                    "-",
                    false,
                ),
                row("server RSS (MiB)", &|o| mib(o.rss), "<= 0.5x", false),
            ]
        }
        Scenario::WsIdle => vec![
            row("server RSS (MiB)", &|o| mib(o.rss), "-", false),
            row(
                "RSS above baseline per 10,000 (MiB)",
                &|o| o.rss_per_10k.map(|b| b / 1048576.0),
                "-",
                false,
            ),
        ],
        s if s.mass_fanout().is_some() => {
            let ms = |us: Option<f64>| us.map(|us| us / 1000.0);
            vec![
                row(
                    "last sub has it, p50 (ms)",
                    &|o| ms(o.last_delivery_us.map(|l| l.0)),
                    "-",
                    false,
                ),
                row(
                    "last sub has it, p99 (ms)",
                    &|o| ms(o.last_delivery_us.map(|l| l.1)),
                    "<= 0.5x",
                    false,
                ),
                row(
                    "last sub has it, max (ms)",
                    &|o| ms(o.last_delivery_us.map(|l| l.2)),
                    "-",
                    false,
                ),
                row(
                    "server CPU s / M deliveries",
                    &|o| o.cpu_per_million,
                    "<= 0.5x",
                    false,
                ),
                row("server RSS (MiB)", &|o| mib(o.rss), "-", false),
                row("bench CPU s", &|o| Some(o.bench_cpu), "-", false),
            ]
        }
        Scenario::ClusterFanout | Scenario::ClusterQueue => vec![
            row(
                if s == Scenario::ClusterFanout {
                    "deliveries/s"
                } else {
                    "msgs/s"
                },
                &|o| o.rate,
                "-",
                true,
            ),
            row(
                "server CPU s / M deliveries, 3 nodes",
                &|o| o.cpu_per_million,
                "-",
                false,
            ),
        ],
        Scenario::Churn => {
            vec![
                row(
                    "msgs/s without churn",
                    &note("msgs/s without churn"),
                    "-",
                    true,
                ),
                row("msgs/s with churn", &|o| o.rate, "-", true),
                row(
                    "kept under churn (%)",
                    &note("kept under churn %"),
                    "-",
                    true,
                ),
                row("churn SUB+UNSUB pairs/s", &note("churn pairs/s"), "-", true),
                row("server CPU s (with churn)", &|o| o.server_cpu, "-", false),
            ]
        }
        Scenario::StormNkey | Scenario::StormNkeyCluster | Scenario::StormCallout => {
            let mut rows = vec![
                row(
                    "time to all subscribed (ms)",
                    &|o| Some(o.elapsed.as_secs_f64() * 1000.0),
                    "<= 0.5x",
                    false,
                ),
                row("connections/s", &|o| o.rate, "-", true),
                row("failed attempts", &note("failed attempts"), "-", false),
                row("server CPU s", &|o| o.server_cpu, "-", false),
                row("server RSS (MiB)", &|o| mib(o.rss), "-", false),
                row("bench CPU s", &|o| Some(o.bench_cpu), "-", false),
            ];
            if s == Scenario::StormCallout {
                let auth = note("tribune-auth CPU s");
                rows.push(row("tribune-auth CPU s (3)", &auth, "-", false));
            }
            rows
        }
        Scenario::StormLameDuck => vec![
            row(
                "time to all moved (s)",
                &|o| Some(o.elapsed.as_secs_f64()),
                "-",
                false,
            ),
            row("moved clients", &note("moved clients"), "-", true),
            row(
                "re-login after close, p50 (ms)",
                &note("re-login p50 ms"),
                "-",
                false,
            ),
            row(
                "re-login after close, p99 (ms)",
                &note("re-login p99 ms"),
                "<= 0.5x",
                false,
            ),
            row(
                "re-login after close, max (ms)",
                &note("re-login max ms"),
                "-",
                false,
            ),
            row("failed attempts", &note("failed attempts"), "-", false),
            row("server CPU s (2 nodes left)", &|o| o.server_cpu, "-", false),
            row(
                "server RSS (MiB, 2 nodes left)",
                &|o| mib(o.rss),
                "-",
                false,
            ),
            row("bench CPU s", &|o| Some(o.bench_cpu), "-", false),
        ],
        Scenario::CrossNode | Scenario::JsPub | Scenario::JsFetch => {
            vec![row("msgs/s", &|o| o.rate, "-", true)]
        }
        _ => vec![
            row("msgs/s", &|o| o.rate, ">= 1.25x", true),
            row("server CPU s / M msgs", &|o| o.cpu_per_million, "-", false),
            row("server RSS (MiB)", &|o| mib(o.rss), "-", false),
        ],
    }
}

/// A figure an outcome carries among its notes.
fn note(name: &'static str) -> impl Fn(&Outcome) -> Option<f64> {
    move |o: &Outcome| o.notes.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
}

fn mib(bytes: Option<u64>) -> Option<f64> {
    bytes.map(|b| b as f64 / 1048576.0)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!("{nproc} cores, {cpu}")
}

fn version_of(bin: &Path) -> String {
    Command::new(bin)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn render(
    rows: &[Row],
    rounds: usize,
    p: Params,
    list: &[Scenario],
    nats_bin: &Path,
    tri_bin: &Path,
) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "Generated by `make bench` on {} UTC.\n\n- Machine: {}\n- nats-server: {}\n- tribune-broker: {}\n- Method: both servers on 127.0.0.1 with default settings, \
         scenarios alternating between them, {} rounds, medians shown; {} messages per throughput run, {} requests, {} idle connections, bursts of {} connections.\n- Auth flood: both servers with a plain-password user for the measuring client and a bcrypt (cost {}) user, default auth timeout; {} clients send that user a wrong password again and again, each as soon as its last was answered, and one more client logs in with the right password, one login after another; round trips as in request/reply, for {:.0} s once the flood is under way; rates and server CPU over those seconds.\n- JetStream rows: both servers with `jetstream {{ {JS_SYNC} }}` (fsync before every ack), file storage, {} messages per run, {} publishes in flight; fetch reads the stream {} times in pull batches of {}, ack none.\n",
        chrono_now(),
        machine(),
        version_of(nats_bin),
        version_of(tri_bin),
        rounds,
        p.msgs,
        p.requests,
        p.idle_conns,
        p.burst_conns,
        crate::auth_flood::BCRYPT_COST,
        p.flood_clients,
        p.flood_window.as_secs_f64(),
        p.js_msgs,
        crate::js::WINDOW,
        crate::js::FETCH_PASSES,
        crate::js::FETCH_BATCH
    ));
    if list.iter().any(|s| s.websocket()) {
        out.push_str(&format!(
            "- WebSocket rows: both servers with `websocket {{ no_tls: true }}` on loopback; {} WebSocket clients (the bench's own RFC 6455 client, no compression), each CONNECT, SUB, PING and PONG before anything is measured. Fan-out: after a {} s pause in which the clients answer nats-server's first PING to each, every client on `{}`, one publisher on the plain port sends a ~300 B JSON event on `sports.football.<id>`, one warm-up then {} measured events, each after every client has the last and a pause; latency from the publish to the kernel's receive stamp on each client's socket (`SO_TIMESTAMPNS`), percentiles over all clients and events (a message read together with later data, whose stamp is not its own, is left out); server CPU over the measured events, RSS with every client connected. Idle: one subject per client, RSS above the server's before they connected.\n",
            p.ws_conns,
            crate::ws_bench::SETTLE.as_secs(),
            crate::ws_bench::FANOUT_SUBJECT,
            p.ws_events,
        ));
    }
    if list.iter().any(|s| s.mass_fanout().is_some()) {
        out.push_str(&format!(
            "- Mass fan-out rows: plain TCP clients (the same lean client as the WebSocket rows, on one thread of one process; past {} per process, split evenly over worker processes with one thread each, since the open-files limit is per process; every client connects from a loopback source address of its own), each CONNECT, `SUB {}`, PING and PONG; on one server, or spread in turn over the 3 nodes of a fresh cluster with the publisher on the first. After the same {} s pause, one warm-up then {} measured updates of ~300 B JSON on `sports.football.<id>`, each after every subscriber has the last and a pause. Per update, the time from the publish to the kernel's receive stamp on the last subscriber's socket; p50, p99 and max over the updates. Server CPU (summed over the nodes) per million deliveries over the measured updates, RSS (summed) with every client connected, and the bench's own CPU (its worker processes' included).\n",
            p.mass_per_process,
            crate::ws_bench::FANOUT_SUBJECT,
            crate::ws_bench::SETTLE.as_secs(),
            p.mass_events,
        ));
    }
    if list.iter().any(|s| s.storm()) {
        out.push_str(&format!(
            "- Connection storm rows: both servers with one NKEY user; {} clients from {} worker processes of the bench (one thread each), each worker with at most {} logins in flight; each client reads INFO, signs its nonce, sends CONNECT, `SUB sports.football.*` and PING; on one server, or client i on node i mod 3 of a fresh cluster. Time from the first connect to the last PONG, every connection held open until then; server CPU (summed over the nodes) over it, RSS (summed) with every client connected, and the workers' CPU. A refused or dropped login counts as a failed attempt and is tried again after {} ms.\n",
            p.storm_conns,
            crate::storm::WORKERS,
            crate::storm::WINDOW,
            crate::storm::RETRY_PAUSE_MS,
        ));
    }
    if list.contains(&Scenario::StormCallout) {
        out.push_str(
            "- Auth-callout storm: the storm over 3 nodes, every node of both servers with `auth_callout` (xkey-encrypted) to an account served by one tribune-auth beside each node; each client sends an HS256 web token as `auth_token`, which tribune-auth checks before it signs the user's JWT. The tribune-auth CPU is its own row.\n",
        );
    }
    if list.contains(&Scenario::StormLameDuck) {
        out.push_str(&format!(
            "- Lame duck: the storm over 3 nodes, all {} clients logged in; then the third node gets SIGUSR2 (lame-duck mode, both servers with `lame_duck_duration: \"{}s\"`, the shortest nats-server accepts, and `lame_duck_grace_period: \"{}s\"`). Each client it closes logs in to one of the other two (NKEY, SUB, PING). Time from the signal to the last moved client's PONG (the lame-duck schedule's); each moved client's re-login, from its close to its PONG; CPU of the two nodes left over the move, their RSS after it, and the workers' CPU.\n",
            p.storm_conns,
            crate::lame_duck::DURATION_SECS,
            crate::lame_duck::GRACE_SECS,
        ));
    }
    if list.contains(&Scenario::Churn) {
        out.push_str(&format!(
            "- Churn: {} subscriptions held on `sports.football.hot` over {} connections; one publisher sends 128 B updates on `sports.football.1` to one `sports.football.*` subscriber for {:.1} s, once alone and once while {} more connections send `SUB sports.football.hot`/`UNSUB` pairs at {} pairs/s between them; delivered msgs/s from the first publish to the last delivery in each phase.\n",
            crate::churn::HELD,
            crate::churn::HOLDERS,
            p.churn_phase.as_secs_f64(),
            crate::churn::CHURNERS,
            crate::churn::TARGET_PAIRS,
        ));
    }
    if list.iter().any(|s| s.js_cluster()) {
        out.push_str(&format!(
            "- JetStream R3 rows: a fresh 3-node cluster on 127.0.0.1-3 per measurement, JetStream on every node with its own store, a file stream with `num_replicas: 3`, 128 B payloads; nats-server once per sync setting named in the row. Publish: {} messages, {} in flight, the client on a node that does not lead the stream; CPU and peak RSS summed over the 3 processes. Failover: {} SIGKILLs of the stream leader per round, a client on another node publishing every {} ms, retrying after {} ms without an answer; time from the kill to the first ack of a publish sent after it.\n",
            p.js_r3_msgs,
            crate::js::WINDOW,
            p.failovers,
            crate::js_r3_failover::PACE.as_millis(),
            crate::js_r3_failover::ACK_TIMEOUT.as_millis(),
        ));
    }
    out.push('\n');
    out.push_str("| scenario | metric | nats-server | tribune | tribune/nats | target | met |\n|---|---|---:|---:|---:|---|---|\n");
    for r in rows {
        let ratio = r.tribune / r.nats;
        let met = match r.target {
            "-" => "".to_string(),
            t => {
                let bound: f64 = t
                    .trim_start_matches(['>', '<', '=', ' '])
                    .trim_end_matches('x')
                    .parse()
                    .unwrap_or(f64::NAN);
                let ok = if r.higher_is_better {
                    ratio >= bound
                } else {
                    ratio <= bound
                };
                if ok {
                    "yes".into()
                } else {
                    "no".into()
                }
            }
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            r.scenario,
            r.metric,
            fmt_num(r.nats),
            fmt_num(r.tribune),
            fmt_ratio(ratio),
            r.target,
            met
        ));
    }
    out
}

/// Two decimals; tiny ratios (the auth flood's round trips) with two
/// significant digits instead of `0.00x`, and none at all without a base.
fn fmt_ratio(ratio: f64) -> String {
    if !ratio.is_finite() {
        "-".into()
    } else if ratio > 0.0 && ratio < 0.01 {
        let digits = (1 - ratio.log10().floor() as i64) as usize;
        format!("{ratio:.digits$}x")
    } else {
        format!("{ratio:.2}x")
    }
}

/// A median; "failed" where no round of that server finished.
fn fmt_num(v: f64) -> String {
    if v.is_nan() {
        "failed".into()
    } else if v >= 1000.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn chrono_now() -> String {
    chrono::Utc::now().format("%Y-%m-%d %H:%M").to_string()
}

const BEGIN: &str = "<!-- bench:begin -->";
const END: &str = "<!-- bench:end -->";

/// Replace the generated block of `path`, keeping the hand-written analysis.
fn write_report(path: &Path, body: &str) -> io::Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let block = format!("{BEGIN}\n{body}{END}");
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(a), Some(b)) if b > a => format!("{}{}{}", &old[..a], block, &old[b + END.len()..]),
        _ => format!("# Benchmarks\n\n{block}\n{old}"),
    };
    std::fs::write(path, new)
}

/// One server setup measured in a scenario: a binary, and for the
/// clustered JetStream scenarios its `jetstream` settings.
struct Contender {
    label: String,
    bin: PathBuf,
    /// tribune-auth, beside either server in the auth-callout storm.
    auth: PathBuf,
    /// The nats-server sync setting of a clustered JetStream row.
    sync: Option<NatsSync>,
}

/// Who runs scenario `s`: nats-server then tribune, with nats-server once
/// per sync setting in the clustered JetStream rows. Tribune is last.
fn contenders(s: Scenario, nats_bin: &Path, tri_bin: &Path, auth: &Path) -> Vec<Contender> {
    let mut out = Vec::new();
    if s.js_cluster() {
        for &sync in js_cluster::nats_syncs(s) {
            out.push(Contender {
                label: format!("nats-server ({})", sync.label()),
                bin: nats_bin.to_path_buf(),
                auth: auth.to_path_buf(),
                sync: Some(sync),
            });
        }
    } else {
        out.push(Contender {
            label: "nats-server".into(),
            bin: nats_bin.to_path_buf(),
            auth: auth.to_path_buf(),
            sync: None,
        });
    }
    out.push(Contender {
        label: "tribune".into(),
        bin: tri_bin.to_path_buf(),
        auth: auth.to_path_buf(),
        sync: None,
    });
    out
}

/// One measurement of `s` on fresh servers of contender `c`.
fn measure(s: Scenario, c: &Contender, config: Option<&str>, p: Params) -> io::Result<Outcome> {
    if s.js_cluster() {
        // nats-server's sync setting; Tribune's one mode needs none.
        let extra = c.sync.map_or("", NatsSync::config);
        let mut cluster = Cluster::start(&c.bin, Some(extra), None)?;
        return js_cluster::run(s, &mut cluster, p);
    }
    if matches!(
        s,
        Scenario::ClusterFanout
            | Scenario::ClusterQueue
            | Scenario::StormNkeyCluster
            | Scenario::StormLameDuck
            | Scenario::StormCallout
    ) || matches!(s.mass_fanout(), Some((_, true)))
    {
        let cluster = Cluster::start(&c.bin, None, config)?;
        let nodes: Vec<_> = (0..cluster.len()).map(|i| cluster.addr(i)).collect();
        let cpu0 = crate::proc_stats::self_cpu();
        let mut o = if s.mass_fanout().is_some() {
            scenarios::mass_fanout(s, p, cluster.addr(0), &nodes, &cluster.pids())?
        } else if s == Scenario::StormCallout {
            let pids = cluster.pids();
            crate::callout_storm::run(&c.auth, &nodes, p.storm_conns, &pids)?
        } else if s == Scenario::StormLameDuck {
            // The last node goes; its workers' CPU, as below.
            crate::lame_duck::run(&nodes, p.storm_conns, &cluster.pids(), nodes.len() - 1)?
        } else if s.storm() {
            // Its workers' CPU; this process's is added below.
            crate::storm::run(&nodes, p.storm_conns, &cluster.pids())?
        } else {
            let queue = s == Scenario::ClusterQueue;
            crate::cluster_rows::run(&nodes, queue, p.msgs, &cluster.pids())?
        };
        o.bench_cpu += crate::proc_stats::self_cpu() - cpu0;
        return Ok(o);
    }
    if s.clustered() {
        let cluster = Cluster::start(&c.bin, None, None)?;
        return scenarios::run(s, cluster.addr(0), Some(cluster.addr(1)), cluster.pid(0), p);
    }
    if s.websocket() {
        // A listener of its own per server started: both get the same block.
        let ws = servers::free_addr()?;
        let mut p = p;
        p.ws_addr = Some(ws);
        let config = format!(
            "{}{}",
            config.unwrap_or_default(),
            crate::ws_bench::server_config(ws)
        );
        let server = servers::start(&c.bin, s.jetstream(), Some(&config))?;
        return scenarios::run(s, server.addr, None, Some(server.pid()), p);
    }
    let server = servers::start(&c.bin, s.jetstream(), config)?;
    scenarios::run(s, server.addr, None, Some(server.pid()), p)
}

/// The title of the rows comparing `nats` with tribune in scenario `s`.
fn row_title(s: Scenario, nats: &Contender) -> String {
    match nats.sync {
        Some(sync) => format!(
            "{} ({}; {})",
            s.title(),
            sync.label(),
            js_cluster::TRIBUNE_SYNC
        ),
        None => s.title().to_string(),
    }
}

pub fn compare(
    nats_bin: &Path,
    tri_bin: &Path,
    auth_bin: &Path,
    rounds: usize,
    list: &[Scenario],
    p: Params,
    write: Option<&Path>,
) -> io::Result<()> {
    raise_fd_limit(p.most_conns(list));
    let mut rows = Vec::new();
    let mut failed = Vec::new();
    let mut skipped = Vec::new();
    for &s in list {
        let missing_auth = (s == Scenario::StormCallout && !auth_bin.is_file()).then(|| {
            format!(
                "needs tribune-auth at {} (cargo build --release -p tribune-auth, or --auth)",
                auth_bin.display()
            )
        });
        if let Some(why) = s.cannot_run_here(&p).or(missing_auth) {
            eprintln!("{}: not measured: {why}", s.title());
            skipped.push((s.title(), why));
            continue;
        }
        // Made once, so both servers check the same hash.
        let config = match s.server_config() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{}: no configuration: {e}", s.title());
                failed.push(Failure {
                    scenario: s.title().to_string(),
                    who: "both".into(),
                    round: 0,
                    error: e.to_string(),
                });
                continue;
            }
        };
        let who = contenders(s, nats_bin, tri_bin, auth_bin);
        let mut results: Vec<Vec<Outcome>> = vec![Vec::new(); who.len()];
        for round in 0..rounds {
            // Rotate who goes first so warm caches and thermal drift even out.
            for k in 0..who.len() {
                let i = (k + round) % who.len();
                match measure_again_on_error(s, &who[i], config.as_deref(), p) {
                    Ok(o) => {
                        eprintln!(
                            "round {} {:<12} {:<32} {}",
                            round + 1,
                            who[i].label,
                            s.title(),
                            describe(&o)
                        );
                        results[i].push(o);
                    }
                    Err(e) => {
                        eprintln!(
                            "round {} {:<12} {:<32} FAILED: {e}",
                            round + 1,
                            who[i].label,
                            s.title()
                        );
                        failed.push(Failure {
                            scenario: s.title().to_string(),
                            who: who[i].label.clone(),
                            round: round + 1,
                            error: e.to_string(),
                        });
                    }
                }
            }
        }
        let tri = who.len() - 1;
        for (c, nats) in who[..tri].iter().zip(&results) {
            rows.extend(rows_for(s, &row_title(s, c), nats, &results[tri]));
        }
    }
    let mut report = render(&rows, rounds, p, list, nats_bin, tri_bin);
    report.push_str(&render_failures(&failed));
    for (i, (title, why)) in skipped.iter().enumerate() {
        if i == 0 {
            report.push_str("\nNot measured on this machine:\n\n");
        }
        report.push_str(&format!("- {title}: {why}\n"));
    }
    println!("{report}");
    if let Some(path) = write {
        write_report(path, &report)?;
        eprintln!("wrote {}", path.display());
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{} measurement(s) failed twice (the table was written without them)",
            failed.len()
        )))
    }
}

/// A measurement that failed, and failed again when repeated.
struct Failure {
    scenario: String,
    who: String,
    round: usize,
    error: String,
}

/// Measure on fresh servers; a failure (a port taken meanwhile, a socket
/// timing out on a loaded machine) is reported and measured once more,
/// again on fresh servers, before the round counts as failed.
fn measure_again_on_error(
    s: Scenario,
    c: &Contender,
    config: Option<&str>,
    p: Params,
) -> io::Result<Outcome> {
    measure(s, c, config, p).or_else(|e| {
        eprintln!("{} on {}: {e}; measuring again", s.title(), c.label);
        measure(s, c, config, p)
    })
}

/// The failed measurements, under the table: medians above are over the
/// rounds that did finish.
fn render_failures(failed: &[Failure]) -> String {
    if failed.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "\nFailed measurements (each tried twice on fresh servers; the medians above leave them out):\n\n",
    );
    for f in failed {
        out.push_str(&format!(
            "- {}, {}, round {}: {}\n",
            f.scenario, f.who, f.round, f.error
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clustered_publish_runs_nats_once_per_sync_setting() {
        let who = contenders(
            Scenario::JsR3Pub,
            Path::new("n"),
            Path::new("t"),
            Path::new("a"),
        );
        let syncs: Vec<_> = who.iter().map(|c| c.sync).collect();
        assert_eq!(
            syncs,
            [Some(NatsSync::Default), Some(NatsSync::Always), None]
        );
        assert_eq!(who[2].bin, Path::new("t"));
        let title = row_title(Scenario::JsR3Pub, &who[1]);
        assert!(title.contains("sync_interval always"), "{title}");
        assert!(title.contains(js_cluster::TRIBUNE_SYNC), "{title}");
        let plain = contenders(
            Scenario::Pub16,
            Path::new("n"),
            Path::new("t"),
            Path::new("a"),
        );
        assert_eq!(plain.len(), 2);
        assert_eq!(
            row_title(Scenario::Pub16, &plain[0]),
            Scenario::Pub16.title()
        );
    }

    #[test]
    fn failover_rows_pool_every_kill() {
        let o = |ms: &[f64]| Outcome {
            failover_ms: ms.to_vec(),
            ..Default::default()
        };
        let nats = [o(&[4000.0, 7000.0, 5000.0]), o(&[6000.0, 4500.0, 9000.0])];
        let tri = [o(&[3000.0, 3500.0, 4000.0]), o(&[3200.0, 3900.0, 3600.0])];
        let rows = rows_for(Scenario::JsR3Failover, "t", &nats, &tri);
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].nats, rows[0].tribune), (6000.0, 3600.0));
        assert_eq!((rows[1].nats, rows[1].tribune), (9000.0, 4000.0));
    }

    #[test]
    fn failures_are_listed_under_the_table() {
        assert_eq!(render_failures(&[]), "");
        let text = render_failures(&[Failure {
            scenario: "cross-node".into(),
            who: "tribune".into(),
            round: 3,
            error: "Resource temporarily unavailable (os error 11)".into(),
        }]);
        assert!(text.contains("- cross-node, tribune, round 3: Resource temporarily unavailable"));
    }

    #[test]
    fn ratios() {
        assert_eq!(fmt_ratio(1.7749), "1.77x");
        assert_eq!(fmt_ratio(0.0), "0.00x");
        assert_eq!(fmt_ratio(0.000119), "0.00012x");
        assert_eq!(fmt_ratio(0.0234), "0.02x");
        assert_eq!(fmt_ratio(f64::INFINITY), "-");
        assert_eq!(fmt_ratio(f64::NAN), "-");
    }
}
