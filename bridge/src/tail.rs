//! `tribune-bridge tail SUBJECT`: watch live match states as one-liners;
//! with `--current`, every match's current state first (the reader flow of
//! bridge/README.md, crate::snapshot).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use futures::StreamExt;

use crate::payload::MatchMessage;
use crate::snapshot::{current_states, Newest};

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
    /// Start with every match's current state read from this stream.
    pub current: Option<String>,
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
    let mut seen = 0u64;
    let mut newest = Newest::default();
    let done = |seen: u64| opts.count > 0 && seen >= opts.count;
    // Subscribed first, so nothing stored after the snapshot is missed; what
    // both deliver is shown once (the higher revision wins).
    if let Some(stream) = &opts.current {
        let snap = current_states(&client, stream, &opts.subject, Duration::from_secs(10)).await?;
        eprintln!(
            "tail: {} matches as of {stream} sequence {}",
            snap.messages.len(),
            snap.up_to_seq
        );
        for msg in &snap.messages {
            let subject = msg
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Subject"))
                .map_or(msg.subject.as_str(), |v| v.as_str());
            if let Ok(m) = serde_json::from_slice::<MatchMessage>(&msg.payload) {
                newest.accept(subject, &m);
            }
            print(subject, &msg.payload, opts.json);
            seen += 1;
            if done(seen) {
                return Ok(());
            }
        }
    }
    eprintln!("tail: watching {} (Ctrl-C to stop)", opts.subject);
    while let Some(msg) = sub.next().await {
        if opts.current.is_some() {
            match serde_json::from_slice::<MatchMessage>(&msg.payload) {
                Ok(m) if !newest.accept(&msg.subject, &m) => continue,
                _ => {}
            }
        }
        print(&msg.subject, &msg.payload, opts.json);
        seen += 1;
        if done(seen) {
            break;
        }
    }
    Ok(())
}

fn print(subject: &str, payload: &[u8], json: bool) {
    if json {
        println!("{subject} {}", String::from_utf8_lossy(payload));
    } else {
        println!("{}", one_line(subject, payload));
    }
}

/// `sports.football.abc  football  2-1  2nd half   67'  r42  Goal! (A. Silva)`:
/// the match as it stands, and the newest text-live line or incident when
/// this update added one.
pub fn one_line(subject: &str, payload: &[u8]) -> String {
    let Ok(m) = serde_json::from_slice::<MatchMessage>(payload) else {
        return format!("{subject}  (not a match state, {} bytes)", payload.len());
    };
    let u = &m.state;
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
    let minute = u.minute.map_or(String::new(), |m| format!("{m}'"));
    line.push_str(&format!(" {minute:>4}  r{}", u.rev));
    if m.added.tlive > 0 {
        if let Some(t) = u.tlive.last() {
            line.push_str(&format!("  {}", t.data));
        }
    } else if m.added.incidents > 0 {
        if let Some(i) = u.incidents.last() {
            line.push_str(&format!(
                "  incident type {} at {}'",
                i.kind,
                i.time.unwrap_or(0)
            ));
        }
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
    fn formats_states_and_garbage() {
        let u = br#"{"schema":"tribune.sports.match.v2","sport":"football","match_id":"m","provider":"p",
            "rev":42,"updated_at_ms":1,"score":{"status_id":4,"kickoff_ts":null,"home":{"score":2,"detail":[2]},
            "away":{"score":1,"detail":[1]}},"minute":67,"stats":[],"incidents":[],
            "tlive":[{"data":"67' Goal! (A. Silva)"}],"extra":{},"changed":["tlive"],
            "added":{"incidents":0,"tlive":1}}"#;
        let line = one_line("sports.football.m", u);
        for want in ["2-1", "2nd half", "67'", "r42", "Goal!"] {
            assert!(line.contains(want), "{want}: {line}");
        }
        assert!(one_line("s", b"nope").contains("not a match state"));
    }
}
