//! The command line, flag for flag with nats-server.
//!
//! nats-server uses Go's `flag` package, where `-port`, `--port`, `-port=1`
//! and `--port=1` all mean the same thing and some long names take a single
//! dash (`-js`, `-sd`, `-DV`). clap expects GNU conventions, so the arguments
//! are first rewritten into that form by [`normalize`], then parsed by clap.

use std::path::PathBuf;

use clap::{ArgAction, Parser};

use crate::options::Options;

/// tribune-broker: a NATS-compatible message broker.
#[derive(Debug, Parser, Default, Clone)]
#[command(name = "tribune-broker", disable_version_flag = true, args_override_self = true, about, long_about = None)]
pub struct Cli {
    /// Bind to host address (default: 0.0.0.0)
    #[arg(short = 'a', long = "addr", visible_alias = "net")]
    pub addr: Option<String>,
    /// Use port for clients (default: 4222; -1 picks a random port)
    #[arg(short = 'p', long = "port", allow_negative_numbers = true)]
    pub port: Option<i32>,
    /// Server name (default: the server ID)
    #[arg(short = 'n', long = "name", visible_alias = "server_name")]
    pub name: Option<String>,
    /// Use port for http monitoring (-1 picks a random port)
    #[arg(short = 'm', long = "http_port", allow_negative_numbers = true)]
    pub http_port: Option<i32>,
    /// Configuration file
    #[arg(short = 'c', long = "config")]
    pub config: Option<PathBuf>,
    /// Test the configuration and exit
    #[arg(short = 't', action = ArgAction::SetTrue)]
    pub test_config: bool,
    /// File to redirect log output
    #[arg(short = 'l', long = "log")]
    pub log: Option<PathBuf>,
    /// File to store the process id
    #[arg(short = 'P', long = "pid")]
    pub pid: Option<PathBuf>,
    /// Directory to write the ports file in
    #[arg(long = "ports_file_dir")]
    pub ports_file_dir: Option<PathBuf>,
    /// Enable debug output
    #[arg(short = 'D', long = "debug", num_args = 0..=1, default_missing_value = "true")]
    pub debug: Option<bool>,
    /// Trace the raw protocol
    #[arg(short = 'V', long = "trace", num_args = 0..=1, default_missing_value = "true")]
    pub trace: Option<bool>,
    /// Debug and trace
    #[arg(long = "DV", action = ArgAction::SetTrue)]
    pub debug_and_trace: bool,
    /// Timestamp log entries (default: true)
    #[arg(short = 'T', long = "logtime", num_args = 0..=1, default_missing_value = "true")]
    pub logtime: Option<bool>,
    /// Username required for connections
    #[arg(long = "user")]
    pub user: Option<String>,
    /// Password required for connections
    #[arg(long = "pass")]
    pub pass: Option<String>,
    /// Authorization token required for connections
    #[arg(long = "auth")]
    pub auth: Option<String>,
    /// Enable JetStream
    #[arg(long = "jetstream", visible_alias = "js", num_args = 0..=1, default_missing_value = "true")]
    pub jetstream: Option<bool>,
    /// JetStream storage directory
    #[arg(long = "store_dir", visible_alias = "sd")]
    pub store_dir: Option<PathBuf>,
    /// Routes to solicit and connect, comma separated
    #[arg(long = "routes")]
    pub routes: Option<String>,
    /// Cluster URL for solicited routes
    #[arg(long = "cluster", visible_alias = "cluster_listen")]
    pub cluster: Option<String>,
    /// Cluster name
    #[arg(long = "cluster_name")]
    pub cluster_name: Option<String>,
    /// Enable TLS on the client port (with --tlscert and --tlskey)
    #[arg(long = "tls", num_args = 0..=1, default_missing_value = "true")]
    pub tls: Option<bool>,
    /// Enable TLS with client certificate verification
    #[arg(long = "tlsverify", num_args = 0..=1, default_missing_value = "true")]
    pub tlsverify: Option<bool>,
    /// Server certificate file
    #[arg(long = "tlscert")]
    pub tlscert: Option<PathBuf>,
    /// Private key for the server certificate
    #[arg(long = "tlskey")]
    pub tlskey: Option<PathBuf>,
    /// Client certificate CA for verification
    #[arg(long = "tlscacert")]
    pub tlscacert: Option<PathBuf>,
    /// Send a signal to a running server: stop, quit, term, reopen, reload, ldm, optionally `=<pid>` or `=<pid file>`
    #[arg(long = "signal", visible_alias = "sl")]
    pub signal: Option<String>,
    /// Show version
    #[arg(short = 'v', long = "version", action = ArgAction::SetTrue)]
    pub version: bool,
}

