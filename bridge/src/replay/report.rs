//! What `replay-dlq` prints: one JSON line per dead letter, then a summary.

use serde::Serialize;

use crate::state::Applied;

/// What became of one dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Everything in it parses now and is in the match states (stored now,
    /// or already there). Only these are deleted with `--delete-replayed`.
    Replayed,
    /// Some match entries parse now and were replayed, others still do not;
    /// kept.
    Partial,
    /// Nothing in it parses yet; kept.
    StillMalformed,
    /// Not a dead letter the bridge can replay (no topic header, ...); kept.
    Skipped,
    /// A state could not be published (larger than the server's
    /// `max_payload`); kept.
    Failed,
}

/// One dead letter's line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msg_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<usize>,
    pub result: Verdict,
    /// Why it is still malformed, skipped or failed (parts joined by `; `).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Match updates it parses into now.
    pub updates: usize,
    /// States stored for them (in a dry run: that would be stored).
    pub stored: usize,
    /// Updates the match states already held (an earlier replay, or what
    /// the live feed sent since): nothing stored for them.
    pub already: usize,
    pub deleted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete_error: Option<String>,
}

impl Report {
    /// Counts one update's outcome.
    pub fn count(&mut self, applied: Applied) -> bool {
        match applied {
            Applied::Stored => self.stored += 1,
            Applied::Duplicate | Applied::AlreadyApplied | Applied::Unchanged => self.already += 1,
            Applied::Dropped => return false,
        }
        true
    }
}

/// The last line.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub stream: String,
    pub from_seq: u64,
    pub to_seq: u64,
    pub dry_run: bool,
    pub delete_replayed: bool,
    pub examined: u64,
    pub replayed: u64,
    pub partial: u64,
    pub still_malformed: u64,
    pub skipped: u64,
    pub failed: u64,
    pub updates: u64,
    pub stored: u64,
    pub already: u64,
    pub deleted: u64,
    /// Stopped by a signal before the end of the range.
    pub interrupted: bool,
    /// Set when the run stopped on an error (the stream stopped answering).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Summary {
    pub fn add(&mut self, r: &Report) {
        self.examined += 1;
        *match r.result {
            Verdict::Replayed => &mut self.replayed,
            Verdict::Partial => &mut self.partial,
            Verdict::StillMalformed => &mut self.still_malformed,
            Verdict::Skipped => &mut self.skipped,
            Verdict::Failed => &mut self.failed,
        } += 1;
        self.updates += r.updates as u64;
        self.stored += r.stored as u64;
        self.already += r.already as u64;
        self.deleted += u64::from(r.deleted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_json_and_the_summary_adds_up() {
        let mut r = Report {
            seq: 3,
            msg_id: Some("h:dl".into()),
            topic: Some("t/football".into()),
            entry: None,
            result: Verdict::StillMalformed,
            reason: Some("payload is not valid JSON".into()),
            updates: 0,
            stored: 0,
            already: 0,
            deleted: false,
            delete_error: None,
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"seq":3,"msg_id":"h:dl","topic":"t/football","result":"still_malformed","reason":"payload is not valid JSON","updates":0,"stored":0,"already":0,"deleted":false}"#
        );
        let mut s = Summary::default();
        s.add(&r);
        r.result = Verdict::Replayed;
        r.updates = 3;
        assert!(r.count(Applied::Stored));
        assert!(r.count(Applied::Unchanged));
        assert!(r.count(Applied::Duplicate));
        assert!(!r.count(Applied::Dropped));
        r.deleted = true;
        s.add(&r);
        assert_eq!(
            (
                s.examined,
                s.replayed,
                s.still_malformed,
                s.updates,
                s.stored,
                s.already,
                s.deleted
            ),
            (2, 1, 1, 3, 1, 2, 1)
        );
    }
}
