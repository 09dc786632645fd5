//! Server processes started for a measurement: one server, or a 3-node
//! cluster on 127.0.0.1-3 whose nodes can be killed and restarted (the
//! failover scenario). Used alike for nats-server and tribune-broker, with
//! the same flags for both.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server process; killed on drop, its directory (config file,
/// JetStream store; if any) removed.
pub struct Running {
    child: Child,
    pub addr: SocketAddr,
    dir: Option<PathBuf>,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
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

/// The JetStream settings both servers get for the single-server
/// JetStream rows: fsync before every ack (nats-server's default is a sync
/// every 2 minutes).
pub const JS_SYNC: &str = "sync_interval: always";

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A loopback address with a port free at the time of asking, for a
/// listener the server opens from its config (the WebSocket one).
pub fn free_addr() -> io::Result<SocketAddr> {
    Ok(SocketAddr::from(([127, 0, 0, 1], free_port()?)))
}

/// A fresh directory for one server or cluster under the system temp dir.
fn scratch_dir(tag: &str) -> io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("tribune-bench-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .map_err(|e| io::Error::other(format!("creating {}: {e}", dir.display())))?;
    Ok(dir)
}

/// The `jetstream` block of a config file: a store in `store`, plus
/// `extra` lines (such as [`JS_SYNC`]).
fn jetstream_block(store: &Path, extra: &str) -> String {
    format!(
        "jetstream {{\n  store_dir: \"{}\"\n  {extra}\n}}\n",
        store.display()
    )
}

/// Start `bin` on loopback with the settings both servers share; with
/// `jetstream`, also JetStream on a fresh directory, syncing always; with
/// `config`, that text in its config file too.
pub fn start(bin: &Path, jetstream: bool, config: Option<&str>) -> io::Result<Running> {
    let port = free_port()?;
    if !jetstream && config.is_none() {
        return spawn(bin, ([127, 0, 0, 1], port).into(), &[]);
    }
    let dir = scratch_dir(&port.to_string())?;
    let conf = dir.join("server.conf");
    let mut text = config.unwrap_or_default().to_string();
    if jetstream {
        text.push_str(&jetstream_block(&dir.join("js"), JS_SYNC));
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

/// Where server output goes: nowhere, or with `TRIBUNE_BENCH_LOGS=<dir>`
/// set, a file per process in that directory (to see what a server did
/// during a measurement, such as an election's timeline).
fn log_for(bin: &Path, addr: SocketAddr) -> io::Result<(Stdio, Stdio)> {
    let Some(dir) = std::env::var_os("TRIBUNE_BENCH_LOGS") else {
        return Ok((Stdio::null(), Stdio::null()));
    };
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let name = bin
        .file_name()
        .map_or("server".into(), |n| n.to_string_lossy());
    let path = PathBuf::from(dir).join(format!("{name}-{addr}-{stamp}.log"));
    let file = std::fs::File::create(&path)
        .map_err(|e| io::Error::other(format!("creating {}: {e}", path.display())))?;
    Ok((Stdio::from(file.try_clone()?), Stdio::from(file)))
}

fn spawn(bin: &Path, addr: SocketAddr, extra: &[String]) -> io::Result<Running> {
    let (stdout, stderr) = log_for(bin, addr)?;
    let child = Command::new(bin)
        .args(["-a", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .args(extra)
        .stdout(stdout)
        .stderr(stderr)
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

/// One node of a [`Cluster`]: what it takes to start it again.
struct Node {
    name: String,
    client: SocketAddr,
    args: Vec<String>,
    running: Option<Running>,
}

/// A 3-node cluster of one server binary on 127.0.0.1-3, each node listing
/// all routes, named `bench-1` to `bench-3` (the names JetStream reports
/// as stream leaders). A node keeps its ports and store across a restart.
pub struct Cluster {
    bin: PathBuf,
    nodes: Vec<Node>,
    /// Config files and JetStream stores, removed on drop.
    dir: Option<PathBuf>,
}

impl Cluster {
    /// Start the cluster. With `jetstream`, every node runs JetStream on
    /// its own store with the given extra `jetstream` lines (empty: the
    /// server's defaults); with `config`, every node's config file has
    /// that text too (such as the storm's NKEY user).
    pub fn start(bin: &Path, jetstream: Option<&str>, config: Option<&str>) -> io::Result<Cluster> {
        let mut plan = Vec::new();
        for i in 1..=3u8 {
            let ip = Ipv4Addr::new(127, 0, 0, i);
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
        let dir = match (jetstream, config) {
            (None, None) => None,
            _ => Some(scratch_dir(&format!("cluster-{}", plan[0].0.port()))?),
        };
        let mut c = Cluster {
            bin: bin.to_path_buf(),
            nodes: Vec::new(),
            dir,
        };
        for (i, (client, cluster)) in plan.iter().enumerate() {
            let name = format!("bench-{}", i + 1);
            let mut args = vec![
                "--cluster".to_string(),
                format!("nats://{cluster}"),
                "--routes".to_string(),
                routes.join(","),
                "--cluster_name".to_string(),
                "bench".to_string(),
                "-n".to_string(),
                name.clone(),
            ];
            if let Some(dir) = &c.dir {
                let mut text = config.unwrap_or_default().to_string();
                if let Some(extra) = jetstream {
                    text.push_str(&jetstream_block(&dir.join(&name), extra));
                }
                let conf = dir.join(format!("{name}.conf"));
                std::fs::write(&conf, text)
                    .map_err(|e| io::Error::other(format!("writing {}: {e}", conf.display())))?;
                args.extend(["-c".to_string(), conf.display().to_string()]);
            }
            c.nodes.push(Node {
                name,
                client: *client,
                args,
                running: None,
            });
        }
        for i in 0..c.nodes.len() {
            c.restart(i)?;
        }
        Ok(c)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Node `i`'s client address.
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.nodes[i].client
    }

    /// The node named `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// Node `i`'s pid, if it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].running.as_ref().map(Running::pid)
    }

    /// Pids of the running nodes.
    pub fn pids(&self) -> Vec<u32> {
        (0..self.len()).filter_map(|i| self.pid(i)).collect()
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].running.is_some()
    }

    /// SIGKILL node `i` and wait until it is gone (its sockets closed).
    pub fn kill(&mut self, i: usize) -> io::Result<()> {
        if let Some(mut r) = self.nodes[i].running.take() {
            r.child
                .kill()
                .map_err(|e| io::Error::other(format!("killing {}: {e}", self.nodes[i].name)))?;
            r.child.wait()?;
        }
        Ok(())
    }

    /// Start node `i` (again), with the same ports, config and store, and
    /// wait until it listens for clients.
    pub fn restart(&mut self, i: usize) -> io::Result<()> {
        self.kill(i)?;
        let node = &mut self.nodes[i];
        node.running = Some(spawn(&self.bin, node.client, &node.args)?);
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // The processes go first, then the stores they were writing.
        self.nodes.clear();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
