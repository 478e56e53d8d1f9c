//! Text forms of times and durations, as Spark users write them.
//!
//! Owns parsing of interval strings (`'10 minutes'`, `'1 hour'`), timestamp
//! and date formatting and parsing (in UTC, or as local time in a session
//! [`Zone`]), the session zone itself (`zone`), and the shortest round-trip
//! text of a double. Pure functions only.

use std::fmt;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, Utc};

mod zone;

pub use zone::Zone;

const US_PER_SEC: i64 = 1_000_000;

/// Parses an interval such as `10 minutes`, `1 hour`, `1 day`, `500 ms`,
/// `2 hours 30 minutes` or `interval 5 seconds` into microseconds.
pub fn parse_duration_us(text: &str) -> Result<i64, String> {
    let trimmed = text.trim();
    let body = trimmed
        .strip_prefix("interval ")
        .or_else(|| trimmed.strip_prefix("INTERVAL "))
        .unwrap_or(trimmed);
    let tokens: Vec<&str> = body.split_whitespace().collect();
    if tokens.is_empty() {
        return Err(format!("empty interval '{text}'"));
    }
    let mut total: i64 = 0;
    let mut i = 0;
    while i < tokens.len() {
        // Accept both "10 minutes" and "10minutes"/"10m".
        let (num_text, unit_text) = match tokens[i].find(|c: char| c.is_ascii_alphabetic()) {
            Some(pos) if pos > 0 => (&tokens[i][..pos], &tokens[i][pos..]),
            _ => {
                let unit = tokens.get(i + 1).copied().ok_or_else(|| {
                    format!("interval '{text}' is missing a unit after '{}'", tokens[i])
                })?;
                i += 1;
                (tokens[i - 1], unit)
            }
        };
        let amount: f64 = num_text
            .parse()
            .map_err(|_| format!("'{num_text}' in interval '{text}' is not a number"))?;
        let unit_us = unit_us(unit_text).ok_or_else(|| {
            format!(
                "unknown unit '{unit_text}' in interval '{text}' \
                 (use microseconds, milliseconds, seconds, minutes, hours, days or weeks)"
            )
        })?;
        total += (amount * unit_us as f64).round() as i64;
        i += 1;
    }
    if total < 0 {
        return Err(format!("interval '{text}' is negative"));
    }
    Ok(total)
}

fn unit_us(unit: &str) -> Option<i64> {
    let u = unit.to_ascii_lowercase();
    Some(match u.as_str() {
        "us" | "microsecond" | "microseconds" => 1,
        "ms" | "millisecond" | "milliseconds" => 1_000,
        "s" | "sec" | "secs" | "second" | "seconds" => US_PER_SEC,
        "m" | "min" | "mins" | "minute" | "minutes" => 60 * US_PER_SEC,
        "h" | "hour" | "hours" => 3600 * US_PER_SEC,
        "d" | "day" | "days" => 86_400 * US_PER_SEC,
        "w" | "week" | "weeks" => 7 * 86_400 * US_PER_SEC,
        _ => return None,
    })
}

/// Formats µs since the epoch as `YYYY-MM-DD HH:MM:SS` (UTC), with a
/// fractional part only when it is not zero.
pub fn format_timestamp_us(us: i64) -> String {
    match DateTime::<Utc>::from_timestamp_micros(us) {
        Some(t) if us.rem_euclid(US_PER_SEC) == 0 => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        Some(t) => {
            let s = t.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
            s.trim_end_matches('0').to_string()
        }
        None => format!("{us}us"),
    }
}

/// Formats µs since the epoch as local text in `zone`, in the form of
/// [`format_timestamp_us`].
pub fn format_timestamp_in(us: i64, zone: Zone) -> String {
    match zone.to_local(us) {
        Some(local) => format_timestamp_us(local),
        None => format!("{us}us"),
    }
}

/// Formats µs since the epoch as ISO 8601 with milliseconds (`2024-01-01T00:00:00.000Z`),
/// the form Spark's progress reports use.
pub fn format_iso_ms(us: i64) -> String {
    match DateTime::<Utc>::from_timestamp_micros(us) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        None => format!("{us}us"),
    }
}

/// Formats days since the epoch as `YYYY-MM-DD`.
pub fn format_date(days: i32) -> String {
    i32::try_from(i64::from(days) + 719_163)
        .ok()
        .and_then(NaiveDate::from_num_days_from_ce_opt)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| format!("{days}d"))
}