/// Flag names (without dashes) that take a value, and their canonical clap form.
const VALUE_FLAGS: &[(&str, &str)] = &[
    ("a", "-a"),
    ("addr", "--addr"),
    ("net", "--addr"),
    ("p", "-p"),
    ("port", "--port"),
    ("n", "-n"),
    ("name", "--name"),
    ("server_name", "--name"),
    ("m", "-m"),
    ("http_port", "--http_port"),
    ("c", "-c"),
    ("config", "--config"),
    ("l", "-l"),
    ("log", "--log"),
    ("P", "-P"),
    ("pid", "--pid"),
    ("ports_file_dir", "--ports_file_dir"),
    ("user", "--user"),
    ("pass", "--pass"),
    ("auth", "--auth"),
    ("sd", "--store_dir"),
    ("store_dir", "--store_dir"),
    ("routes", "--routes"),
    ("cluster", "--cluster"),
    ("cluster_listen", "--cluster"),
    ("cluster_name", "--cluster_name"),
    ("signal", "--signal"),
    ("sl", "--signal"),
    ("tlscert", "--tlscert"),
    ("tlskey", "--tlskey"),
    ("tlscacert", "--tlscacert"),
];

/// Boolean flags: given alone they mean true; `-flag=false` is allowed.
const BOOL_FLAGS: &[(&str, &str)] = &[
    ("D", "--debug"),
    ("debug", "--debug"),
    ("V", "--trace"),
    ("trace", "--trace"),
    ("T", "--logtime"),
    ("logtime", "--logtime"),
    ("js", "--jetstream"),
    ("jetstream", "--jetstream"),
    ("DV", "--DV"),
    ("t", "-t"),
    ("v", "-v"),
    ("version", "-v"),
    ("h", "-h"),
    ("help", "-h"),
    ("tls", "--tls"),
    ("tlsverify", "--tlsverify"),
];

/// Rewrite Go-flag style arguments into the form clap parses.
pub fn normalize(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut iter = args.into_iter();
    if let Some(prog) = iter.next() {
        out.push(prog);
    }
    let mut expect_value = false;
    for arg in iter {
        if expect_value {
            out.push(arg);
            expect_value = false;
            continue;
        }
        let Some(stripped) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            out.push(arg);
            continue;
        };
        if stripped.is_empty() {
            out.push(arg);
            continue;
        }
        let (name, value) = match stripped.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (stripped, None),
        };
        if let Some((_, canon)) = VALUE_FLAGS.iter().find(|(n, _)| *n == name) {
            out.push(canon.to_string());
            match value {
                Some(v) => out.push(v.to_string()),
                None => expect_value = true,
            }
        } else if let Some((_, canon)) = BOOL_FLAGS.iter().find(|(n, _)| *n == name) {
            match value {
                Some(v) if canon.starts_with("--") && *canon != "--DV" => {
                    out.push(format!("{canon}={v}"))
                }
                _ => out.push(canon.to_string()),
            }
        } else {
            // Unknown: leave it for clap to report.
            out.push(arg);
        }
    }
    out
}

