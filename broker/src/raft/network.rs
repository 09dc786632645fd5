//! Raft RPCs over the cluster bus (written by the network helper).
