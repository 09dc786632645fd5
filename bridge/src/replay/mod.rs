//! `tribune-bridge replay-dlq`: the dead-letter stream through the current
//! parser, after a parser fix.
//!
//! Each dead letter in the sequence range, in order ([`source`]), is parsed
//! as if it had just arrived on its original MQTT topic ([`letter`]), and
//! each match update it yields now takes the live path: the match's state is
//! loaded from the stream, the update merged, the whole state published with
//! the expected last subject sequence (crate::state::apply), one dead letter
//! at a time. So the match states stay consistent with the live bridge,
//! which may be running: whichever of the two writes a match second finds
//! the subject moved on, reloads and merges again on top.
//!
//! Ordering against live traffic (crate::state::Held::merge_replayed): a
//! dead letter received after everything merged into the match goes in
//! whole; one received earlier only fills what the state does not know yet
//! (missed incidents and text-live lines, stat types, extra keys, score
//! fields without a value), so a replay never rolls a match back. A replay
//! that changes nothing publishes nothing, and the updates carry the ids the
//! live bridge would have given them, so running a replay twice stores
//! nothing twice.
//!
//! `--delete-replayed` deletes a dead letter only once all its updates are
//! in the match states (stored and acknowledged, or already there); dead
//! letters that still do not parse, or only partly, stay. `--dry-run` reads
//! the states and reports what a real run would do, storing and deleting
//! nothing.

pub mod letter;
pub mod report;
pub mod source;

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use async_nats::HeaderMap;
use bytes::Bytes;
use tokio::sync::watch;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::process::Router;
use crate::publish::Publisher;
use crate::state::{self, Backend, MatchStates, Mode, Outcome, StoredMsg, UpdateJob};
use letter::DeadLetter;
use report::{Report, Summary, Verdict};
use source::DeadLetters;

/// What to replay, and how.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// First dead-letter sequence (default: the stream's first).
    pub from_seq: Option<u64>,
    /// Last dead-letter sequence, inclusive (default: the stream's last when
    /// the run starts).
    pub to_seq: Option<u64>,
    /// Report only: read the match states, store and delete nothing.
    pub dry_run: bool,
    /// Delete each fully replayed dead letter once its states are stored.
    pub delete_replayed: bool,
}

/// Replays the range; writes one JSON line per dead letter to `out`, and
/// returns the summary (the caller prints it). A stream that stops
/// answering ends the run early with the summary's `error` set.
pub async fn run(
    cfg: &Config,
    opts: &ReplayOptions,
    out: &mut dyn Write,
    shutdown: watch::Receiver<bool>,
) -> Result<Summary> {
    let mut nats = cfg.nats.clone();
    nats.name = format!("{}-replay", nats.name);
    let client = crate::nats::connect_options(&nats)
        .await?
        .connect(nats.servers.clone())
        .await
        .with_context(|| {
            format!(
                "connecting to NATS {:?}",
                crate::nats::redacted(&nats.servers)
            )
        })?;
    let js = crate::nats::context(client.clone(), &cfg.jetstream, 1);
    let direct = js
        .get_stream(&cfg.jetstream.stream)
        .await
        .with_context(|| format!("match stream {}", cfg.jetstream.stream))?
        .cached_info()
        .config
        .allow_direct;
    let metrics = Arc::new(Metrics::default());
    let publisher = Publisher::new(js.clone(), cfg, direct, metrics.clone()).await?;
    let (mut dead, range) = DeadLetters::open(
        &js,
        &cfg.jetstream.dead_letter_stream,
        &cfg.jetstream.dead_letter_subject,
        opts.from_seq,
        opts.to_seq,
    )
    .await?;
    tracing::info!(
        stream = %cfg.jetstream.dead_letter_stream,
        from = range.from,
        to = range.to,
        dry_run = opts.dry_run,
        delete_replayed = opts.delete_replayed,
        "replaying dead letters"
    );
    let mut summary = Summary {
        stream: cfg.jetstream.dead_letter_stream.clone(),
        from_seq: range.from,
        to_seq: range.to,
        dry_run: opts.dry_run,
        delete_replayed: opts.delete_replayed && !opts.dry_run,
        ..Summary::default()
    };
    let router = Router::new(cfg);
    let mut states = MatchStates::new(cfg.state.limits());
    let dry = DryRun(&publisher);
    loop {
        if *shutdown.borrow() {
            summary.interrupted = true;
            break;
        }
        let stored = match dead.next().await {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(e) => {
                tracing::error!("{e:#}");
                summary.error = Some(format!("{e:#}"));
                break;
            }
        };
        let letter = DeadLetter::from_stored(&stored);
        let mut report = if opts.dry_run {
            replay_letter(&dry, &metrics, &mut states, &router, &letter).await
        } else {
            replay_letter(&publisher, &metrics, &mut states, &router, &letter).await
        };
        if summary.delete_replayed && report.result == Verdict::Replayed {
            match dead.delete(letter.seq).await {
                Ok(()) => report.deleted = true,
                Err(e) => report.delete_error = Some(format!("{e:#}")),
            }
        }
        summary.add(&report);
        serde_json::to_writer(&mut *out, &report).context("writing the report")?;
        writeln!(out).context("writing the report")?;
    }
    if let Err(e) = client.flush().await {
        tracing::warn!(error = %e, "NATS flush at the end of the replay");
    }
    Ok(summary)
}

