//! The connection storm of web users: each client logs in with a web
//! token that tribune-auth checks through auth callout, as browsers do,
//! rather than with an NKEY the server checks itself. The deployment's
//! shape: a 3-node cluster, one tribune-auth beside each node connected
//! to it, the callout encrypted with an xkey; client i on node i mod 3.
//!
//! Every login is a round trip from the node to its tribune-auth and
//! back: the node sends the encrypted request, tribune-auth checks the
//! token (HS256 here, one shared secret) and signs a user JWT, the node
//! verifies it and applies its permissions. The row shows the time to
//! the last PONG, the failed attempts, and the CPU of the nodes and of
//! the three tribune-auth processes separately.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::proc_stats;
use crate::scenarios::Outcome;
use crate::storm::{self, Storm};

/// The web token's issuer and audience, as tribune-auth is told.
const ISSUER: &str = "https://idp.bench.invalid/";
const AUDIENCE: &str = "tribune-web";
/// A guard against a tribune-auth that never serves; not an expectation.
const READY_DEADLINE: Duration = Duration::from_secs(30);
/// How tribune-auth learns the HS256 secret (as in production, not from
/// its config file).
const SECRET_ENV: &str = "TRIBUNE_BENCH_HS256";

/// The keys of one bench run: the callout issuer (an account), the user
/// tribune-auth logs in as, the xkey requests are sealed to, and the
/// identity provider's HS256 secret. Made once per process, so that both
/// servers' configurations and the tokens agree.
struct Keys {
    issuer: nkeys::KeyPair,
    service: nkeys::KeyPair,
    xkey: nkeys::XKey,
    secret: String,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut secret = [0u8; 32];
        // The system's randomness failing leaves a fixed secret: a bench
        // on loopback, where that is no weakness.
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret);
        Keys {
            issuer: nkeys::KeyPair::new_account(),
            service: nkeys::KeyPair::new_user(),
            xkey: nkeys::XKey::new(),
            secret: URL_SAFE_NO_PAD.encode(secret),
        }
    })
}

/// The accounts and `auth_callout` block every node of both servers gets.
pub fn server_config() -> String {
    let k = keys();
    format!(
        "accounts {{\n  AUTH {{ users: [ {{ nkey: \"{service}\" }} ] }}\n  APP {{}}\n  SYS {{}}\n}}\n\
         system_account: SYS\n\
         authorization {{\n  auth_callout {{\n    issuer: \"{issuer}\"\n    account: AUTH\n    \
         auth_users: [ \"{service}\" ]\n    xkey: \"{xkey}\"\n  }}\n}}\n",
        service = k.service.public_key(),
        issuer = k.issuer.public_key(),
        xkey = k.xkey.public_key(),
    )
}

/// The web users' token: an HS256 JWT from the bench's identity
/// provider granting `sports: ["football"]`, valid for an hour.
pub fn token() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = serde_json::json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "bench-fan",
        "iat": now, "exp": now + 3600, "sports": ["football"],
    });
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, keys().secret.as_bytes());
    let sig = ring::hmac::sign(&key, format!("{header}.{body}").as_bytes());
    format!("{header}.{body}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

/// tribune-auth's configuration for the node at `node`, its seeds in `dir`.
fn auth_config(node: SocketAddr, dir: &Path) -> String {
    format!(
        r#"[nats]
servers = ["nats://{node}"]
nkey_seed = {{ file = "{dir}/service.nk" }}

[callout]
issuer_seed = {{ file = "{dir}/issuer.nk" }}
xkey_seed = {{ file = "{dir}/xkey.xk" }}
require_encryption = true
account = "APP"

[token]
issuers = ["{ISSUER}"]
audiences = ["{AUDIENCE}"]
hs256_secret = {{ env = "{SECRET_ENV}" }}

[permissions]
reply_subjects = ["_INBOX.>"]

[[permissions.claims]]
claim = "sports"
subject = "sports.{{value}}.>"

[metrics]
listen = ""
"#,
        dir = dir.display()
    )
}

/// One tribune-auth per node, and the directory of their seeds and
/// configs; all gone on drop.
struct Services {
    children: Vec<Child>,
    dir: PathBuf,
}

impl Services {
    fn start(bin: &Path, nodes: &[SocketAddr]) -> io::Result<Services> {
        let k = keys();
        let dir = std::env::temp_dir().join(format!(
            "tribune-bench-callout-{}-{}",
            std::process::id(),
            nodes.first().map_or(0, SocketAddr::port)
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| io::Error::other(format!("creating {}: {e}", dir.display())))?;
        let mut services = Services {
            children: Vec::new(),
            dir,
        };
        let seed = |r: Result<String, nkeys::error::Error>| {
            r.map_err(|e| io::Error::other(format!("a callout seed: {e}")))
        };
        for (name, text) in [
            ("service.nk", seed(k.service.seed())?),
            ("issuer.nk", seed(k.issuer.seed())?),
            ("xkey.xk", seed(k.xkey.seed())?),
        ] {
            write_private(&services.dir.join(name), &text)?;
        }
        for (i, node) in nodes.iter().enumerate() {
            let conf = services.dir.join(format!("auth-{i}.toml"));
            std::fs::write(&conf, auth_config(*node, &services.dir))?;
            let child = Command::new(bin)
                .arg("--config")
                .arg(&conf)
                .env(SECRET_ENV, &k.secret)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| io::Error::other(format!("could not start {}: {e}", bin.display())))?;
            services.children.push(child);
        }
        Ok(services)
    }

    fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A seed file only its owner reads, as tribune-auth expects of secrets.
fn write_private(path: &Path, text: &str) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io::Error::other(format!("writing {}: {e}", path.display())))?;
    f.write_all(text.as_bytes())
}

