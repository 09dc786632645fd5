//! A user JWT's connect-time windows (`times`, read in `times_location`),
//! decided as nats-server decides them: the user may connect while the
//! clock is inside a window, and the connection ends with the window.

use std::time::Duration;

use chrono::{NaiveDateTime, NaiveTime, TimeDelta, Utc};
use tribune_auth::jwt::TimeRange;

/// Why a user may not connect now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outside {
    /// The clock is in none of the windows.
    Now,
    /// A window or the time zone cannot be read; refused rather than guessed.
    Unreadable(String),
}

/// May the user connect now? `Ok(None)`: no windows, always. `Ok(Some(d))`:
/// for `d` more (the longest of the windows it is in).
pub fn window(times: &[TimeRange], locale: &str) -> Result<Option<Duration>, Outside> {
    if times.is_empty() {
        return Ok(None);
    }
    let now = match locale {
        "" | "Local" => chrono::Local::now().naive_local(),
        "UTC" | "Etc/UTC" | "Etc/GMT" | "GMT" => Utc::now().naive_utc(),
        // Without a time-zone database Tribune cannot read other zones.
        other => {
            return Err(Outside::Unreadable(format!(
                "time zone {other:?} is not supported by tribune-broker yet"
            )))
        }
    };
    window_at(times, now).map(Some)
}

/// [`window`] at a given wall-clock time.
pub fn window_at(times: &[TimeRange], now: NaiveDateTime) -> Result<Duration, Outside> {
    let parse = |s: &str| {
        NaiveTime::parse_from_str(s, "%H:%M:%S")
            .map_err(|_| Outside::Unreadable(format!("time {s:?} is not HH:MM:SS")))
    };
    let mut best: Option<TimeDelta> = None;
    for r in times {
        let date = now.date();
        let start = date.and_time(parse(&r.start)?);
        let mut end = date.and_time(parse(&r.end)?);
        let left = if start < now && now < end {
            Some(end - now)
        } else if start > end {
            // The window crosses midnight: after it, or before it.
            if now < end {
                Some(end - now)
            } else {
                end += TimeDelta::days(1);
                (start < now && now < end).then(|| end - now)
            }
        } else {
            None
        };
        if let Some(left) = left {
            best = Some(best.map_or(left, |b| b.max(left)));
        }
    }
    best.and_then(|d| d.to_std().ok()).ok_or(Outside::Now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: &str, end: &str) -> TimeRange {
        TimeRange {
            start: start.into(),
            end: end.into(),
        }
    }

    fn at(hms: &str) -> NaiveDateTime {
        chrono::NaiveDate::from_ymd_opt(2026, 3, 1)
            .unwrap()
            .and_time(NaiveTime::parse_from_str(hms, "%H:%M:%S").unwrap())
    }

    #[test]
    fn inside_and_outside_a_day_window() {
        let w = [r("11:00:00", "22:00:00")];
        assert_eq!(
            window_at(&w, at("13:00:00")),
            Ok(Duration::from_secs(9 * 3600))
        );
        assert_eq!(window_at(&w, at("23:00:00")), Err(Outside::Now));
        assert_eq!(window_at(&w, at("10:59:59")), Err(Outside::Now));
    }

    #[test]
    fn windows_crossing_midnight() {
        let w = [r("22:00:00", "06:00:00")];
        assert_eq!(window_at(&w, at("05:00:00")), Ok(Duration::from_secs(3600)));
        assert_eq!(
            window_at(&w, at("23:30:00")),
            Ok(Duration::from_secs(6 * 3600 + 1800))
        );
        assert_eq!(window_at(&w, at("12:00:00")), Err(Outside::Now));
    }

    #[test]
    fn the_longest_window_wins_and_bad_input_is_refused() {
        let w = [r("12:00:00", "13:00:00"), r("10:00:00", "20:00:00")];
        assert_eq!(
            window_at(&w, at("12:30:00")),
            Ok(Duration::from_secs(7 * 3600 + 1800))
        );
        assert!(matches!(
            window_at(&[r("noon", "13:00:00")], at("12:30:00")),
            Err(Outside::Unreadable(_))
        ));
        assert_eq!(window(&[], "Mars/Olympus"), Ok(None));
        assert!(matches!(
            window(&w, "Mars/Olympus"),
            Err(Outside::Unreadable(_))
        ));
    }
}
