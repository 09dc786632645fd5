//! Cutting one node of a [`Cluster`] off from the others with iptables, for
//! partition tests: a [`NetCut`] guard holds the rules and removes them on
//! drop (also when the test panics).
//!
//! Every node listens on its own loopback address, but a node's outgoing
//! connections all leave from 127.0.0.1 (the kernel's source address for
//! 127/8), so addresses alone cannot tell the nodes' routes apart. The cut
//! therefore uses what does identify a route connection:
//!
//! - connections the victim accepted: its route port, either direction;
//! - connections the victim dials: its group id (the cluster must be
//!   started with [`super::cluster::JsOptions::node_gids`]) with a
//!   destination among the other nodes' route ports, so it cannot reconnect;
//! - what the others send back on connections the victim had dialed before
//!   the cut: their exact address and port pairs, read from `/proc`.
//!
//! Client ports stay open, so a client of the victim keeps talking to it:
//! the minority side of the partition. Every rule carries the comment
//! `tribune-test-netcut:pid=<test process>`; [`clean_leftovers`] removes
//! rules of test processes that no longer exist (a run killed before its
//! guards dropped).

use std::collections::BTreeSet;
use std::fs;
use std::net::Ipv4Addr;
use std::process::Command;
use std::time::Duration;

use super::cluster::Cluster;

/// The comment every rule carries, before `:pid=<pid>`.
pub const COMMENT_PREFIX: &str = "tribune-test-netcut";

fn comment() -> String {
    format!("{COMMENT_PREFIX}:pid={}", std::process::id())
}

