//! The sports whose payload layouts are known (bridge/PROVIDER_FORMAT.md §4).
//!
//! The provider's score array means something different per sport (a
//! football array read as basketball would put the remaining seconds in the
//! home score), so a sport without a known layout is refused rather than
//! guessed: its messages go to the dead-letter stream, where they are kept
//! for a replay once the layout is known.

/// A sport the bridge can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sport {
    Football,
    Basketball,
    Tennis,
}

impl Sport {
    /// Every supported sport, in the order the tools list them.
    pub const ALL: [Sport; 3] = [Sport::Football, Sport::Basketball, Sport::Tennis];

    /// The sport named by a topic level (`football`), if supported.
    pub fn from_name(name: &str) -> Option<Sport> {
        Sport::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The name used in topics and subjects.
    pub fn name(self) -> &'static str {
        match self {
            Sport::Football => "football",
            Sport::Basketball => "basketball",
            Sport::Tennis => "tennis",
        }
    }
}

impl Sport {
    /// The provider's name for a status id of this sport
    /// (PROVIDER_FORMAT.md §5), `None` for a code not in its table.
    pub fn status_name(self, status: i64) -> Option<&'static str> {
        let name = match (self, status) {
            (_, 0) => "abnormal",
            (_, 1) => "not started",
            (Sport::Football, 2) => "1st half",
            (Sport::Football, 3) => "half-time",
            (Sport::Football, 4) => "2nd half",
            (Sport::Football, 5 | 6) => "extra time",
            (Sport::Football, 7) => "penalties",
            (Sport::Football, 8) => "ended",
            (Sport::Football, 9) => "delayed",
            (Sport::Football, 10) => "interrupted",
            (Sport::Football, 11) => "abandoned",
            (Sport::Football, 12) => "cancelled",
            (Sport::Football, 13) => "to be decided",
            (Sport::Basketball, 2) => "Q1",
            (Sport::Basketball, 3) => "end of Q1",
            (Sport::Basketball, 4) => "Q2",
            (Sport::Basketball, 5) => "half-time",
            (Sport::Basketball, 6) => "Q3",
            (Sport::Basketball, 7) => "end of Q3",
            (Sport::Basketball, 8) => "Q4",
            (Sport::Basketball, 9) => "overtime",
            (Sport::Basketball, 10) => "ended",
            (Sport::Basketball, 11) => "interrupted",
            (Sport::Basketball, 12) => "cancelled",
            (Sport::Basketball, 13) => "postponed",
            (Sport::Basketball, 14) => "abandoned",
            (Sport::Basketball, 15) => "to be decided",
            (Sport::Tennis, 3) => "in play",
            (Sport::Tennis, 51) => "set 1",
            (Sport::Tennis, 52) => "set 2",
            (Sport::Tennis, 53) => "set 3",
            (Sport::Tennis, 54) => "set 4",
            (Sport::Tennis, 55) => "set 5",
            (Sport::Tennis, 100) => "ended",
            (Sport::Tennis, 20) => "walkover",
            (Sport::Tennis, 21) => "retired",
            (Sport::Tennis, 22) => "walkover (home)",
            (Sport::Tennis, 23) => "walkover (away)",
            (Sport::Tennis, 24) => "retired (home)",
            (Sport::Tennis, 25) => "retired (away)",
            (Sport::Tennis, 26) => "defaulted (home)",
            (Sport::Tennis, 27) => "defaulted (away)",
            (Sport::Tennis, 14) => "postponed",
            (Sport::Tennis, 15) => "delayed",
            (Sport::Tennis, 16) => "cancelled",
            (Sport::Tennis, 17) => "interrupted",
            (Sport::Tennis, 18) => "suspended",
            (Sport::Tennis, 19) => "abandoned",
            (Sport::Tennis, 99) => "to be decided",
            _ => return None,
        };
        Some(name)
    }
}

/// Why a sport's messages are refused; the text is the dead letter's reason.
pub fn unsupported(name: &str) -> String {
    format!(
        "sport {name:?} is not supported: its payload layout is not known (supported: football, basketball, tennis)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in Sport::ALL {
            assert_eq!(Sport::from_name(s.name()), Some(s));
        }
        assert_eq!(Sport::from_name("baseball"), None);
        assert_eq!(Sport::from_name("Football"), None);
        assert!(unsupported("cricket").contains("\"cricket\" is not supported"));
    }

    #[test]
    fn status_names_per_sport() {
        assert_eq!(Sport::Football.status_name(4), Some("2nd half"));
        assert_eq!(Sport::Basketball.status_name(4), Some("Q2"));
        assert_eq!(Sport::Basketball.status_name(5), Some("half-time"));
        assert_eq!(Sport::Tennis.status_name(3), Some("in play"));
        assert_eq!(Sport::Tennis.status_name(52), Some("set 2"));
        assert_eq!(Sport::Tennis.status_name(2), None, "not a tennis code");
        assert_eq!(Sport::Football.status_name(100), None);
    }
}
