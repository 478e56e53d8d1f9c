//! Event-time windows: Spark's assignment of a timestamp to windows.
//!
//! With `rem = (ts - start) mod slide` (non-negative) and `last = ts - rem`,
//! the windows of `ts` are `[last - i*slide, last - i*slide + size)` for
//! `i in 0..ceil(size/slide)`, kept when they contain `ts`. Tumbling windows
//! are the case `slide == size`. Pure arithmetic; no allocation. As in
//! Spark, `ts` is the instant (µs since the epoch): windows do not depend on
//! the session time zone, and a day window is a UTC day unless `start` shifts
//! it.

use crate::error::{plan_err, EngineError, Result};
use crate::time::parse_duration_us;

/// The shape of a time window, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowShape {
    /// Window length.
    pub size_us: i64,
    /// Distance between window starts (equals `size_us` for tumbling).
    pub slide_us: i64,
    /// Offset of window starts from the epoch.
    pub start_us: i64,
}

impl WindowShape {
    /// Parses Spark's `window(ts, size[, slide[, start]])` duration strings.
    pub fn parse(size: &str, slide: Option<&str>, start: Option<&str>) -> Result<WindowShape> {
        let parse = |what: &str, text: &str| {
            parse_duration_us(text).map_err(|e| EngineError::Plan(format!("window {what}: {e}")))
        };
        let size_us = parse("duration", size)?;
        let slide_us = match slide {
            Some(s) => parse("slide duration", s)?,
            None => size_us,
        };
        let start_us = match start {
            Some(s) => parse("start time", s)?,
            None => 0,
        };
        Self::new(size_us, slide_us, start_us)
    }

    /// A window shape from microsecond figures, checked as Spark checks them.
    pub fn new(size_us: i64, slide_us: i64, start_us: i64) -> Result<WindowShape> {
        if size_us <= 0 {
            return plan_err("the window duration must be greater than 0");
        }
        if slide_us <= 0 {
            return plan_err("the window slide duration must be greater than 0");
        }
        if slide_us > size_us {
            return plan_err(format!(
                "the window slide duration ({slide_us} µs) must be less than or equal to the window duration ({size_us} µs)"
            ));
        }
        if start_us.abs() >= slide_us {
            return plan_err(format!(
                "the window start time ({start_us} µs) must be less than the slide duration ({slide_us} µs)"
            ));
        }
        Ok(WindowShape {
            size_us,
            slide_us,
            start_us,
        })
    }

    /// The most windows one timestamp can fall into.
    pub fn max_overlapping(&self) -> i64 {
        (self.size_us + self.slide_us - 1) / self.slide_us
    }

    /// The starts of the windows containing `ts_us`, latest first.
    #[inline]
    pub fn assign(&self, ts_us: i64) -> WindowStarts {
        let rem = (ts_us - self.start_us).rem_euclid(self.slide_us);
        WindowStarts {
            ts: ts_us,
            next_start: ts_us - rem,
            remaining: self.max_overlapping(),
            size: self.size_us,
            slide: self.slide_us,
        }
    }
}

/// Iterator over the window starts of one timestamp (see [`WindowShape::assign`]).
#[derive(Clone, Debug)]
pub struct WindowStarts {
    ts: i64,
    next_start: i64,
    remaining: i64,
    size: i64,
    slide: i64,
}

impl Iterator for WindowStarts {
    type Item = i64;
    #[inline]
    fn next(&mut self) -> Option<i64> {
        while self.remaining > 0 {
            let start = self.next_start;
            self.remaining -= 1;
            self.next_start -= self.slide;
            if start <= self.ts && self.ts < start + self.size {
                return Some(start);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000_000;

    fn windows(shape: WindowShape, ts: i64) -> Vec<(i64, i64)> {
        let mut w: Vec<(i64, i64)> = shape.assign(ts).map(|s| (s, s + shape.size_us)).collect();
        w.sort();
        w
    }

    #[test]
    fn tumbling() {
        let s = WindowShape::parse("10 minutes", None, None).unwrap();
        assert_eq!(windows(s, 12 * MIN), vec![(10 * MIN, 20 * MIN)]);
        assert_eq!(windows(s, 10 * MIN), vec![(10 * MIN, 20 * MIN)]);
        assert_eq!(windows(s, 20 * MIN - 1), vec![(10 * MIN, 20 * MIN)]);
    }

    #[test]
    fn sliding_with_overlap() {
        // Spark's classic: 10 minute windows sliding every 5 minutes.
        let s = WindowShape::parse("10 minutes", Some("5 minutes"), None).unwrap();
        assert_eq!(
            windows(s, 12 * MIN),
            vec![(5 * MIN, 15 * MIN), (10 * MIN, 20 * MIN)]
        );
    }

    #[test]
    fn sliding_where_slide_does_not_divide_size() {
        // size 10, slide 3 (minutes): ts = 12 lies in windows starting at
        // 3, 6, 9, 12 (starts s with s <= 12 < s + 10 and s = 0 mod 3).
        let s = WindowShape::new(10 * MIN, 3 * MIN, 0).unwrap();
        assert_eq!(
            windows(s, 12 * MIN),
            vec![
                (3 * MIN, 13 * MIN),
                (6 * MIN, 16 * MIN),
                (9 * MIN, 19 * MIN),
                (12 * MIN, 22 * MIN)
            ]
        );
        // ts = 13: starts 6, 9, 12 (3 is out: 13 is not < 13).
        assert_eq!(
            windows(s, 13 * MIN),
            vec![
                (6 * MIN, 16 * MIN),
                (9 * MIN, 19 * MIN),
                (12 * MIN, 22 * MIN)
            ]
        );
    }

    #[test]
    fn start_offset() {
        // Hourly windows starting at quarter past.
        let s = WindowShape::parse("1 hour", None, Some("15 minutes")).unwrap();
        assert_eq!(windows(s, 70 * MIN), vec![(15 * MIN, 75 * MIN)]);
        assert_eq!(windows(s, 80 * MIN), vec![(75 * MIN, 135 * MIN)]);
        assert_eq!(windows(s, 10 * MIN), vec![(-45 * MIN, 15 * MIN)]);
    }

    #[test]
    fn negative_timestamps() {
        let s = WindowShape::parse("10 minutes", None, None).unwrap();
        assert_eq!(windows(s, -1), vec![(-10 * MIN, 0)]);
        assert_eq!(windows(s, -10 * MIN), vec![(-10 * MIN, 0)]);
        assert_eq!(windows(s, -10 * MIN - 1), vec![(-20 * MIN, -10 * MIN)]);
        let s = WindowShape::parse("10 minutes", Some("5 minutes"), None).unwrap();
        assert_eq!(windows(s, -MIN), vec![(-10 * MIN, 0), (-5 * MIN, 5 * MIN)]);
    }

    #[test]
    fn invalid_shapes_are_rejected() {
        assert!(WindowShape::parse("5 minutes", Some("10 minutes"), None).is_err());
        assert!(WindowShape::parse("0 minutes", None, None).is_err());
        assert!(WindowShape::parse("10 minutes", None, Some("10 minutes")).is_err());
    }
}
