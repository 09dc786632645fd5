//! Values formatted the way nats-server's Go code formats them, so that the
//! monitoring JSON is byte-compatible where it can be: `time.Time` as
//! RFC 3339 with trimmed nanoseconds, `time.Duration.String()`, nats-server's
//! own uptime style, Go's float encoding, Go's HTML-safe JSON string escaping,
//! and the `strconv` error texts that end up in 400 responses.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Serialize, Serializer};

/// A wall-clock time that serializes like Go's `time.Time` (RFC 3339 with
/// nanoseconds, trailing zeros trimmed), always in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GoTime(pub SystemTime);

impl GoTime {
    pub fn unix_nanos(&self) -> i128 {
        match self.0.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_nanos() as i128,
            Err(e) => -(e.duration().as_nanos() as i128),
        }
    }

    pub fn from_unix_nanos(n: u64) -> GoTime {
        GoTime(UNIX_EPOCH + Duration::from_nanos(n))
    }

    /// Go's zero `time.Time` (`0001-01-01T00:00:00Z`), which nats-server
    /// shows for "never".
    pub fn zero() -> GoTime {
        GoTime(
            UNIX_EPOCH
                .checked_sub(Duration::from_secs(62_135_596_800))
                .unwrap_or(UNIX_EPOCH),
        )
    }
}

impl From<SystemTime> for GoTime {
    fn from(t: SystemTime) -> Self {
        GoTime(t)
    }
}

impl Serialize for GoTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&rfc3339_nano(self.0))
    }
}

/// `2006-01-02T15:04:05.999999999Z`, as Go's `time.RFC3339Nano` in UTC.
pub fn rfc3339_nano(t: SystemTime) -> String {
    let dt: chrono::DateTime<chrono::Utc> = t.into();
    let mut out = dt.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = chrono::Timelike::nanosecond(&dt) % 1_000_000_000;
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// nats-server's `myUptime`: whole seconds only, as `1y2d3h4m5s`, dropping
/// leading zero units.
pub fn my_uptime(d: Duration) -> String {
    let tsecs = d.as_secs();
    let tmins = tsecs / 60;
    let thrs = tmins / 60;
    let tdays = thrs / 24;
    let tyrs = tdays / 365;
    if tyrs > 0 {
        format!(
            "{tyrs}y{}d{}h{}m{}s",
            tdays % 365,
            thrs % 24,
            tmins % 60,
            tsecs % 60
        )
    } else if tdays > 0 {
        format!("{tdays}d{}h{}m{}s", thrs % 24, tmins % 60, tsecs % 60)
    } else if thrs > 0 {
        format!("{thrs}h{}m{}s", tmins % 60, tsecs % 60)
    } else if tmins > 0 {
        format!("{tmins}m{}s", tsecs % 60)
    } else {
        format!("{tsecs}s")
    }
}

/// Fractional digits of `v` with `prec` decimals, trailing zeros dropped
/// (Go's `fmtFrac`). Returns the fraction (with its dot, or empty) and `v`'s
/// integer part.
fn frac(v: u64, prec: u32) -> (String, u64) {
    let p = 10u64.pow(prec);
    let f = v % p;
    if f == 0 {
        return (String::new(), v / p);
    }
    let digits = format!("{f:0width$}", width = prec as usize);
    (format!(".{}", digits.trim_end_matches('0')), v / p)
}

/// Go's `time.Duration.String()`: `0s`, `392µs`, `1.5ms`, `2m3.5s`, `1h0m0s`.
pub fn go_duration(nanos: u64) -> String {
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        let (f, i) = frac(nanos, 3);
        return format!("{i}{f}µs");
    }
    if nanos < 1_000_000_000 {
        let (f, i) = frac(nanos, 6);
        return format!("{i}{f}ms");
    }
    let (f, secs) = frac(nanos, 9);
    let s = secs % 60;
    let mins = secs / 60;
    if mins == 0 {
        return format!("{s}{f}s");
    }
    let m = mins % 60;
    let h = mins / 60;
    if h == 0 {
        format!("{m}m{s}{f}s")
    } else {
        format!("{h}h{m}m{s}{f}s")
    }
}

/// nats-server's RTT display rounding: microseconds when between 1µs and 1ms.
pub fn rtt_string(nanos: u64) -> String {
    let rtt = if nanos > 1_000 && nanos < 1_000_000 {
        nanos / 1_000 * 1_000
    } else {
        nanos
    };
    go_duration(rtt)
}

/// An `f64` that serializes as Go's `encoding/json` does: whole numbers
/// without a fraction (`2`, not `2.0`).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct GoFloat(pub f64);

impl Serialize for GoFloat {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
            s.serialize_i64(v as i64)
        } else if v.is_finite() {
            s.serialize_f64(v)
        } else {
            // Go refuses to encode these; zero is the least surprising stand-in.
            s.serialize_i64(0)
        }
    }
}

