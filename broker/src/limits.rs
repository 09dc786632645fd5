//! Count and size limits on a connection, and how the ones from different
//! places combine.
//!
//! NATS writes "no limit" two ways. Server options (`max_subscriptions`)
//! use 0; user JWTs and account `limits {}` use -1, where 0 really means
//! zero. A connection is held to the tightest of the server's, its account's
//! and its user's limits, as nats-server's `applyAccountLimits` does: a
//! user JWT can only narrow what the server allows, never widen it.

/// One limit: none, or at most so many.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Limit {
    #[default]
    Unlimited,
    AtMost(u64),
}

impl Limit {
    /// A JWT or account limit: negative is none, 0 is zero.
    pub fn from_jwt(v: i64) -> Limit {
        u64::try_from(v).map_or(Limit::Unlimited, Limit::AtMost)
    }

    /// A server option: 0 is none.
    pub fn from_option(v: usize) -> Limit {
        match v {
            0 => Limit::Unlimited,
            n => Limit::AtMost(n as u64),
        }
    }

    /// The tighter of the two.
    pub fn min(self, other: Limit) -> Limit {
        match (self, other) {
            (Limit::AtMost(a), Limit::AtMost(b)) => Limit::AtMost(a.min(b)),
            (Limit::AtMost(a), Limit::Unlimited) | (Limit::Unlimited, Limit::AtMost(a)) => {
                Limit::AtMost(a)
            }
            (Limit::Unlimited, Limit::Unlimited) => Limit::Unlimited,
        }
    }

    /// Would one more make `count` go over the limit?
    pub fn reached(self, count: usize) -> bool {
        match self {
            Limit::Unlimited => false,
            Limit::AtMost(n) => count as u64 >= n,
        }
    }

    /// The limit as a size, `None` when there is none.
    pub fn as_usize(self) -> Option<usize> {
        match self {
            Limit::Unlimited => None,
            Limit::AtMost(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
        }
    }
}

/// The limits a user brings to its connection (from a user JWT, or an
/// account's `limits {}`); unlimited unless said otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnLimits {
    pub subs: Limit,
    pub payload: Limit,
}

impl ConnLimits {
    /// Both limits, each the tighter of the two.
    pub fn min(self, other: ConnLimits) -> ConnLimits {
        ConnLimits {
            subs: self.subs.min(other.subs),
            payload: self.payload.min(other.payload),
        }
    }
}

/// An account's `limits {}`: how many clients may be bound to it on this
/// node, and the limits each of them gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AccountLimits {
    pub max_connections: Limit,
    pub conn: ConnLimits,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_and_minus_one_mean_what_nats_means() {
        assert_eq!(Limit::from_jwt(-1), Limit::Unlimited);
        assert_eq!(Limit::from_jwt(0), Limit::AtMost(0));
        assert_eq!(Limit::from_jwt(7), Limit::AtMost(7));
        assert_eq!(Limit::from_option(0), Limit::Unlimited);
        assert_eq!(Limit::from_option(7), Limit::AtMost(7));
    }

    #[test]
    fn the_tighter_limit_wins() {
        let server = Limit::from_option(100);
        assert_eq!(server.min(Limit::from_jwt(-1)), Limit::AtMost(100));
        assert_eq!(
            server.min(Limit::from_jwt(1000)),
            Limit::AtMost(100),
            "a JWT cannot raise it"
        );
        assert_eq!(server.min(Limit::from_jwt(10)), Limit::AtMost(10));
        assert_eq!(
            server.min(Limit::from_jwt(0)),
            Limit::AtMost(0),
            "0 in a JWT is zero"
        );
        assert_eq!(Limit::Unlimited.min(Limit::Unlimited), Limit::Unlimited);
    }

    #[test]
    fn reached() {
        assert!(!Limit::Unlimited.reached(usize::MAX));
        assert!(Limit::AtMost(0).reached(0));
        assert!(!Limit::AtMost(2).reached(1));
        assert!(Limit::AtMost(2).reached(2));
    }
}