/// Run `iptables -w 10 <args>`; `Err` with its output when it fails to
/// start or exits non-zero.
fn iptables(args: &[String]) -> Result<(), String> {
    let out = Command::new("iptables")
        .arg("-w")
        .arg("10")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run iptables: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "iptables {}: {} {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `Ok` when this process may add and remove the kind of rules a cut
/// needs (iptables installed, permitted, and with the owner, multiport and
/// comment matches); otherwise why not.
pub fn usable() -> Result<(), String> {
    let probe: Vec<String> = [
        "OUTPUT",
        "-p",
        "tcp",
        "-m",
        "owner",
        "--gid-owner",
        "47099",
        "-m",
        "multiport",
        "--dports",
        "1,2",
        "-m",
        "comment",
        "--comment",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([comment(), "-j".into(), "DROP".into()])
    .collect();
    let mut add = vec!["-A".to_string()];
    add.extend(probe.iter().cloned());
    iptables(&add)?;
    let mut del = vec!["-D".to_string()];
    del.extend(probe);
    iptables(&del)
}

/// Remove the rules of earlier test processes that are gone.
pub fn clean_leftovers() {
    let out = match Command::new("iptables")
        .args(["-w", "10", "-S", "OUTPUT"])
        .output()
    {
        Ok(o) if o.status.success() => o,
        _ => return,
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(rest) = line.strip_prefix("-A ") else {
            continue;
        };
        let Some(pid) = line
            .split_once(&format!("{COMMENT_PREFIX}:pid="))
            .and_then(|(_, tail)| tail.split_whitespace().next())
            .and_then(|p| p.trim_matches('"').parse::<u32>().ok())
        else {
            continue;
        };
        if fs::metadata(format!("/proc/{pid}")).is_ok() {
            continue;
        }
        // `-S` quotes the comment; the argument must go without quotes.
        let mut del = vec!["-D".to_string()];
        del.extend(
            rest.split_whitespace()
                .map(|t| t.trim_matches('"').to_string()),
        );
        match iptables(&del) {
            Ok(()) => eprintln!("removed a leftover rule of test process {pid}: {line}"),
            Err(e) => eprintln!("could not remove leftover rule {line}: {e}"),
        }
    }
}

/// Node `victim` cut off from the rest of the cluster (route traffic only)
/// while this guard lives.
pub struct NetCut {
    /// Rule specifications (without `-I`/`-D OUTPUT`) in the order added.
    rules: Vec<Vec<String>>,
    pub victim: String,
}

impl NetCut {
    /// Cut node `victim` of `c` off from every other node, both ways.
    /// `Err` (with every rule added so far removed again) when a rule
    /// cannot be added or the cluster was started without node group ids.
    pub async fn isolate(c: &Cluster, victim: usize) -> Result<NetCut, String> {
        let gid = c
            .node_gid(victim)
            .ok_or("the cluster was started without JsOptions::node_gids")?;
        let pid = c
            .node(victim)
            .pid()
            .ok_or_else(|| format!("{} is not running", c.node(victim).name))?;
        let mine = c.node(victim).cluster_port;
        let others: Vec<u16> = (0..c.len())
            .filter(|&j| j != victim)
            .map(|j| c.node(j).cluster_port)
            .collect();
        let ports = others
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let mut cut = NetCut {
            rules: Vec::new(),
            victim: c.node(victim).name.clone(),
        };
        cut.add(&["-p", "tcp", "--dport", &mine.to_string()])?;
        cut.add(&["-p", "tcp", "--sport", &mine.to_string()])?;
        cut.add(&[
            "-p",
            "tcp",
            "-m",
            "owner",
            "--gid-owner",
            &gid.to_string(),
            "-m",
            "multiport",
            "--dports",
            &ports,
        ])?;
        // No new connection from the victim can form now; let a handshake
        // that was under way settle, then cut the replies on the ones it
        // had dialed.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let dialed = connections_of(pid, &others)
            .map_err(|e| format!("listing {}'s connections: {e}", cut.victim))?;
        for (local, remote) in dialed {
            cut.add(&[
                "-p",
                "tcp",
                "-s",
                &remote.0.to_string(),
                "--sport",
                &remote.1.to_string(),
                "-d",
                &local.0.to_string(),
                "--dport",
                &local.1.to_string(),
            ])?;
        }
        eprintln!(
            "cut {} off with {} iptables rules",
            cut.victim,
            cut.rules.len()
        );
        Ok(cut)
    }

    /// Insert one DROP rule at the top of OUTPUT (loopback traffic passes
    /// OUTPUT once, whichever side sends it).
    fn add(&mut self, spec: &[&str]) -> Result<(), String> {
        let mut rule: Vec<String> = spec.iter().map(|s| s.to_string()).collect();
        rule.extend(["-m".into(), "comment".into(), "--comment".into(), comment()]);
        rule.extend(["-j".into(), "DROP".into()]);
        let mut args = vec!["-I".to_string(), "OUTPUT".into()];
        args.extend(rule.iter().cloned());
        iptables(&args)?;
        self.rules.push(rule);
        Ok(())
    }

    /// Remove the rules (also done on drop).
    pub fn heal(mut self) {
        self.remove();
    }

    fn remove(&mut self) {
        for rule in self.rules.drain(..).rev() {
            let mut args = vec!["-D".to_string(), "OUTPUT".into()];
            args.extend(rule);
            if let Err(e) = iptables(&args) {
                eprintln!("could not remove an iptables rule: {e}");
            }
        }
    }
}

impl Drop for NetCut {
    fn drop(&mut self) {
        if !self.rules.is_empty() {
            eprintln!("healing the cut of {}", self.victim);
            self.remove();
        }
    }
}

/// One end of a TCP connection.
type Endpoint = (Ipv4Addr, u16);

/// TCP connections of process `pid` whose remote port is one of `ports`:
/// (local, remote) address and port pairs, IPv4 (or IPv4-mapped IPv6).
fn connections_of(pid: u32, ports: &[u16]) -> Result<Vec<(Endpoint, Endpoint)>, String> {
    let mut inodes = BTreeSet::new();
    let fds = fs::read_dir(format!("/proc/{pid}/fd")).map_err(|e| e.to_string())?;
    for fd in fds.flatten() {
        if let Ok(target) = fs::read_link(fd.path()) {
            let t = target.to_string_lossy();
            if let Some(n) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                inodes.insert(n.to_string());
            }
        }
    }
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || !inodes.contains(f[9]) {
                continue;
            }
            let (Some(local), Some(remote)) = (proc_addr(f[1]), proc_addr(f[2])) else {
                continue;
            };
            if ports.contains(&remote.1) {
                out.push((local, remote));
            }
        }
    }
    Ok(out)
}

/// `0100007F:1F90` (or the 32-digit IPv6 form of an IPv4-mapped address)
/// from `/proc/net/tcp*` → (127.0.0.1, 8080).
pub fn proc_addr(field: &str) -> Option<Endpoint> {
    let (addr, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let v4 = match addr.len() {
        8 => addr,
        32 if addr.starts_with("0000000000000000FFFF0000") => &addr[24..],
        _ => return None,
    };
    let raw = u32::from_str_radix(v4, 16).ok()?;
    Some((Ipv4Addr::from(raw.to_le_bytes()), port))
}