/// Go's `encoding/json` escapes `<`, `>`, `&`, U+2028 and U+2029 inside
/// strings. Those characters can only occur inside JSON strings, so a pass
/// over the encoded text is exact.
pub fn go_json_escape(json: String) -> String {
    if !json.contains(['<', '>', '&', '\u{2028}', '\u{2029}']) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// `json.MarshalIndent(v, "", "  ")`.
pub fn to_json_pretty<T: Serialize>(v: &T) -> String {
    go_json_escape(serde_json::to_string_pretty(v).unwrap_or_else(|_| "{}".to_string()))
}

/// `json.Marshal(v)`.
pub fn to_json<T: Serialize>(v: &T) -> String {
    go_json_escape(serde_json::to_string(v).unwrap_or_else(|_| "{}".to_string()))
}

/// Go's `strconv.Quote` (`%q`), close enough for error messages.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0b}' => out.push_str("\\v"),
            c if (c as u32) < 0x80 && c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `strconv.ParseBool`.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!(
            "strconv.ParseBool: parsing {}: invalid syntax",
            go_quote(s)
        )),
    }
}

/// Go's `strconv.Atoi` on a 64-bit platform.
pub fn atoi(s: &str) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "strconv.Atoi: parsing {}: invalid syntax",
            go_quote(s)
        ));
    }
    s.parse::<i64>()
        .map_err(|_| format!("strconv.Atoi: parsing {}: value out of range", go_quote(s)))
}

/// Go's `strconv.ParseUint(s, 10, 64)`.
pub fn parse_uint64(s: &str) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "strconv.ParseUint: parsing {}: invalid syntax",
            go_quote(s)
        ));
    }
    s.parse::<u64>().map_err(|_| {
        format!(
            "strconv.ParseUint: parsing {}: value out of range",
            go_quote(s)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_time_reads_like_go() {
        assert_eq!(rfc3339_nano(GoTime::zero().0), "0001-01-01T00:00:00Z");
    }

    #[test]
    fn uptime_like_nats_server() {
        assert_eq!(my_uptime(Duration::from_millis(999)), "0s");
        assert_eq!(my_uptime(Duration::from_secs(59)), "59s");
        assert_eq!(my_uptime(Duration::from_secs(60)), "1m0s");
        assert_eq!(my_uptime(Duration::from_secs(3600 + 2)), "1h0m2s");
        assert_eq!(
            my_uptime(Duration::from_secs(86400 + 7200 + 180 + 4)),
            "1d2h3m4s"
        );
        assert_eq!(
            my_uptime(Duration::from_secs(366 * 86400 + 5)),
            "1y1d0h0m5s"
        );
    }

    #[test]
    fn durations_like_go() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(999), "999ns");
        assert_eq!(go_duration(392_000), "392µs");
        assert_eq!(go_duration(1_500), "1.5µs");
        assert_eq!(go_duration(1_500_000), "1.5ms");
        assert_eq!(go_duration(2_000_000_000), "2s");
        assert_eq!(go_duration(123_500_000_000), "2m3.5s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(1_000_000_001), "1.000000001s");
        assert_eq!(rtt_string(392_123), "392µs");
        assert_eq!(rtt_string(1_234_567), "1.234567ms");
    }

    #[test]
    fn times_like_go() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 658_483_000);
        assert_eq!(rfc3339_nano(t), "2023-11-14T22:13:20.658483Z");
        assert_eq!(
            rfc3339_nano(UNIX_EPOCH + Duration::from_secs(1)),
            "1970-01-01T00:00:01Z"
        );
        assert_eq!(
            rfc3339_nano(UNIX_EPOCH + Duration::new(1, 5)),
            "1970-01-01T00:00:01.000000005Z"
        );
    }

    #[test]
    fn floats_like_go() {
        assert_eq!(serde_json::to_string(&GoFloat(2.0)).unwrap(), "2");
        assert_eq!(serde_json::to_string(&GoFloat(0.0)).unwrap(), "0");
        assert_eq!(serde_json::to_string(&GoFloat(0.5)).unwrap(), "0.5");
        assert_eq!(
            serde_json::to_string(&GoFloat(0.16666666666666666)).unwrap(),
            "0.16666666666666666"
        );
    }

    #[test]
    fn json_escapes_html_like_go() {
        assert_eq!(to_json(&"foo.>"), r#""foo.\u003e""#);
        assert_eq!(to_json(&"a<b&c"), r#""a\u003cb\u0026c""#);
        let pretty = to_json_pretty(&serde_json::json!({"a": [1], "b": {}}));
        assert_eq!(pretty, "{\n  \"a\": [\n    1\n  ],\n  \"b\": {}\n}");
    }

    #[test]
    fn strconv_errors() {
        assert_eq!(
            parse_bool("x").unwrap_err(),
            r#"strconv.ParseBool: parsing "x": invalid syntax"#
        );
        assert_eq!(parse_bool("True"), Ok(true));
        assert_eq!(parse_bool("0"), Ok(false));
        assert_eq!(atoi("-3"), Ok(-3));
        assert_eq!(atoi("+3"), Ok(3));
        assert_eq!(
            atoi("x").unwrap_err(),
            r#"strconv.Atoi: parsing "x": invalid syntax"#
        );
        assert_eq!(
            atoi("99999999999999999999").unwrap_err(),
            r#"strconv.Atoi: parsing "99999999999999999999": value out of range"#
        );
        assert_eq!(
            parse_uint64("-1").unwrap_err(),
            r#"strconv.ParseUint: parsing "-1": invalid syntax"#
        );
        assert_eq!(parse_uint64("7"), Ok(7));
        assert_eq!(go_quote("a\"b\u{1}"), r#""a\"b\x01""#);
    }
}
