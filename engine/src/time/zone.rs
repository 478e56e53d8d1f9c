//! The session time zone: which wall clock a query's time functions read.
//!
//! Owns [`Zone`] (UTC, a fixed offset, or a zone of the IANA database, which
//! is compiled in: no system files are read), its parsing from the forms
//! Spark's `spark.sql.session.timeZone` accepts, the offset in force at an
//! instant, and the instant of a local date-time with Spark's rules for
//! daylight-saving gaps and overlaps. Pure functions only.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Offset, TimeZone};
use chrono_tz::{Tz, TZ_VARIANTS};

use crate::suggest::edit_distance;

const US_PER_SEC: i64 = 1_000_000;
const SECS_PER_DAY: i64 = 86_400;

/// The largest offset from UTC a zone may have (±18:00, as in Spark).
const MAX_OFFSET_SECS: i32 = 18 * 3_600;

/// A session time zone (Spark's `spark.sql.session.timeZone`): UTC (the
/// default), a fixed offset such as `+05:30`, or a region of the IANA
/// database such as `Europe/Paris`, whose offset follows its daylight-saving
/// rules.
///
/// Timestamps are instants (µs since the epoch, UTC) in every zone; the
/// zone decides only how they are read as, or built from, a local date and
/// time of day. A local time that does not exist (in a spring-forward gap)
/// moves forward by the gap's length; one that exists twice (in a fall-back
/// overlap) takes the earlier offset, i.e. the first occurrence.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Zone(Kind);

#[derive(Clone, Copy, PartialEq, Eq, Default)]
enum Kind {
    #[default]
    Utc,
    /// Seconds east of UTC, never 0 (that is `Utc`).
    Fixed(i32),
    Named(Tz),
}

/// Names that are UTC itself.
const UTC_NAMES: [&str; 14] = [
    "UTC",
    "Z",
    "GMT",
    "UT",
    "UCT",
    "Zulu",
    "Universal",
    "Greenwich",
    "GMT0",
    "Etc/UTC",
    "Etc/GMT",
    "Etc/UCT",
    "Etc/Universal",
    "Etc/Zulu",
];

/// The three-letter zone names Spark accepts, and what they stand for.
const SHORT_IDS: [(&str, &str); 28] = [
    ("ACT", "Australia/Darwin"),
    ("AET", "Australia/Sydney"),
    ("AGT", "America/Argentina/Buenos_Aires"),
    ("ART", "Africa/Cairo"),
    ("AST", "America/Anchorage"),
    ("BET", "America/Sao_Paulo"),
    ("BST", "Asia/Dhaka"),
    ("CAT", "Africa/Harare"),
    ("CNT", "America/St_Johns"),
    ("CST", "America/Chicago"),
    ("CTT", "Asia/Shanghai"),
    ("EAT", "Africa/Addis_Ababa"),
    ("ECT", "Europe/Paris"),
    ("EST", "-05:00"),
    ("HST", "-10:00"),
    ("IET", "America/Indiana/Indianapolis"),
    ("IST", "Asia/Kolkata"),
    ("JST", "Asia/Tokyo"),
    ("MIT", "Pacific/Apia"),
    ("MST", "-07:00"),
    ("NET", "Asia/Yerevan"),
    ("NST", "Pacific/Auckland"),
    ("PLT", "Asia/Karachi"),
    ("PNT", "America/Phoenix"),
    ("PRT", "America/Puerto_Rico"),
    ("PST", "America/Los_Angeles"),
    ("SST", "Pacific/Guadalcanal"),
    ("VST", "Asia/Ho_Chi_Minh"),
];

impl Zone {
    /// UTC, the default.
    pub const UTC: Zone = Zone(Kind::Utc);

