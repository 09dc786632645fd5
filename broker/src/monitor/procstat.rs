//! Process resource usage from `/proc` (Linux). Elsewhere every reading is
//! zero rather than an error: monitoring must not fail because of it.

use std::time::Instant;

use parking_lot::Mutex;

/// Clock ticks per second of `/proc/<pid>/stat` times. nats-server assumes
/// 100 as well; it is the value on every mainstream Linux configuration.
const TICKS_PER_SEC: f64 = 100.0;

/// `(utime + stime, starttime)` in clock ticks, from `/proc/self/stat`.
fn stat_ticks() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_stat(&text)
}

/// Parse the fields after `(comm)`, which may itself contain spaces.
fn parse_stat(text: &str) -> Option<(u64, u64)> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state): utime is field 14, stime 15, starttime 22.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    let start: u64 = f.get(19)?.parse().ok()?;
    Some((utime + stime, start))
}

/// Total CPU time used by the process, in seconds.
pub fn cpu_seconds() -> f64 {
    stat_ticks().map_or(0.0, |(t, _)| t as f64 / TICKS_PER_SEC)
}

/// Resident set size in bytes (`VmRSS` of `/proc/self/status`).
pub fn rss_bytes() -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    parse_vmrss(&text).unwrap_or(0)
}

fn parse_vmrss(text: &str) -> Option<u64> {
    kib_field(text, "VmRSS:")
}

/// The host's memory and what is still available to new work
/// (`MemTotal` and `MemAvailable` of `/proc/meminfo`), for alerts that
/// compare the broker's size with the machine's.
pub fn system_memory() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    Some((
        kib_field(&text, "MemTotal:")?,
        kib_field(&text, "MemAvailable:")?,
    ))
}

/// The value of a `Name:   N kB` line, in bytes.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Seconds since boot (`/proc/uptime`).
fn boot_uptime() -> Option<f64> {
    std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU usage in percent of one core over the last sampling window, like
/// nats-server's `pse` package (which resamples every second).
pub struct CpuSampler {
    state: Mutex<CpuState>,
}

struct CpuState {
    last_ticks: u64,
    last_at: Instant,
    percent: f64,
}

impl Default for CpuSampler {
    fn default() -> Self {
        Self::new()
    }
}

impl CpuSampler {
    /// Starts with the average since the process started.
    pub fn new() -> Self {
        let (ticks, start) = stat_ticks().unwrap_or((0, 0));
        let mut percent = 0.0;
        if let Some(up) = boot_uptime() {
            let alive = up - start as f64 / TICKS_PER_SEC;
            if alive > 0.0 {
                percent = round_percent(ticks as f64 / TICKS_PER_SEC / alive * 100.0);
            }
        }
        CpuSampler {
            state: Mutex::new(CpuState {
                last_ticks: ticks,
                last_at: Instant::now(),
                percent,
            }),
        }
    }

    /// Take a sample; the percentage covers the time since the previous one.
    pub fn sample(&self) {
        let Some((ticks, _)) = stat_ticks() else {
            return;
        };
        let now = Instant::now();
        let mut st = self.state.lock();
        let secs = now.duration_since(st.last_at).as_secs_f64();
        if secs >= 0.5 {
            let used = ticks.saturating_sub(st.last_ticks) as f64 / TICKS_PER_SEC;
            st.percent = round_percent(used / secs * 100.0);
            st.last_ticks = ticks;
            st.last_at = now;
        }
    }

    pub fn percent(&self) -> f64 {
        self.state.lock().percent
    }
}

/// One decimal, as nats-server reports it.
fn round_percent(p: f64) -> f64 {
    (p * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    #[test]
    fn meminfo_fields_are_bytes() {
        let text = "MemTotal:        8000000 kB\nMemFree:  1 kB\nMemAvailable:    2000000 kB\n";
        assert_eq!(kib_field(text, "MemTotal:"), Some(8_192_000_000));
        assert_eq!(kib_field(text, "MemAvailable:"), Some(2_048_000_000));
        assert_eq!(kib_field(text, "SwapTotal:"), None);
        let (total, available) = system_memory().expect("/proc/meminfo");
        assert!(available <= total && total > 0);
    }

    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_comm() {
        let line = "123 (tribune broker) S 1 123 123 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 4242 1000000 500 18446744073709551615";
        assert_eq!(parse_stat(line), Some((300, 4242)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn parses_vmrss() {
        assert_eq!(
            parse_vmrss("Name:\tx\nVmRSS:\t  1234 kB\n"),
            Some(1234 * 1024)
        );
        assert_eq!(parse_vmrss("Name:\tx\n"), None);
    }

    #[test]
    fn live_readings_are_sane() {
        if std::path::Path::new("/proc/self/stat").exists() {
            assert!(rss_bytes() > 0);
            let s = CpuSampler::new();
            s.sample();
            assert!(s.percent() >= 0.0);
        }
    }
}
