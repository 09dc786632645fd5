//! Process CPU and memory from /proc, for the server under test and for
//! the load generator itself.

/// Clock ticks per second; Linux reports 100 for USER_HZ on every platform we run on.
const TICKS: f64 = 100.0;

fn stat_cpu(text: &str) -> Option<f64> {
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS)
}

/// CPU seconds of every process in `pids` (a cluster's nodes), summed;
/// None if there are none or one is gone.
pub fn cpu_sum(pids: &[u32]) -> Option<f64> {
    pids.iter()
        .map(|p| proc_cpu(*p))
        .sum::<Option<f64>>()
        .filter(|_| !pids.is_empty())
}

/// CPU seconds `pids` used since [`cpu_sum`] read `before` for them;
/// None if either reading failed.
pub fn cpu_since(before: Option<f64>, pids: &[u32]) -> Option<f64> {
    Some(cpu_sum(pids)? - before?)
}

/// Resident memory of every process in `pids`, summed, as [`cpu_sum`].
pub fn rss_sum(pids: &[u32]) -> Option<u64> {
    pids.iter()
        .map(|p| proc_rss(*p))
        .sum::<Option<u64>>()
        .filter(|_| !pids.is_empty())
}

/// CPU seconds (user + system) used so far by `pid`.
pub fn proc_cpu(pid: u32) -> Option<f64> {
    stat_cpu(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// CPU seconds used so far by this process.
pub fn self_cpu() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|t| stat_cpu(&t))
        .unwrap_or(0.0)
}

/// Resident memory of `pid` in bytes.
pub fn proc_rss(pid: u32) -> Option<u64> {
    status_kb(pid, "VmRSS:").map(|kb| kb * 1024)
}

/// The most resident memory `pid` has had so far, in bytes.
pub fn proc_peak_rss(pid: u32) -> Option<u64> {
    status_kb(pid, "VmHWM:").map(|kb| kb * 1024)
}

/// A `kB` field of `/proc/<pid>/status`.
fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_name() {
        let line = "123 (a b) S 1 1 1 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 1 1 1";
        assert_eq!(stat_cpu(line), Some(3.0));
        let me = std::process::id();
        // Current first: other tests' threads may grow the process between
        // the two reads, and the peak read later covers that growth.
        let rss = proc_rss(me).unwrap();
        assert!(rss > 0);
        assert!(proc_peak_rss(me).unwrap() >= rss);
    }
}