/// Until one token login works on every node (each node's tribune-auth
/// has connected and serves).
fn wait_ready(nodes: &[SocketAddr], token: &str) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        for node in nodes {
            let deadline = Instant::now() + READY_DEADLINE;
            loop {
                match storm::login(*node, 0, Some(token)).await {
                    Ok(_) => break,
                    Err(e) if Instant::now() > deadline => {
                        return Err(io::Error::other(format!(
                            "no token login on {node} within {READY_DEADLINE:?}: {e}"
                        )))
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }
        Ok(())
    })
}

/// Start tribune-auth (`auth_bin`) beside each of `nodes` (`pids` their
/// processes), then storm them with `n` web users.
pub fn run(auth_bin: &Path, nodes: &[SocketAddr], n: u64, pids: &[u32]) -> io::Result<Outcome> {
    let services = Services::start(auth_bin, nodes)?;
    let token = token();
    wait_ready(nodes, &token)?;
    let mut storm = Storm::spawn(nodes, n, None, Some(&token))?;
    let auth_pids = services.pids();
    let (cpu0, auth0) = (proc_stats::cpu_sum(pids), proc_stats::cpu_sum(&auth_pids));
    let start = Instant::now();
    let (failed, bench_cpu) = storm.go()?;
    let elapsed = start.elapsed();
    let server_cpu = proc_stats::cpu_since(cpu0, pids);
    let auth_cpu = proc_stats::cpu_since(auth0, &auth_pids);
    let rss = proc_stats::rss_sum(pids);
    drop(storm);
    drop(services);
    let mut notes = vec![("failed attempts", failed)];
    notes.extend(auth_cpu.map(|c| ("tribune-auth CPU s", c)));
    Ok(Outcome {
        rate: Some(n as f64 / elapsed.as_secs_f64()),
        server_cpu,
        rss,
        notes,
        elapsed,
        bench_cpu,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_an_hs256_jwt_with_the_secret() {
        let t = token();
        let parts: Vec<&str> = t.split('.').collect();
        assert_eq!(parts.len(), 3, "{t}");
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["aud"], AUDIENCE);
        assert_eq!(claims["sports"][0], "football");
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, keys().secret.as_bytes());
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let signed = format!("{}.{}", parts[0], parts[1]);
        assert!(ring::hmac::verify(&key, signed.as_bytes(), &sig).is_ok());
    }

    #[test]
    fn both_servers_get_the_callout_and_tribune_auth_its_keys() {
        let conf = server_config();
        assert!(conf.contains(&keys().issuer.public_key()), "{conf}");
        assert!(conf.contains(&keys().xkey.public_key()), "{conf}");
        let auth = auth_config("127.0.0.1:4222".parse().unwrap(), Path::new("/x"));
        assert!(
            auth.contains("nats://127.0.0.1:4222") && auth.contains("/x/issuer.nk"),
            "{auth}"
        );
        // No secret in either file.
        assert!(!conf.contains(&keys().secret) && !auth.contains(&keys().secret));
    }
}
