//! The subjects Raft traffic travels on, defined here and nowhere else.
//!
//! - A request to node `N` for group `G`: `$TRG.<N>.<G>.<op>`, `op` one of
//!   `vote`, `append`, `snapshot`, and `elect` and `catchup`, which are not
//!   openraft's.
//! - Its answer: `$TRG.<sender>.R.<request id>`.
//!
//! Node ids are written as 16 lowercase hex digits, so a node's inbox has
//! one fixed-width token and each node subscribes to `$TRG.<itself>.>`
//! only. A group name is one subject token; `R` is reserved for answers.

use std::fmt::Write as _;

use openraft::RPCTypes;

/// The first token of every Raft subject (nats-server's own is `$NRG`).
pub const PREFIX: &str = "$TRG";

/// The token that marks an answer in place of a group name.
pub const REPLY_TOKEN: &str = "R";

/// The longest group name accepted, in bytes.
pub const MAX_GROUP_LEN: usize = 128;

/// The subscription through which node `node` receives its Raft traffic,
/// requests and answers alike: `$TRG.<node>.>`.
pub fn subscription(node: u64) -> String {
    format!("{PREFIX}.{node:016x}.>")
}

/// The subject of a request `op` to `node` for `group`.
pub fn request(node: u64, group: &str, op: Op) -> String {
    format!("{PREFIX}.{node:016x}.{group}.{}", op.as_str())
}

/// `$TRG.<node>.`: what every subject addressed to `node` starts with.
pub(super) fn inbox(node: u64) -> String {
    format!("{PREFIX}.{node:016x}.")
}

/// Writes the reply subject of request `id` sent by `node` into `buf`
/// (reused across requests, so sending allocates no subject).
pub(super) fn write_reply(buf: &mut String, node: u64, id: u64) {
    buf.clear();
    // Writing into a String cannot fail.
    let _ = write!(buf, "{PREFIX}.{node:016x}.{REPLY_TOKEN}.{id:x}");
}

/// A Raft RPC, as named in the last token of a request subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Vote,
    Append,
    Snapshot,
    /// Leadership transfer (Raft's TimeoutNow): the leader asks a caught-up
    /// follower to campaign at once. Not an openraft RPC.
    Elect,
    /// A replica that installed a snapshot asks a peer for the data the
    /// snapshot describes (a stream's messages). Not an openraft RPC.
    Catchup,
    /// Whether the peer's replica already belongs to a group: a server
    /// about to form a new group asks first. Not an openraft RPC.
    Joined,
}

