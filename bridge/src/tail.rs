//! `tribune-bridge tail SUBJECT`: watch live updates as one-liners.

use std::path::PathBuf;

use anyhow::{Context, Result};
use futures::StreamExt;

use crate::payload::MatchUpdate;

#[derive(Debug, Clone, Default)]
pub struct TailOptions {
    pub subject: String,
    pub servers: Vec<String>,
    pub nkey_seed_file: Option<PathBuf>,
    pub creds_file: Option<PathBuf>,
    /// A web user's token (auth callout), read from this environment variable.
    pub token_env: Option<String>,
    pub user: Option<String>,
    pub password_env: Option<String>,
    pub tls_ca_file: Option<PathBuf>,
    /// Exit after this many messages (0 = until Ctrl-C).
    pub count: u64,
    /// Print the raw JSON instead of a one-liner.
    pub json: bool,
}

pub async fn run(opts: TailOptions) -> Result<()> {
    crate::tls::install_crypto_provider();
    let mut o = async_nats::ConnectOptions::new().name("tribune-bridge tail");
    if let Some(path) = &opts.nkey_seed_file {
        let seed =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        o = o.nkey(seed.trim().to_owned());
    }
    if let Some(path) = &opts.creds_file {
        o = o
            .credentials_file(path)
            .await
            .with_context(|| format!("creds {}", path.display()))?;
    }
    if let Some(var) = &opts.token_env {
        o = o.token(std::env::var(var).with_context(|| format!("${var} is not set"))?);
    }
    if let Some(user) = &opts.user {
        let pass = match &opts.password_env {
            Some(var) => std::env::var(var).with_context(|| format!("${var} is not set"))?,
            None => String::new(),
        };
        o = o.user_and_password(user.clone(), pass);
    }
    if let Some(ca) = &opts.tls_ca_file {
        o = o.add_root_certificates(ca.clone()).require_tls(true);
    }
    let client = o
        .connect(opts.servers.clone())
        .await
        .with_context(|| format!("connecting to {:?}", crate::nats::redacted(&opts.servers)))?;
    let mut sub = client
        .subscribe(opts.subject.clone())
        .await
        .with_context(|| format!("subscribing to {}", opts.subject))?;
    client
        .flush()
        .await
        .context("subscribe not confirmed by the server")?;
    eprintln!("tail: watching {} (Ctrl-C to stop)", opts.subject);
    let mut seen = 0u64;
    while let Some(msg) = sub.next().await {
        seen += 1;
        if opts.json {
            println!("{} {}", msg.subject, String::from_utf8_lossy(&msg.payload));
        } else {
            println!("{}", one_line(&msg.subject, &msg.payload));
        }
        if opts.count > 0 && seen >= opts.count {
            break;
        }
    }
    Ok(())
}

/// `sports.football.abc  football  2-1  2nd half 67'  Goal! (A. Silva)`.
pub fn one_line(subject: &str, payload: &[u8]) -> String {
    let Ok(u) = serde_json::from_slice::<MatchUpdate>(payload) else {
        return format!("{subject}  (not a match update, {} bytes)", payload.len());
    };
    let mut line = format!("{subject:<40} {:<10}", u.sport);
    if let Some(s) = &u.score {
        let score = format!(
            "{}-{}",
            s.home.score.map_or("?".into(), |v| v.to_string()),
            s.away.score.map_or("?".into(), |v| v.to_string())
        );
        line.push_str(&format!(
            " {score:>7}  {:<12}",
            status_name(&u.sport, s.status_id)
        ));
    }
    if let Some(t) = u.tlive.as_ref().and_then(|t| t.last()) {
        line.push_str(&format!("  {}", t.data));
    } else if let Some(i) = u.incidents.as_ref().and_then(|i| i.last()) {
        line.push_str(&format!(
            "  incident type {} at {}'",
            i.kind,
            i.time.unwrap_or(0)
        ));
    }
    line
}

fn status_name(sport: &str, status: Option<i64>) -> String {
    match (sport, status) {
        (_, None) => String::new(),
        (_, Some(1)) => "not started".into(),
        ("football", Some(2)) => "1st half".into(),
        ("football", Some(3)) => "half-time".into(),
        ("football", Some(4)) => "2nd half".into(),
        ("football", Some(8)) | ("basketball", Some(10)) => "ended".into(),
        ("basketball", Some(s @ 2..=5)) => format!("Q{}", s - 1),
        ("tennis", Some(2)) => "in play".into(),
        (_, Some(s)) => format!("status {s}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_updates_and_garbage() {
        let u = br#"{"schema":"x","sport":"football","match_id":"m","provider":"p","source_topic":"t",
            "received_at_ms":1,"score":{"status_id":4,"kickoff_ts":null,"home":{"score":2,"detail":[2]},
            "away":{"score":1,"detail":[1]}},"tlive":[{"data":"67' Goal! (A. Silva)"}]}"#;
        let line = one_line("sports.football.m", u);
        assert!(
            line.contains("2-1") && line.contains("2nd half") && line.contains("Goal!"),
            "{line}"
        );
        assert!(one_line("s", b"nope").contains("not a match update"));
    }
}