impl Cli {
    /// nats-server's TLS flags: `-tls=false` turns client TLS off; any other
    /// `-tls*` flag replaces the config file's `tls {}` with the flags alone.
    fn apply_tls(&self, opts: &mut Options) -> Result<(), String> {
        if self.tls == Some(false) {
            opts.tls = None;
            return Ok(());
        }
        let any = self.tls.is_some()
            || self.tlsverify.is_some()
            || self.tlscert.is_some()
            || self.tlskey.is_some()
            || self.tlscacert.is_some();
        if !any {
            return Ok(());
        }
        let Some(cert) = &self.tlscert else {
            return Err("TLS Server certificate must be present and valid".into());
        };
        let Some(key) = &self.tlskey else {
            return Err("TLS Server private key must be present and valid".into());
        };
        opts.tls = Some(crate::tls::TlsOptions {
            cert_file: Some(cert.clone()),
            key_file: Some(key.clone()),
            ca_file: self.tlscacert.clone(),
            verify: self.tlsverify.unwrap_or(false),
            ..Default::default()
        });
        Ok(())
    }

    pub fn parse_from_env() -> Result<Cli, clap::Error> {
        Cli::try_parse_from(normalize(std::env::args()))
    }

    /// Overlay the flags on options loaded from defaults and the config file.
    pub fn apply(&self, opts: &mut Options) -> Result<(), String> {
        if let Some(a) = &self.addr {
            opts.host = a.clone();
        }
        if let Some(p) = self.port {
            opts.port = port_value(p, "port")?;
        }
        if let Some(n) = &self.name {
            opts.server_name = Some(n.clone());
        }
        if let Some(m) = self.http_port {
            opts.http_port = Some(port_value(m, "http_port")?);
        }
        if let Some(l) = &self.log {
            opts.log_file = Some(l.clone());
        }
        if let Some(p) = &self.pid {
            opts.pid_file = Some(p.clone());
        }
        if let Some(d) = &self.ports_file_dir {
            opts.ports_file_dir = Some(d.clone());
        }
        if let Some(d) = self.debug {
            opts.debug = d;
        }
        if let Some(t) = self.trace {
            opts.trace = t;
        }
        if self.debug_and_trace {
            opts.debug = true;
            opts.trace = true;
        }
        if let Some(t) = self.logtime {
            opts.logtime = t;
        }
        if let Some(u) = &self.user {
            opts.username = Some(u.clone());
        }
        if let Some(p) = &self.pass {
            opts.password = Some(p.clone());
        }
        if let Some(a) = &self.auth {
            opts.authorization = Some(a.clone());
        }
        if let Some(js) = self.jetstream {
            opts.jetstream.enabled = js;
        }
        if let Some(sd) = &self.store_dir {
            opts.jetstream.store_dir = Some(sd.clone());
        }
        if let Some(r) = &self.routes {
            opts.cluster.routes = r
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
        }
        if let Some(c) = &self.cluster {
            let (host, port) = parse_cluster_url(c)?;
            opts.cluster.host = host;
            opts.cluster.port = Some(port);
            if let Some(creds) = cluster_credentials(c) {
                opts.cluster.username = Some(creds.0);
                opts.cluster.password = Some(creds.1);
            }
        }
        if let Some(n) = &self.cluster_name {
            opts.cluster.name = Some(n.clone());
        }
        self.apply_tls(opts)?;
        if opts.username.is_some() != opts.password.is_some() && opts.users.is_empty() {
            // nats-server lets a lone --user through with an empty password; so do we.
            opts.password.get_or_insert_with(String::new);
        }
        Ok(())
    }
}

/// `-1` means "any free port" (bound as 0).
fn port_value(p: i32, what: &str) -> Result<u16, String> {
    match p {
        -1 => Ok(0),
        0..=65535 => Ok(p as u16),
        _ => Err(format!("invalid {what}: {p}")),
    }
}

/// `nats://user:pass@host:port` in `--cluster` sets route authorization.
fn cluster_credentials(url: &str) -> Option<(String, String)> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (creds, _) = rest.rsplit_once('@')?;
    let (u, p) = creds.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// `nats://host:port` (or `host:port`) from `--cluster`.
