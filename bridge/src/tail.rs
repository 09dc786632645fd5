//! `tribune-bridge tail SUBJECT`: watch live match states as one-liners;
//! with `--current`, every match's current state first (the reader flow of
//! bridge/README.md, crate::snapshot).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use futures::StreamExt;

use crate::payload::{Clock, MatchMessage, Sport};
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
        println!("{}", one_line(subject, payload, now_ms()));
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `sports.football.abc  football  2-1  2nd half  67'  r42  Goal! (A. Silva)`:
/// the match as it stands (a running football clock as of `now_ms`, so a
/// state read with `--current` shows the minute now), and the newest
/// text-live line or incident when this update added one.
pub fn one_line(subject: &str, payload: &[u8], now_ms: u64) -> String {
    let Ok(m) = serde_json::from_slice::<MatchMessage>(payload) else {
        return format!("{subject}  (not a match state, {} bytes)", payload.len());
    };
    let u = &m.state;
    let mut line = format!("{subject:<40} {:<10}", u.sport);
    if let Some(s) = &u.score {
        let n = |v: Option<i64>| v.map_or("?".into(), |v| v.to_string());
        let mut score = format!("{}-{}", n(s.home.score), n(s.away.score));
        if s.home.penalties.is_some() || s.away.penalties.is_some() {
            score.push_str(&format!(
                " ({}-{} p)",
                n(s.home.penalties),
                n(s.away.penalties)
            ));
        }
        line.push_str(&format!(
            " {score:>7}  {:<14}",
            status_name(&u.sport, s.status_id)
        ));
    }
    let clock = match (&u.clock, &u.score) {
        (Some(c), Some(s)) if c.running => Clock::derive(&u.sport, s, now_ms.max(u.updated_at_ms)),
        (c, _) => c.clone(),
    };
    let clock = clock.map_or(String::new(), |c| c.text(&u.sport));
    line.push_str(&format!(" {clock:>20}  r{}", u.rev));
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
    let Some(status) = status else {
        return String::new();
    };
    Sport::from_name(sport)
        .and_then(|s| s.status_name(status))
        .map_or_else(|| format!("status {status}"), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn state(sport: &str, score: serde_json::Value, clock: serde_json::Value) -> Vec<u8> {
        json!({"schema": "tribune.sports.match.v2", "sport": sport, "match_id": "m", "provider": "p",
            "rev": 42, "updated_at_ms": 1_767_296_000_000u64, "score": score, "minute": null, "clock": clock,
            "stats": [], "incidents": [], "tlive": [{"data": "67' Goal! (A. Silva)"}], "extra": {},
            "changed": ["tlive"], "added": {"incidents": 0, "tlive": 1}})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn football_with_a_ticking_minute() {
        let ts = 1_767_296_000 - 21 * 60;
        let u = state(
            "football",
            json!({"status_id": 4, "kickoff_ts": ts, "home": {"score": 2, "detail": [2, 1, 0, 0, 0, 0, 0]},
                   "away": {"score": 1, "detail": [1, 0, 0, 0, 0, 0, 0]}}),
            json!({"period": 2, "minute": 67, "stoppage": 0, "kickoff_ts": ts, "offset": 45, "running": true}),
        );
        let line = one_line("sports.football.m", &u, 1_767_296_000_000);
        for want in ["2-1", "2nd half", "67'", "r42", "Goal!"] {
            assert!(line.contains(want), "{want}: {line}");
        }
        // Read two minutes later (`--current`): the minute has moved on.
        let line = one_line("sports.football.m", &u, 1_767_296_120_000);
        assert!(line.contains(" 69'"), "{line}");
        assert!(one_line("s", b"nope", 0).contains("not a match state"));
    }

    #[test]
    fn other_sports_and_penalties() {
        let u = state(
            "basketball",
            json!({"status_id": 4, "kickoff_ts": null, "remaining_s": 431,
                   "home": {"score": 49, "detail": [27, 22, 0, 0, 0]}, "away": {"score": 49, "detail": [24, 25, 0, 0, 0]}}),
            json!({"period": 2, "remaining_s": 431, "running": false}),
        );
        let line = one_line("sports.basketball.m", &u, 0);
        for want in ["49-49", "Q2 ", " 7:11"] {
            assert!(line.contains(want), "{want}: {line}");
        }
        let u = state(
            "tennis",
            json!({"status_id": 52, "kickoff_ts": null, "serving": 2,
                   "home": {"score": 1, "detail": [6, 2]}, "away": {"score": 0, "detail": [3, 3]}}),
            json!({"period": 2, "game": 6, "serving": 2, "running": false}),
        );
        let line = one_line("sports.tennis.m", &u, 0);
        for want in ["1-0", "set 2 ", "game 6, away serving"] {
            assert!(line.contains(want), "{want}: {line}");
        }
        let u = state(
            "football",
            json!({"status_id": 8, "kickoff_ts": 0, "home": {"score": 2, "detail": [1, 0, 0, 0, 0, 2, 4], "penalties": 4},
                   "away": {"score": 2, "detail": [1, 0, 0, 0, 0, 2, 3], "penalties": 3}}),
            json!(null),
        );
        let line = one_line("sports.football.m", &u, 0);
        assert!(
            line.contains("2-2 (4-3 p)") && line.contains("ended"),
            "{line}"
        );
    }
}