/// Parses a timestamp string (`yyyy-MM-dd HH:mm:ss[.fff]`, ISO 8601 with `T`
/// and an optional `Z` or offset, or a bare date) into µs since the epoch, UTC.
pub fn parse_timestamp_us(text: &str) -> Option<i64> {
    parse_timestamp_in(text, Zone::UTC)
}

/// Parses a timestamp string as [`parse_timestamp_us`] does, reading a
/// string without a zone as local time in `zone` (one with `Z` or an offset
/// keeps it).
pub fn parse_timestamp_in(text: &str, zone: Zone) -> Option<i64> {
    let s = text.trim();
    let parsed = match parse_plain_timestamp_us(s.as_bytes()) {
        Some(local) => Local::Wall(local),
        None => parse_timestamp_general(s)?,
    };
    match parsed {
        Local::Instant(us) => Some(us),
        Local::Wall(local) => zone.from_local(local),
    }
}

/// A parsed time: an instant (the text had an offset), or a wall-clock time
/// (µs since 1970-01-01 00:00 in some zone).
#[derive(Debug, PartialEq, Eq)]
enum Local {
    Instant(i64),
    Wall(i64),
}

/// The general parser behind [`parse_timestamp_in`]: RFC 3339, then the
/// zone-less forms, then a bare date.
fn parse_timestamp_general(s: &str) -> Option<Local> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(Local::Instant(t.timestamp_micros()));
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(Local::Wall(t.and_utc().timestamp_micros()));
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| Local::Wall(t.and_utc().timestamp_micros()))
}

/// The value of `b`, all ASCII digits, as a number.
#[inline]
fn digits(b: &[u8]) -> Option<u32> {
    let mut n = 0u32;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + (c - b'0') as u32;
    }
    Some(n)
}

/// Days since 1970-01-01 of a proleptic Gregorian date, `None` when the
/// date does not exist.
#[inline]
fn days_from_civil(y: i64, m: u32, d: u32) -> Option<i64> {
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&m) || d == 0 || d > month_days[m as usize - 1] {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// The common forms `yyyy-MM-dd`, `yyyy-MM-dd HH:mm[:ss[.f]]` (a `T` may
/// stand for the space) without a zone, parsed without the general parser;
/// `None` for anything else, which the general parser then reads. Values
/// are the same as the general parser's.
#[inline]
fn parse_plain_timestamp_us(b: &[u8]) -> Option<i64> {
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let days = days_from_civil(
        digits(&b[0..4])? as i64,
        digits(&b[5..7])?,
        digits(&b[8..10])?,
    )?;
    let mut secs = 0i64;
    let mut frac_us = 0i64;
    if b.len() > 10 {
        if !(b[10] == b' ' || b[10] == b'T') || b.len() < 16 || b[13] != b':' {
            return None;
        }
        let (h, mi) = (digits(&b[11..13])?, digits(&b[14..16])?);
        let mut sec = 0;
        let mut rest = &b[16..];
        if !rest.is_empty() {
            if rest.len() < 3 || rest[0] != b':' {
                return None;
            }
            sec = digits(&rest[1..3])?;
            rest = &rest[3..];
            if !rest.is_empty() {
                let f = rest.strip_prefix(b".")?;
                if f.is_empty() || f.len() > 9 {
                    return None;
                }
                let n = digits(f)? as i64;
                let mut us = n;
                for _ in f.len()..6 {
                    us *= 10;
                }
                for _ in 6..f.len() {
                    us /= 10;
                }
                frac_us = us;
            }
        }
        if h > 23 || mi > 59 || sec > 59 {
            return None;
        }
        secs = (h * 3600 + mi * 60 + sec) as i64;
    }
    Some((days * 86_400 + secs) * 1_000_000 + frac_us)
}

/// Parses a date string `yyyy-MM-dd` into days since the epoch.
pub fn parse_date(text: &str) -> Option<i32> {
    let b = text.trim().as_bytes();
    if b.len() == 10 && b[4] == b'-' && b[7] == b'-' {
        if let (Some(y), Some(m), Some(d)) = (digits(&b[0..4]), digits(&b[5..7]), digits(&b[8..10]))
        {
            if let Some(days) = days_from_civil(y as i64, m, d) {
                return i32::try_from(days).ok();
            }
        }
    }
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .ok()
        .map(|d| d.num_days_from_ce() - 719_163)
}

use chrono::Datelike;

/// Writes a double the way Spark prints it: shortest round-trip digits,
/// always with a decimal point (`1.0`, `0.1`, `1.0E20`), `NaN`, `Infinity`.
pub fn write_double(f: &mut impl fmt::Write, v: f64) -> fmt::Result {
    if v.is_nan() {
        return f.write_str("NaN");
    }
    if v.is_infinite() {
        return f.write_str(if v > 0.0 { "Infinity" } else { "-Infinity" });
    }
    let text = format!("{v:?}");
    match text.find('e') {
        Some(pos) => {
            let (mantissa, exp) = text.split_at(pos);
            if mantissa.contains('.') {
                write!(f, "{mantissa}E{}", &exp[1..])
            } else {
                write!(f, "{mantissa}.0E{}", &exp[1..])
            }
        }
        None => f.write_str(&text),
    }
}

/// Translates a Spark/Java datetime pattern (`yyyy-MM-dd HH:mm:ss`) into the
/// equivalent `strftime`-style pattern.
pub fn spark_pattern_to_chrono(pattern: &str) -> Result<String, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // Quoted literal text; '' is a single quote.
            let mut j = i + 1;
            while j < chars.len() && chars[j] != '\'' {
                push_literal(&mut out, chars[j]);
                j += 1;
            }
            if j == i + 1 {
                out.push('\'');
            }
            i = j + 1;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            push_literal(&mut out, c);
            i += 1;
            continue;
        }
        let mut n = 1;
        while i + n < chars.len() && chars[i + n] == c {
            n += 1;
        }
        let spec = match (c, n) {
            ('y', 2) => "%y",
            ('y', _) => "%Y",
            ('M', 1) => "%-m",
            ('M', 2) => "%m",
            ('M', 3) => "%b",
            ('M', _) => "%B",
            ('d', 1) => "%-d",
            ('d', _) => "%d",
            ('D', _) => "%j",
            ('H', 1) => "%-H",
            ('H', _) => "%H",
            ('h', 1) => "%-I",
            ('h', _) => "%I",
            ('m', 1) => "%-M",
            ('m', _) => "%M",
            ('s', 1) => "%-S",
            ('s', _) => "%S",
            ('S', 1) => "%1f",
            ('S', 2) => "%2f",
            ('S', 3) => "%3f",
            ('S', _) => "%6f",
            ('a', _) => "%p",
            ('E', 1..=3) => "%a",
            ('E', _) => "%A",
            ('Z', _) | ('X', _) | ('x', _) => "%z",
            _ => {
                return Err(format!(
                    "unsupported letter '{c}' in datetime pattern '{pattern}'"
                ))
            }
        };
        out.push_str(spec);
        i += n;
    }
    Ok(out)
}