fn parse_cluster_url(url: &str) -> Result<(String, u16), String> {
    // The URL may carry the cluster credentials; errors are printed.
    let shown = crate::redact::url(url);
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("cluster url {shown:?} has no port"))?;
    let port: i32 = port
        .trim_end_matches('/')
        .parse()
        .map_err(|_| format!("cluster url {shown:?} has a bad port"))?;
    Ok((
        host.trim_matches(['[', ']']).to_string(),
        port_value(port, "cluster port")?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        let v: Vec<String> = std::iter::once("tribune-broker")
            .chain(args.iter().copied())
            .map(String::from)
            .collect();
        Cli::try_parse_from(normalize(v)).unwrap()
    }

    #[test]
    fn go_flag_forms() {
        let c = parse(&[
            "-p",
            "-1",
            "-a=127.0.0.1",
            "--http_port",
            "8222",
            "-DV",
            "-js",
            "-sd",
            "/tmp/js",
            "-port=5000",
        ]);
        assert_eq!(c.port, Some(5000));
        assert_eq!(c.addr.as_deref(), Some("127.0.0.1"));
        assert_eq!(c.http_port, Some(8222));
        assert!(c.debug_and_trace);
        assert_eq!(c.jetstream, Some(true));
        assert_eq!(c.store_dir, Some(PathBuf::from("/tmp/js")));
        let c = parse(&[
            "-D",
            "-V=false",
            "--ports_file_dir",
            "/tmp",
            "-signal",
            "ldm=123",
            "--cluster",
            "nats://0.0.0.0:6222",
            "--cluster_name",
            "c1",
        ]);
        assert_eq!((c.debug, c.trace), (Some(true), Some(false)));
        assert_eq!(c.signal.as_deref(), Some("ldm=123"));
    }

    #[test]
    fn apply_overlays_options() {
        let c = parse(&[
            "-p",
            "-1",
            "-m",
            "-1",
            "--user",
            "u",
            "--pass",
            "p",
            "--routes",
            "nats://a:6222, nats://b:6222",
            "--cluster",
            "nats://127.0.0.1:6222",
        ]);
        let mut o = Options::default();
        c.apply(&mut o).unwrap();
        assert_eq!(o.port, 0);
        assert_eq!(o.http_port, Some(0));
        assert_eq!(
            (o.username.as_deref(), o.password.as_deref()),
            (Some("u"), Some("p"))
        );
        assert_eq!(o.cluster.routes, vec!["nats://a:6222", "nats://b:6222"]);
        assert_eq!(
            (o.cluster.host.as_str(), o.cluster.port),
            ("127.0.0.1", Some(6222))
        );
        assert!(parse(&["-p", "70000"])
            .apply(&mut Options::default())
            .is_err());
        // nats-server's other spelling of --cluster.
        let mut o = Options::default();
        parse(&["--cluster_listen", "nats://127.0.0.1:6223"])
            .apply(&mut o)
            .unwrap();
        assert_eq!(o.cluster.port, Some(6223));
    }

    #[test]
    fn tls_flags() {
        let mut o = Options::default();
        parse(&[
            "-tlscert",
            "c.pem",
            "-tlskey=k.pem",
            "-tlsverify",
            "-tlscacert",
            "ca.pem",
        ])
        .apply(&mut o)
        .unwrap();
        let t = o.tls.clone().expect("tls on");
        assert_eq!(t.cert_file.as_deref(), Some(std::path::Path::new("c.pem")));
        assert_eq!(t.key_file.as_deref(), Some(std::path::Path::new("k.pem")));
        assert_eq!(t.ca_file.as_deref(), Some(std::path::Path::new("ca.pem")));
        assert!(t.verify);
        parse(&["-tls=false"]).apply(&mut o).unwrap();
        assert!(o.tls.is_none(), "-tls=false turns TLS off");
        let err = parse(&["-tls"]).apply(&mut Options::default()).unwrap_err();
        assert_eq!(err, "TLS Server certificate must be present and valid");
        let err = parse(&["--tlscert", "c.pem"])
            .apply(&mut Options::default())
            .unwrap_err();
        assert_eq!(err, "TLS Server private key must be present and valid");
    }

    #[test]
    fn unknown_flag_is_an_error() {
        let v: Vec<String> = ["tribune-broker", "--bogus"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(Cli::try_parse_from(normalize(v)).is_err());
    }
}
