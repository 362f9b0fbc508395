//! Protocol time: a monotonic instant measured from an arbitrary origin, in
//! whole microseconds (keepalived's timer resolution). Cores take it as a
//! parameter and never read a clock; the daemon maps a real monotonic clock
//! onto it and the simulator advances it virtually.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::{Add, Sub};
use std::str::FromStr;
use std::time::Duration;

/// A point in time, as microseconds since the driver's origin.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Instant(u64);

impl Instant {
    /// The origin.
    pub const ZERO: Instant = Instant(0);

    pub const fn from_micros(micros: u64) -> Self {
        Self(micros)
    }

    /// The instant `since` after the origin (saturating at the far future).
    pub fn from_duration(since: Duration) -> Self {
        Self(u64::try_from(since.as_micros()).unwrap_or(u64::MAX))
    }

    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Time elapsed since `earlier`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    /// Saturates: timers far in the future stay far in the future.
    fn add(self, rhs: Duration) -> Instant {
        let micros = u64::try_from(rhs.as_micros()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(micros))
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    /// Saturates at the origin.
    fn sub(self, rhs: Duration) -> Instant {
        let micros = u64::try_from(rhs.as_micros()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_sub(micros))
    }
}

/// Renders as seconds with six decimals (`3.609375s`): exact at
/// microsecond resolution, and stable for snapshots.
impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = format_micros(self.0);
        f.pad(&text)
    }
}

/// Formats a duration the way [`Instant`] renders (`0.609375s`).
pub fn format_duration(d: Duration) -> String {
    format_micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn format_micros(micros: u64) -> String {
    format!("{}.{:06}s", micros / 1_000_000, micros % 1_000_000)
}

/// A duration written in scenario and config files: a decimal number with a
/// unit, `s`, `ms` or `us` (`"3.5s"`, `"100ms"`, `"0s"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(pub Duration);

/// A duration text that is not `<decimal><unit>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad duration {text:?}: expected a number with a unit s, ms or us (e.g. \"1.5s\")")]
pub struct SpanError {
    pub text: String,
}

impl FromStr for Span {
    type Err = SpanError;
    fn from_str(text: &str) -> Result<Self, SpanError> {
        let err = || SpanError {
            text: text.to_owned(),
        };
        let trimmed = text.trim();
        let (number, micros_per_unit) = if let Some(n) = trimmed.strip_suffix("us") {
            (n, 1u64)
        } else if let Some(n) = trimmed.strip_suffix("ms") {
            (n, 1_000)
        } else if let Some(n) = trimmed.strip_suffix('s') {
            (n, 1_000_000)
        } else {
            return Err(err());
        };
        let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && frac.is_empty() {
            return Err(err());
        }
        let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if !digits_ok(whole) || !digits_ok(frac) {
            return Err(err());
        }
        let whole: u64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| err())?
        };
        let mut micros = whole.checked_mul(micros_per_unit).ok_or_else(err)?;
        // Fractional digits below a microsecond are refused, not rounded.
        let mut scale = micros_per_unit;
        for digit in frac.bytes() {
            if scale == 1 {
                return Err(err());
            }
            scale /= 10;
            micros = micros
                .checked_add(u64::from(digit - b'0') * scale)
                .ok_or_else(err)?;
        }
        Ok(Span(Duration::from_micros(micros)))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instant_renders_with_microseconds() {
        assert_eq!(Instant::from_micros(3_609_375).to_string(), "3.609375s");
        assert_eq!(format!("{:>11}", Instant::ZERO), "  0.000000s");
    }

    #[test]
    fn arithmetic_saturates() {
        let t = Instant::from_micros(5);
        assert_eq!(t - Duration::from_micros(9), Instant::ZERO);
        assert_eq!(t.saturating_since(Instant::from_micros(9)), Duration::ZERO);
        assert_eq!(t + Duration::from_millis(1), Instant::from_micros(1_005));
    }

    #[test]
    fn spans_parse() {
        let p = |s: &str| s.parse::<Span>().map(|s| s.0);
        assert_eq!(p("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(p("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(p("0s"), Ok(Duration::ZERO));
        assert_eq!(p("0.609375s"), Ok(Duration::from_micros(609_375)));
        assert_eq!(p("7us"), Ok(Duration::from_micros(7)));
        for bad in ["", "s", "1", "1.5", "-1s", "1.0000001s", "1.5us", "x ms"] {
            assert!(p(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