impl Op {
    /// openraft's RPCs: the subjects a connection to a peer keeps.
    pub const ALL: [Op; 3] = [Op::Vote, Op::Append, Op::Snapshot];

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Vote => "vote",
            Op::Append => "append",
            Op::Snapshot => "snapshot",
            Op::Elect => "elect",
            Op::Catchup => "catchup",
            Op::Joined => "joined",
        }
    }

    /// The position of this operation in [`Op::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    fn parse(token: &str) -> Option<Op> {
        Op::ALL
            .into_iter()
            .chain([Op::Elect, Op::Catchup, Op::Joined])
            .find(|op| op.as_str() == token)
    }

    /// The RPC type openraft reports in its errors.
    pub fn rpc_type(self) -> RPCTypes {
        match self {
            Op::Vote => RPCTypes::Vote,
            Op::Append => RPCTypes::AppendEntries,
            Op::Snapshot => RPCTypes::InstallSnapshot,
            // Reported as what it leads to.
            Op::Elect => RPCTypes::Vote,
            Op::Catchup => RPCTypes::InstallSnapshot,
            Op::Joined => RPCTypes::Vote,
        }
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A group name that cannot be one subject token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Raft group name {name:?}: {reason}")]
pub struct InvalidGroup {
    pub name: String,
    pub reason: &'static str,
}

/// Checks that `group` is a single, literal subject token that is not the
/// answer marker, so that requests for it can never be mistaken for other
/// traffic.
pub fn validate_group(group: &str) -> Result<(), InvalidGroup> {
    let reason = if group.is_empty() {
        Some("empty")
    } else if group.len() > MAX_GROUP_LEN {
        Some("longer than 128 bytes")
    } else if group == REPLY_TOKEN {
        Some("reserved for answers")
    } else if group
        .chars()
        .any(|c| c == '.' || c == '*' || c == '>' || c.is_whitespace() || c.is_control())
    {
        Some("contains '.', '*', '>', a blank or a control character")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(InvalidGroup {
            name: group.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Whether `reply` is the reply subject of a Raft request (see
/// [`write_reply`]). Requests asking for answers anywhere else are not
/// answered: a request must not make this node publish on an arbitrary
/// subject of the system account.
pub(super) fn is_reply(reply: &str) -> bool {
    let hex = |s: &str, max: usize| {
        !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_hexdigit())
    };
    let Some(rest) = reply.strip_prefix(PREFIX).and_then(|r| r.strip_prefix('.')) else {
        return false;
    };
    let (node, rest) = rest.split_at_checked(16).unwrap_or(("", ""));
    match rest.strip_prefix(".R.") {
        Some(id) => hex(node, 16) && hex(id, 16),
        None => false,
    }
}

/// What an inbound subject addressed to this node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Inbound<'a> {
    /// The answer to our request `id`.
    Reply(u64),
    /// A request for `group`.
    Request { group: &'a str, op: Op },
}

/// Why an inbound subject was not understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum BadSubject {
    #[error("not addressed to this node")]
    NotMine,
    #[error("not of the form <group>.<op> or R.<id>")]
    Shape,
    #[error("unknown operation")]
    Op,
    #[error("request id is not hex")]
    Id,
}

/// Parses a subject received on `inbox` (see [`inbox`]), without allocating.
pub(super) fn parse<'a>(inbox: &str, subject: &'a str) -> Result<Inbound<'a>, BadSubject> {
    let rest = subject.strip_prefix(inbox).ok_or(BadSubject::NotMine)?;
    let (first, second) = rest.split_once('.').ok_or(BadSubject::Shape)?;
    if first.is_empty() || second.is_empty() || second.contains('.') {
        return Err(BadSubject::Shape);
    }
    if first == REPLY_TOKEN {
        return u64::from_str_radix(second, 16)
            .map(Inbound::Reply)
            .map_err(|_| BadSubject::Id);
    }
    let op = Op::parse(second).ok_or(BadSubject::Op)?;
    Ok(Inbound::Request { group: first, op })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_reply_subjects_parse_back() {
        let me = 0xabc;
        let inbox = inbox(me);
        assert_eq!(inbox, "$TRG.0000000000000abc.");
        assert_eq!(subscription(me), "$TRG.0000000000000abc.>");
        for op in Op::ALL {
            let s = request(me, "S-acc-orders", op);
            assert_eq!(
                parse(&inbox, &s),
                Ok(Inbound::Request {
                    group: "S-acc-orders",
                    op
                })
            );
        }
        let mut buf = String::new();
        write_reply(&mut buf, me, u64::MAX);
        assert_eq!(buf, "$TRG.0000000000000abc.R.ffffffffffffffff");
        assert_eq!(parse(&inbox, &buf), Ok(Inbound::Reply(u64::MAX)));
        assert!(is_reply(&buf));
        write_reply(&mut buf, 1, 0);
        assert!(is_reply(&buf));
    }

    #[test]
    fn only_raft_reply_subjects_are_answered() {
        for bad in [
            "",
            "$SYS.REQ.SERVER.PING",
            "$TRG.0000000000000001.R.",
            "$TRG.0000000000000001.R.1.2",
            "$TRG.0000000000000001.g.vote",
            "$TRG.000000000000001.R.1",
            "$TRG.000000000000000g.R.1",
            "$TRG.0000000000000001.R.11111111111111111",
            "$TRG.0000000000000001.R.>",
            "_INBOX.x",
        ] {
            assert!(!is_reply(bad), "{bad:?}");
        }
    }

    #[test]
    fn foreign_or_malformed_subjects_are_refused() {
        let inbox = inbox(1);
        let other = request(2, "g", Op::Vote);
        assert_eq!(parse(&inbox, &other), Err(BadSubject::NotMine));
        let base = "$TRG.0000000000000001.";
        assert_eq!(parse(&inbox, &format!("{base}g")), Err(BadSubject::Shape));
        assert_eq!(
            parse(&inbox, &format!("{base}g.vote.x")),
            Err(BadSubject::Shape)
        );
        assert_eq!(
            parse(&inbox, &format!("{base}.vote")),
            Err(BadSubject::Shape)
        );
        assert_eq!(parse(&inbox, &format!("{base}g.")), Err(BadSubject::Shape));
        assert_eq!(parse(&inbox, &format!("{base}g.boom")), Err(BadSubject::Op));
        assert_eq!(parse(&inbox, &format!("{base}R.xyz")), Err(BadSubject::Id));
    }

    #[test]
    fn group_names_are_single_literal_tokens() {
        for ok in ["meta", "S-ACC-orders_1", "ü"] {
            assert_eq!(validate_group(ok), Ok(()), "{ok}");
        }
        let long = "x".repeat(MAX_GROUP_LEN + 1);
        for bad in [
            "",
            "R",
            "a.b",
            "a*",
            ">",
            "a b",
            "a\tb",
            "a\u{0}",
            long.as_str(),
        ] {
            assert!(validate_group(bad).is_err(), "{bad:?}");
        }
    }
}