/// Replays one dead letter through `backend` (the stream, or a dry run).
pub async fn replay_letter<B: Backend>(
    backend: &B,
    metrics: &Metrics,
    states: &mut MatchStates,
    router: &Router,
    letter: &DeadLetter,
) -> Report {
    let plan = letter.plan(router);
    let mut report = Report {
        seq: letter.seq,
        msg_id: letter.msg_id.clone(),
        topic: letter.topic.clone(),
        entry: letter.entry.clone().ok().flatten(),
        result: Verdict::Replayed,
        reason: None,
        updates: plan.updates.len(),
        stored: 0,
        already: 0,
        deleted: false,
        delete_error: None,
    };
    if let Some(why) = plan.skipped {
        report.result = Verdict::Skipped;
        report.reason = Some(why);
        return report;
    }
    let mut failed = false;
    for routed in plan.updates {
        let job = UpdateJob {
            link: states.link(&routed.subject, Instant::now()),
            sport: metrics.sports.id(Some(&routed.update.sport)),
            subject: routed.subject,
            msg_id: routed.msg_id,
            update: routed.update,
            mode: Mode::Replay,
        };
        let subject = job.subject.clone();
        let applied = state::apply(backend, metrics, job).await;
        if !report.count(applied) {
            tracing::error!(seq = letter.seq, %subject, "the replayed state could not be published");
            failed = true;
        }
    }
    if failed {
        report.result = Verdict::Failed;
        report.reason = Some("a match state is larger than the server's max_payload".into());
    } else if !plan.still_malformed.is_empty() {
        report.result = if report.updates == 0 {
            Verdict::StillMalformed
        } else {
            Verdict::Partial
        };
        report.reason = Some(plan.still_malformed.join("; "));
    }
    report
}

/// Reads the real stream and stores nothing: a dry run reports what a real
/// run would do, dead letters of the same match building on each other as
/// they would. (It cannot know which ids the stream's duplicate window
/// still holds: those count as stored.)
struct DryRun<'a>(&'a Publisher);

impl Backend for DryRun<'_> {
    async fn load_last(&self, subject: &str, from_leader: bool) -> Option<StoredMsg> {
        self.0.load_last(subject, from_leader).await
    }

    async fn publish(&self, _subject: &str, _headers: HeaderMap, _payload: Bytes) -> Outcome {
        // Any sequence but 0 (0 would mean "nothing stored for the match").
        Outcome::Stored { seq: u64::MAX }
    }
}

#[cfg(test)]
mod tests;