fn push_literal(out: &mut String, c: char) {
    if c == '%' {
        out.push_str("%%");
    } else {
        out.push(c);
    }
}

/// Parses a timestamp with a pattern made by [`spark_pattern_to_chrono`]
/// (a pattern without a time of day parses as midnight), UTC.
pub fn parse_timestamp_with(text: &str, chrono_pattern: &str) -> Option<i64> {
    parse_timestamp_with_in(text, chrono_pattern, Zone::UTC)
}

/// [`parse_timestamp_with`] reading a time without an offset as local time
/// in `zone`.
pub fn parse_timestamp_with_in(text: &str, chrono_pattern: &str, zone: Zone) -> Option<i64> {
    use chrono::format::{parse, Parsed, StrftimeItems};
    let mut p = Parsed::new();
    parse(&mut p, text.trim(), StrftimeItems::new(chrono_pattern)).ok()?;
    // Fields the pattern leaves out are zero, as in Spark (`HH` alone is a
    // whole hour; `hh` without `a` is before noon).
    if p.hour_mod_12().is_none() {
        p.set_hour(0).ok()?;
    } else if p.hour_div_12().is_none() {
        p.set_ampm(false).ok()?;
    }
    if p.minute().is_none() {
        p.set_minute(0).ok()?;
    }
    if p.second().is_none() {
        p.set_second(0).ok()?;
    }
    let local = p
        .to_naive_datetime_with_offset(0)
        .ok()?
        .and_utc()
        .timestamp_micros();
    match p.offset() {
        Some(offset) => local.checked_sub(i64::from(offset) * US_PER_SEC),
        None => zone.from_local(local),
    }
}

/// Formats µs since the epoch with a pattern made by [`spark_pattern_to_chrono`].
pub fn format_timestamp_with(us: i64, chrono_pattern: &str) -> Option<String> {
    format_timestamp_with_in(us, chrono_pattern, Zone::UTC)
}

