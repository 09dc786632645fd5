//! A stream's `consumer_limits`: defaults for, and ceilings on, the
//! `inactive_threshold` and `max_ack_pending` of its consumers, as
//! nats-server applies them. A consumer that asks for neither gets the
//! stream's; one that asks for more is refused (10153, 10121); a stream
//! update that lowers a limit below what a consumer has is refused.

use serde::{Deserialize, Serialize};

use super::errors::{self, ApiError};
use super::types::ConsumerConfig;

/// `consumer_limits` as nats-server reads and writes it (always present
/// in a stream's configuration, `{}` when unset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ConsumerLimits {
    /// Nanoseconds; 0 is no limit.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub inactive_threshold: i64,
    /// 0 is no limit.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_ack_pending: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

impl ConsumerLimits {
    /// The stream's values for what the consumer left unset; before the
    /// server's own defaults, which then no longer apply.
    pub(crate) fn apply_defaults(&self, cfg: &mut ConsumerConfig) {
        if cfg.max_ack_pending == 0 {
            cfg.max_ack_pending = self.max_ack_pending;
        }
        if cfg.inactive_threshold == 0 {
            cfg.inactive_threshold = self.inactive_threshold;
        }
    }

    /// Refuse a consumer configuration beyond the limits.
    pub fn check(&self, cfg: &ConsumerConfig) -> Result<(), ApiError> {
        if self.max_ack_pending > 0 && cfg.max_ack_pending > self.max_ack_pending {
            return Err(errors::max_ack_pending_excess(self.max_ack_pending));
        }
        if self.inactive_threshold > 0 && cfg.inactive_threshold > self.inactive_threshold {
            return Err(ApiError::new(
                400,
                10153,
                format!(
                    "consumer inactive threshold exceeds system limit of {}",
                    crate::monitor::gofmt::go_duration(
                        u64::try_from(self.inactive_threshold).unwrap_or(0)
                    )
                ),
            ));
        }
        Ok(())
    }

    /// A stream update from `old` to `self`: a limit that changed (and is
    /// set) must hold for every existing consumer (`consumers`, by name).
    pub(crate) fn check_update<'a>(
        &self,
        old: &ConsumerLimits,
        consumers: impl IntoIterator<Item = (&'a str, &'a ConsumerConfig)>,
    ) -> Result<(), ApiError> {
        let inactive =
            self.inactive_threshold > 0 && self.inactive_threshold != old.inactive_threshold;
        let pending = self.max_ack_pending > 0 && self.max_ack_pending != old.max_ack_pending;
        if !inactive && !pending {
            return Ok(());
        }
        let mut over: Vec<&str> = consumers
            .into_iter()
            .filter(|(_, c)| {
                (inactive && c.inactive_threshold > self.inactive_threshold)
                    || (pending && c.max_ack_pending > self.max_ack_pending)
            })
            .map(|(n, _)| n)
            .collect();
        if over.is_empty() {
            return Ok(());
        }
        over.sort_unstable();
        Err(errors::stream_update(format!(
            "change to limits violates consumers: {}",
            over.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consumer(pending: i64, inactive: i64) -> ConsumerConfig {
        let mut c: ConsumerConfig = serde_json::from_str("{}").unwrap();
        c.max_ack_pending = pending;
        c.inactive_threshold = inactive;
        c
    }

    #[test]
    fn defaults_then_ceilings() {
        let l = ConsumerLimits {
            inactive_threshold: 2_000_000_000,
            max_ack_pending: 10,
        };
        let mut c = consumer(0, 0);
        l.apply_defaults(&mut c);
        assert_eq!(
            (c.max_ack_pending, c.inactive_threshold),
            (10, 2_000_000_000)
        );
        assert!(l.check(&c).is_ok());
        let e = l.check(&consumer(11, 0)).unwrap_err();
        assert_eq!(
            (e.err_code, e.description.as_str()),
            (10121, "consumer max ack pending exceeds system limit of 10")
        );
        let e = l.check(&consumer(5, 3_000_000_000)).unwrap_err();
        assert_eq!(
            (e.err_code, e.description.as_str()),
            (
                10153,
                "consumer inactive threshold exceeds system limit of 2s"
            )
        );
        assert_eq!(
            serde_json::to_string(&ConsumerLimits::default()).unwrap(),
            "{}"
        );
    }

    #[test]
    fn update_names_the_consumers_over_the_limit() {
        let l = ConsumerLimits {
            inactive_threshold: 0,
            max_ack_pending: 10,
        };
        let (a, b, c) = (consumer(20, 0), consumer(5, 0), consumer(30, 0));
        let e = l
            .check_update(
                &ConsumerLimits::default(),
                [("b", &b), ("c", &c), ("a", &a)],
            )
            .unwrap_err();
        assert_eq!(e.err_code, 10069);
        assert_eq!(e.description, "change to limits violates consumers: a, c");
        // Unchanged limits are not checked again.
        assert!(l.check_update(&l, [("a", &a)]).is_ok());
    }
}
