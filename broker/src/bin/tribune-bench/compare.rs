//! Side-by-side runs of nats-server and tribune-broker, and the report.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::scenarios::{self, Outcome, Params, Scenario};

/// A server process started for one measurement; killed on drop, its
/// directory (config file, JetStream store; if any) removed.
struct Running {
    child: Child,
    addr: SocketAddr,
    dir: Option<PathBuf>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The JetStream settings both servers get for the JetStream rows: fsync
/// before every ack (nats-server's default is a sync every 2 minutes).
pub const JS_SYNC: &str = "sync_interval: always";

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Start `bin` on loopback with the settings both servers share; with
/// `jetstream`, also JetStream on a fresh directory, syncing always; with
/// `config`, that text in its config file too.
fn start(bin: &Path, jetstream: bool, config: Option<&str>) -> io::Result<Running> {
    let port = free_port()?;
    if !jetstream && config.is_none() {
        return spawn(bin, ([127, 0, 0, 1], port).into(), &[]);
    }
    let dir = std::env::temp_dir().join(format!("tribune-bench-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let conf = dir.join("server.conf");
    let mut text = config.unwrap_or_default().to_string();
    if jetstream {
        text.push_str(&format!(
            "jetstream {{\n  store_dir: \"{}\"\n  {JS_SYNC}\n}}\n",
            dir.join("js").display()
        ));
    }
    std::fs::write(&conf, text)?;
    let mut running = spawn(
        bin,
        ([127, 0, 0, 1], port).into(),
        &["-c".to_string(), conf.display().to_string()],
    );
    match &mut running {
        Ok(r) => r.dir = Some(dir),
        Err(_) => {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    running
}

fn spawn(bin: &Path, addr: SocketAddr, extra: &[String]) -> io::Result<Running> {
    let child = Command::new(bin)
        .args(["-a", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| io::Error::other(format!("could not start {}: {e}", bin.display())))?;
    let running = Running {
        child,
        addr,
        dir: None,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).is_err() {
        if Instant::now() > deadline {
            return Err(io::Error::other(format!(
                "{} did not start listening",
                bin.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(running)
}

/// Start a 3-node cluster of `bin` on 127.0.0.1-3, each listing all routes.
fn start_cluster(bin: &Path) -> io::Result<Vec<Running>> {
    let mut nodes = Vec::new();
    let mut plan = Vec::new();
    for i in 1..=3u8 {
        let ip = std::net::Ipv4Addr::new(127, 0, 0, i);
        let client = TcpListener::bind((ip, 0))?.local_addr()?.port();
        let cluster = TcpListener::bind((ip, 0))?.local_addr()?.port();
        plan.push((
            SocketAddr::from((ip, client)),
            SocketAddr::from((ip, cluster)),
        ));
    }
    let routes: Vec<String> = plan
        .iter()
        .map(|(_, c)| format!("nats-route://{c}"))
        .collect();
    for (i, (client, cluster)) in plan.iter().enumerate() {
        let extra = vec![
            "--cluster".to_string(),
            format!("nats://{cluster}"),
            "--routes".to_string(),
            routes.join(","),
            "--cluster_name".to_string(),
            "bench".to_string(),
            "-n".to_string(),
            format!("bench-{}", i + 1),
        ];
        nodes.push(spawn(bin, *client, &extra)?);
    }
    Ok(nodes)
}

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
    if let Some(l) = o.logins {
        parts.push(format!(
            "refused {:.1} wrong logins/s ({:.1}/s Authentication Timeout), admitted {} of {} right ones",
            l.refused_per_sec, l.timeouts_per_sec, l.right_admitted, l.right_tried
        ));
    }
    if let Some(c) = o.server_cpu {
        parts.push(format!("server cpu {c:.2}s"));
    }
    if let Some(rss) = o.rss {
        parts.push(format!("rss {:.1} MiB", rss as f64 / 1048576.0));
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
    scenario: &'static str,
    metric: &'static str,
    nats: f64,
    tribune: f64,
    /// Ratio tribune/nats-server, and the target as text.
    target: &'static str,
    higher_is_better: bool,
}

fn rows_for(s: Scenario, nats: &[Outcome], tri: &[Outcome]) -> Vec<Row> {
    let pick = |v: &[Outcome], f: &dyn Fn(&Outcome) -> Option<f64>| {
        median(v.iter().filter_map(f).collect())
    };
    let row = |metric, f: &dyn Fn(&Outcome) -> Option<f64>, target, higher_is_better| Row {
        scenario: s.title(),
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
        Scenario::Idle => vec![row(
            "server RSS (MiB)",
            &|o| o.rss.map(|r| r as f64 / 1048576.0),
            "<= 0.5x",
            false,
        )],
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
        Scenario::CrossNode | Scenario::JsPub | Scenario::JsFetch => {
            vec![row("msgs/s", &|o| o.rate, "-", true)]
        }
        _ => vec![row("msgs/s", &|o| o.rate, ">= 1.25x", true)],
    }
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

fn render(rows: &[Row], rounds: usize, p: Params, nats_bin: &Path, tri_bin: &Path) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "Generated by `make bench` on {} UTC.\n\n- Machine: {}\n- nats-server: {}\n- tribune-broker: {}\n- Method: both servers on 127.0.0.1 with default settings, \
         scenarios alternating between them, {} rounds, medians shown; {} messages per throughput run, {} requests, {} idle connections, bursts of {} connections.\n- Auth flood: both servers with a plain-password user for the measuring client and a bcrypt (cost {}) user, default auth timeout; {} clients send that user a wrong password again and again, each as soon as its last was answered, and one more client logs in with the right password, one login after another; round trips as in request/reply, for {:.0} s once the flood is under way; rates and server CPU over those seconds.\n- JetStream rows: both servers with `jetstream {{ {JS_SYNC} }}` (fsync before every ack), file storage, {} messages per run, {} publishes in flight; fetch reads the stream {} times in pull batches of {}, ack none.\n\n",
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

fn fmt_num(v: f64) -> String {
    if v >= 1000.0 {
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

pub fn compare(
    nats_bin: &Path,
    tri_bin: &Path,
    rounds: usize,
    list: &[Scenario],
    p: Params,
    write: Option<&Path>,
) -> io::Result<()> {
    raise_fd_limit(p.idle_conns.max(p.burst_conns));
    let bins: [(&str, PathBuf); 2] = [
        ("nats-server", nats_bin.to_path_buf()),
        ("tribune", tri_bin.to_path_buf()),
    ];
    let mut rows = Vec::new();
    for &s in list {
        // Made once, so both servers check the same hash.
        let config = s.server_config()?;
        let mut results: [Vec<Outcome>; 2] = [Vec::new(), Vec::new()];
        for round in 0..rounds {
            // Alternate who goes first so warm caches and thermal drift even out.
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for i in order {
                let nodes = if s.clustered() {
                    start_cluster(&bins[i].1)?
                } else {
                    vec![start(&bins[i].1, s.jetstream(), config.as_deref())?]
                };
                let pid = nodes[0].child.id();
                let peer = nodes.get(1).map(|n| n.addr);
                let o = scenarios::run(s, nodes[0].addr, peer, Some(pid), p)?;
                eprintln!(
                    "round {} {:<12} {:<32} {}",
                    round + 1,
                    bins[i].0,
                    s.title(),
                    describe(&o)
                );
                results[i].push(o);
            }
        }
        rows.extend(rows_for(s, &results[0], &results[1]));
    }
    let report = render(&rows, rounds, p, nats_bin, tri_bin);
    println!("{report}");
    if let Some(path) = write {
        write_report(path, &report)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