    /// Reads a zone as Spark's `spark.sql.session.timeZone` does: a region
    /// of the IANA database (`America/Los_Angeles`, `Asia/Kolkata`), `UTC`,
    /// `Z` or `GMT`, an offset (`+05:30`, `-08:00`, `+8`, `-0800`, also
    /// after `UTC`/`GMT`: `UTC+01:00`), or one of Java's three-letter names
    /// (`PST`, `IST`, ...). An unknown zone is an error naming it and the
    /// nearest known name.
    pub fn parse(text: &str) -> Result<Zone, String> {
        let t = text.trim();
        if UTC_NAMES.contains(&t) {
            return Ok(Zone::UTC);
        }
        if let Some(offset) = parse_offset(t) {
            return offset.map(Zone::fixed);
        }
        for prefix in ["UTC", "GMT", "UT"] {
            if let Some(rest) = t.strip_prefix(prefix) {
                if rest.starts_with(['+', '-']) {
                    if let Some(offset) = parse_offset(rest) {
                        return offset.map(Zone::fixed);
                    }
                }
            }
        }
        let region = SHORT_IDS
            .iter()
            .find(|(short, _)| *short == t)
            .map_or(t, |(_, long)| long);
        if let Some(offset) = parse_offset(region) {
            return offset.map(Zone::fixed);
        }
        match Tz::from_str(region) {
            Ok(tz) => Ok(Zone(Kind::Named(tz))),
            Err(_) => {
                let mut msg = format!("unknown time zone '{text}'");
                if let Some(near) = nearest_name(t) {
                    msg.push_str(&format!("; did you mean '{near}'?"));
                }
                msg.push_str(
                    " Use a region such as 'Europe/Paris', 'UTC', or an offset such as '+05:30'",
                );
                Err(msg)
            }
        }
    }

    fn fixed(secs: i32) -> Zone {
        if secs == 0 {
            Zone::UTC
        } else {
            Zone(Kind::Fixed(secs))
        }
    }

    /// Whether this is UTC (every offset zero).
    #[inline]
    pub fn is_utc(self) -> bool {
        matches!(self.0, Kind::Utc)
    }

    /// The offset from UTC in force at the instant `utc_us`, in seconds.
    #[inline]
    pub fn offset_secs(self, utc_us: i64) -> i32 {
        match self.0 {
            Kind::Utc => 0,
            Kind::Fixed(s) => s,
            Kind::Named(tz) => named_offset(tz, utc_us.div_euclid(US_PER_SEC)),
        }
    }

    /// The local wall-clock time of the instant `utc_us`, as µs since
    /// 1970-01-01 00:00 local (`None` past the end of the range).
    #[inline]
    pub fn to_local(self, utc_us: i64) -> Option<i64> {
        match self.0 {
            Kind::Utc => Some(utc_us),
            _ => utc_us.checked_add(i64::from(self.offset_secs(utc_us)) * US_PER_SEC),
        }
    }

    /// The instant of the local wall-clock time `local_us` (µs since
    /// 1970-01-01 00:00 local): in a gap, the time moved forward by the
    /// gap's length; in an overlap, the earlier offset.
    #[inline]
    pub fn from_local(self, local_us: i64) -> Option<i64> {
        self.from_local_keeping(local_us, None)
    }

    /// As [`Zone::from_local`], but in an overlap the offset `keep` (in
    /// seconds) when it is one of the two (Spark's rule when a zoned
    /// date-time is truncated or moved by days or months).
    pub fn from_local_keeping(self, local_us: i64, keep: Option<i32>) -> Option<i64> {
        let tz = match self.0 {
            Kind::Utc => return Some(local_us),
            Kind::Fixed(s) => return local_us.checked_sub(i64::from(s) * US_PER_SEC),
            Kind::Named(tz) => tz,
        };
        let secs = local_us.div_euclid(US_PER_SEC);
        // At most one transition lies within a day of any time: the offsets
        // a day before and a day after are the two candidates.
        let before = named_offset(tz, secs.saturating_sub(SECS_PER_DAY));
        let after = named_offset(tz, secs.saturating_add(SECS_PER_DAY));
        let valid = |o: i32| named_offset(tz, secs - i64::from(o)) == o;
        let offset = if before == after {
            before
        } else {
            match (valid(before), valid(after)) {
                // An overlap: both exist.
                (true, true) => match keep {
                    Some(k) if k == after => after,
                    _ => before,
                },
                (true, false) => before,
                (false, true) => after,
                // A gap: read with the offset before it, which moves the
                // time forward by the gap's length.
                (false, false) => before,
            }
        };
        local_us.checked_sub(i64::from(offset) * US_PER_SEC)
    }
}