/// [`format_timestamp_with`] as local time in `zone` (an offset in the
/// pattern is the zone's at that instant).
pub fn format_timestamp_with_in(us: i64, chrono_pattern: &str, zone: Zone) -> Option<String> {
    use std::fmt::Write;
    let t = DateTime::<Utc>::from_timestamp_micros(us)?;
    let mut s = String::new();
    if zone.is_utc() {
        write!(s, "{}", t.format(chrono_pattern)).ok()?;
    } else {
        let offset = FixedOffset::east_opt(zone.offset_secs(us))?;
        write!(s, "{}", t.with_timezone(&offset).format(chrono_pattern)).ok()?;
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_path_agrees_with_the_general_parser() {
        let mut cases: Vec<String> = [
            "2010-12-01 08:26:00",
            "2010-12-01T08:26:00",
            "2010-12-01 08:26",
            "2010-12-01",
            "1969-12-31 23:59:59.999999",
            "1900-02-29",
            "2000-02-29 00:00:00",
            "2023-02-29",
            "2011-13-01",
            "2011-12-32 00:00:00",
            "2011-12-01 24:00:00",
            "2011-12-01 23:60:00",
            "2011-12-01 23:59:60",
            "2011-12-01 08:26:00.5",
            "2011-12-01 08:26:00.123456789",
            "2011-12-01 08:26:00.",
            "2011-12-01 8:26:00",
            "0001-01-01 00:00:00",
            "9999-12-31 23:59:59",
            "2011-12-01 08:26:00Z",
            "2011-12-01T08:26:00+01:00",
            "2011-12-01x08:26:00",
            "20111201",
            "2011-1-01",
            "-011-12-01",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for y in [1583, 1970, 1999, 2024, 2100] {
            for m in 1..=12 {
                for d in [1, 28, 29, 30, 31] {
                    cases.push(format!("{y:04}-{m:02}-{d:02} 13:07:59.000042"));
                    cases.push(format!("{y:04}-{m:02}-{d:02}"));
                }
            }
        }
        for c in &cases {
            let general = match parse_timestamp_general(c.trim()) {
                Some(Local::Instant(us) | Local::Wall(us)) => Some(us),
                None => None,
            };
            assert_eq!(parse_timestamp_us(c), general, "{c}");
            let date = NaiveDate::parse_from_str(c, "%Y-%m-%d")
                .ok()
                .map(|d| d.num_days_from_ce() - 719_163);
            assert_eq!(parse_date(c), date, "date {c}");
        }
    }

    #[test]
    fn durations_in_spark_forms() {
        assert_eq!(parse_duration_us("10 minutes").unwrap(), 600_000_000);
        assert_eq!(parse_duration_us("1 hour").unwrap(), 3_600_000_000);
        assert_eq!(parse_duration_us("1 day").unwrap(), 86_400_000_000);
        assert_eq!(parse_duration_us("500 ms").unwrap(), 500_000);
        assert_eq!(
            parse_duration_us("interval 2 hours 30 minutes").unwrap(),
            9_000_000_000
        );
        assert_eq!(parse_duration_us("10s").unwrap(), 10_000_000);
        assert!(parse_duration_us("10 parsecs")
            .unwrap_err()
            .contains("unknown unit"));
        assert!(parse_duration_us("").is_err());
    }

    #[test]
    fn timestamps_round_trip() {
        let us = parse_timestamp_us("2010-12-01 08:26:00").unwrap();
        assert_eq!(format_timestamp_us(us), "2010-12-01 08:26:00");
        assert_eq!(parse_timestamp_us("2010-12-01T08:26:00Z"), Some(us));
        assert_eq!(format_timestamp_us(us + 500_000), "2010-12-01 08:26:00.5");
        assert_eq!(format_timestamp_us(-1_000_000), "1969-12-31 23:59:59");
        assert_eq!(format_date(parse_date("2011-03-04").unwrap()), "2011-03-04");
    }

    #[test]
    fn doubles_print_like_spark() {
        let s = |v: f64| {
            let mut out = String::new();
            write_double(&mut out, v).unwrap();
            out
        };
        assert_eq!(s(1.0), "1.0");
        assert_eq!(s(0.1), "0.1");
        assert_eq!(s(1e20), "1.0E20");
        assert_eq!(s(f64::NAN), "NaN");
    }

    #[test]
    fn spark_patterns_translate() {
        let p = spark_pattern_to_chrono("yyyy-MM-dd HH:mm").unwrap();
        let us = parse_timestamp_us("2011-03-04 05:06:07").unwrap();
        assert_eq!(format_timestamp_with(us, &p).unwrap(), "2011-03-04 05:06");
        let p = spark_pattern_to_chrono("'day' D, EEE").unwrap();
        assert_eq!(format_timestamp_with(us, &p).unwrap(), "day 063, Fri");
        assert!(spark_pattern_to_chrono("yyyy-QQ").is_err());
    }
}
