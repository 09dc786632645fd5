//! The pid file and the ports file (`--ports_file_dir`), in nats-server's
//! shapes, so tools that find a server through them work unchanged.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::options::Options;
use crate::server::{join_host_port, Listeners};

/// The JSON document nats-server writes to `<exe>_<pid>.ports`.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Ports {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nats: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub monitoring: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cluster: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub websocket: Vec<String>,
}

/// Addresses a listener bound to `host` can be reached on. A wildcard host
/// expands to every non-loopback interface address (or loopback alone if
/// there is no other), as nats-server lists them.
pub fn reachable_hosts(host: &str) -> Vec<String> {
    let wildcard = host.is_empty() || host == "0.0.0.0" || host == "::";
    if !wildcard {
        return vec![host.to_string()];
    }
    let want_v6 = host == "::";
    let mut out = Vec::new();
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for ifa in addrs {
            let Some(sa) = ifa.address else { continue };
            let ip: IpAddr = if let Some(v4) = sa.as_sockaddr_in() {
                IpAddr::V4(v4.ip())
            } else if let Some(v6) = sa.as_sockaddr_in6() {
                IpAddr::V6(v6.ip())
            } else {
                continue;
            };
            let is_link_local_v6 =
                matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80);
            if ip.is_loopback() || is_link_local_v6 || (ip.is_ipv6() && !want_v6) {
                continue;
            }
            let s = ip.to_string();
            if !out.contains(&s) {
                out.push(s);
            }
        }
    }
    if out.is_empty() {
        out.push("127.0.0.1".to_string());
    }
    out
}

fn urls(scheme: &str, host: &str, port: u16) -> Vec<String> {
    reachable_hosts(host)
        .iter()
        .map(|h| format!("{scheme}://{}", join_host_port(h, port)))
        .collect()
}

/// Build the ports document for the bound listeners.
pub fn ports_for(opts: &Options, l: &Listeners) -> Ports {
    Ports {
        nats: l
            .client
            .map(|a| {
                let tls = opts.tls.is_some() && !opts.allow_non_tls;
                urls(if tls { "tls" } else { "nats" }, &opts.host, a.port())
            })
            .unwrap_or_default(),
        monitoring: l
            .http
            .map(|a| {
                let scheme = if opts.https_port.is_some() {
                    "https"
                } else {
                    "http"
                };
                urls(scheme, opts.monitor_host(), a.port())
            })
            .unwrap_or_default(),
        cluster: l
            .cluster
            .map(|a| {
                urls(
                    if opts.cluster.tls.is_some() {
                        "tls"
                    } else {
                        "nats"
                    },
                    if opts.cluster.host.is_empty() {
                        "0.0.0.0"
                    } else {
                        &opts.cluster.host
                    },
                    a.port(),
                )
            })
            .unwrap_or_default(),
        websocket: l
            .websocket
            .map(|a| {
                let ws = &opts.websocket;
                urls(ws.scheme(), ws.listen_host(), a.port())
            })
            .unwrap_or_default(),
    }
}

/// Write `<dir>/<exe>_<pid>.ports` and return its path.
pub fn write_ports_file(dir: &Path, opts: &Options, l: &Listeners) -> Result<PathBuf> {
    let exe = std::env::args()
        .next()
        .and_then(|a| {
            Path::new(&a)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "tribune-broker".to_string());
    let path = dir.join(format!("{exe}_{}.ports", std::process::id()));
    let json = serde_json::to_vec(&ports_for(opts, l))?;
    std::fs::write(&path, json)
        .with_context(|| format!("could not write ports file {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specific_host_is_used_as_is() {
        let opts = Options {
            host: "127.0.0.1".into(),
            http_host: "127.0.0.1".into(),
            ..Default::default()
        };
        let l = Listeners {
            client: Some("127.0.0.1:4222".parse().unwrap()),
            http: Some("127.0.0.1:8222".parse().unwrap()),
            cluster: None,
            websocket: None,
        };
        let p = ports_for(&opts, &l);
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"nats":["nats://127.0.0.1:4222"],"monitoring":["http://127.0.0.1:8222"]}"#
        );
        let mut opts = opts;
        opts.websocket.host = "127.0.0.1".into();
        let l = Listeners {
            websocket: Some("127.0.0.1:8080".parse().unwrap()),
            ..l
        };
        let p = ports_for(&opts, &l);
        assert_eq!(p.websocket, ["ws://127.0.0.1:8080"]);
    }

    #[test]
    fn wildcard_expands_to_something() {
        assert!(!reachable_hosts("0.0.0.0").is_empty());
    }
}