/// The offset of `tz` at `secs` since the epoch; beyond the calendar's
/// range, the offset at its end.
#[inline]
fn named_offset(tz: Tz, secs: i64) -> i32 {
    const MIN: i64 = -8_210_298_412_800; // -260000-01-01
    const MAX: i64 = 8_140_852_800_000; // +260000-01-01
    let t = DateTime::from_timestamp(secs.clamp(MIN, MAX), 0).unwrap_or_default();
    tz.offset_from_utc_datetime(&t.naive_utc())
        .fix()
        .local_minus_utc()
}

/// `±H`, `±HH`, `±HH:MM`, `±HHMM`, `±HH:MM:SS`: `None` when `text` is not
/// shaped like an offset, `Some(Err)` when it is but is out of range.
fn parse_offset(text: &str) -> Option<Result<i32, String>> {
    let sign = match text.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let body = &text[1..];
    let num = |s: &str| -> Option<i32> {
        (!s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let parts: Vec<&str> = if body.contains(':') {
        body.split(':').collect()
    } else if body.len() == 4 || body.len() == 6 {
        (0..body.len())
            .step_by(2)
            .map(|i| &body[i..i + 2])
            .collect()
    } else {
        vec![body]
    };
    if parts.len() > 3 {
        return None;
    }
    let mut secs = 0;
    for (p, unit) in parts.iter().zip([3_600, 60, 1]) {
        let n = num(p)?;
        if unit != 3_600 && (p.len() != 2 || n > 59) {
            return Some(Err(format!("time zone offset '{text}' is out of range")));
        }
        secs += n * unit;
    }
    if secs > MAX_OFFSET_SECS {
        return Some(Err(format!(
            "time zone offset '{text}' is out of range (at most ±18:00)"
        )));
    }
    Some(Ok(sign * secs))
}

/// The known zone name nearest to `text` (case first, then edit distance).
fn nearest_name(text: &str) -> Option<&'static str> {
    let names = TZ_VARIANTS
        .iter()
        .map(|tz| tz.name())
        .chain(UTC_NAMES.iter().copied())
        .chain(SHORT_IDS.iter().map(|(s, _)| *s));
    let lower = text.to_ascii_lowercase();
    names
        .map(|n| (edit_distance(&lower, &n.to_ascii_lowercase()), n))
        .min_by_key(|(d, _)| *d)
        .filter(|(d, _)| *d <= text.len().div_ceil(2))
        .map(|(_, n)| n)
}

impl FromStr for Zone {
    type Err = String;

    fn from_str(s: &str) -> Result<Zone, String> {
        Zone::parse(s)
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Kind::Utc => f.write_str("UTC"),
            Kind::Fixed(s) => {
                let sign = if s < 0 { '-' } else { '+' };
                let a = s.unsigned_abs();
                write!(f, "{sign}{:02}:{:02}", a / 3_600, a / 60 % 60)?;
                if a % 60 != 0 {
                    write!(f, ":{:02}", a % 60)?;
                }
                Ok(())
            }
            Kind::Named(tz) => f.write_str(tz.name()),
        }
    }
}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Zone({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600 * US_PER_SEC;

    fn us(text: &str) -> i64 {
        crate::time::parse_timestamp_us(text).unwrap()
    }

    #[test]
    fn zones_parse_in_spark_forms_and_unknown_ones_are_named() {
        assert!(Zone::parse("UTC").unwrap().is_utc());
        assert!(Zone::parse("Z").unwrap().is_utc());
        assert!(Zone::parse("+00:00").unwrap().is_utc());
        assert_eq!(Zone::parse("+05:30").unwrap().to_string(), "+05:30");
        assert_eq!(Zone::parse("-08:00").unwrap().offset_secs(0), -8 * 3_600);
        assert_eq!(Zone::parse("+8").unwrap().to_string(), "+08:00");
        assert_eq!(Zone::parse("-0330").unwrap().to_string(), "-03:30");
        assert_eq!(Zone::parse("UTC+01:00").unwrap().to_string(), "+01:00");
        assert_eq!(Zone::parse("GMT-5").unwrap().to_string(), "-05:00");
        assert_eq!(
            Zone::parse("Europe/Paris").unwrap().to_string(),
            "Europe/Paris"
        );
        assert_eq!(
            Zone::parse("PST").unwrap().to_string(),
            "America/Los_Angeles"
        );
        assert_eq!(Zone::parse("EST").unwrap().to_string(), "-05:00");
        let e = Zone::parse("Europe/Pariss").unwrap_err();
        assert!(
            e.contains("unknown time zone 'Europe/Pariss'") && e.contains("'Europe/Paris'"),
            "{e}"
        );
        let e = Zone::parse("america/los_angeles").unwrap_err();
        assert!(e.contains("'America/Los_Angeles'"), "{e}");
        assert!(Zone::parse("+19:00").unwrap_err().contains("out of range"));
        assert!(Zone::parse("+05:75").unwrap_err().contains("out of range"));
        assert!(Zone::parse("Mars/Olympus_Mons").is_err());
        assert!(Zone::parse("").is_err());
    }

    #[test]
    fn local_times_follow_daylight_saving_like_spark() {
        let la = Zone::parse("America/Los_Angeles").unwrap();
        // Winter -08:00, summer -07:00.
        assert_eq!(la.offset_secs(us("2024-01-15 12:00:00")), -8 * 3_600);
        assert_eq!(la.offset_secs(us("2024-07-15 12:00:00")), -7 * 3_600);
        assert_eq!(
            la.to_local(us("2024-07-15 12:00:00")),
            Some(us("2024-07-15 05:00:00"))
        );
        // 2024-03-10 02:30 does not exist: it is 03:30 PDT (10:30 UTC).
        assert_eq!(
            la.from_local(us("2024-03-10 02:30:00")),
            Some(us("2024-03-10 10:30:00"))
        );
        assert_eq!(
            la.from_local(us("2024-03-10 01:59:00")),
            Some(us("2024-03-10 09:59:00"))
        );
        assert_eq!(
            la.from_local(us("2024-03-10 03:00:00")),
            Some(us("2024-03-10 10:00:00"))
        );
        // 2024-11-03 01:30 happens twice: the first (PDT, 08:30 UTC) wins,
        // unless the second offset is asked to be kept.
        assert_eq!(
            la.from_local(us("2024-11-03 01:30:00")),
            Some(us("2024-11-03 08:30:00"))
        );
        assert_eq!(
            la.from_local_keeping(us("2024-11-03 01:30:00"), Some(-8 * 3_600)),
            Some(us("2024-11-03 09:30:00"))
        );
        let kolkata = Zone::parse("Asia/Kolkata").unwrap();
        assert_eq!(kolkata.offset_secs(0), 19_800);
        assert_eq!(kolkata.from_local(5 * H + H / 2), Some(0));
        // The ends of the range do not overflow.
        assert_eq!(la.to_local(i64::MIN), None);
        assert!(la.to_local(i64::MAX - 9 * H).is_some());
        assert_eq!(la.from_local(i64::MAX), None);
    }
}
