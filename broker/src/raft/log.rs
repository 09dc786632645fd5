//! Durable Raft log storage (written by the log helper).
