//! Stream-stream joins: hand-checked results, both modes agreeing with a
//! nested-loop join over random streams, outer rows emitted once after the
//! watermark (also across a restart from the checkpoint), refusals.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::SequenceSource;
use proptest::prelude::*;
use runnel::{col, DataFrame, Expr, JoinType, MemorySink, OutputMode, Trigger};

const SEC: i64 = 1_000_000;

fn continuous() -> Trigger {
    Trigger::Continuous {
        epoch_interval: Duration::from_millis(2),
    }
}

/// `a.ts >= b.ts + lo AND a.ts <= b.ts + hi` (seconds), as SQL writes
/// `a.ts BETWEEN b.ts + INTERVAL lo SECONDS AND b.ts + INTERVAL hi SECONDS`.
fn range(lo: i64, hi: i64) -> Expr {
    let plus = |s: i64| Expr::Function {
        name: "timestampadd".into(),
        args: vec![
            runnel::lit("MICROSECOND"),
            runnel::lit(s * SEC),
            col("b.ts"),
        ],
    };
    col("a.ts").gt_eq(plus(lo)).and(col("a.ts").lt_eq(plus(hi)))
}

struct Join {
    how: JoinType,
    watermark_s: Option<(i64, i64)>,
    range: Option<(i64, i64)>,
}

fn build(j: &Join, a: SequenceSource, b: SequenceSource) -> DataFrame {
    let mut left = DataFrame::from_source("a", a);
    let mut right = DataFrame::from_source("b", b);
    if let Some((wa, wb)) = j.watermark_s {
        left = left.with_watermark("ts", &format!("{wa} seconds"));
        right = right.with_watermark("ts", &format!("{wb} seconds"));
    }
    let mut on = col("a.key").eq(col("b.key"));
    if let Some((lo, hi)) = j.range {
        on = on.and(range(lo, hi));
    }
    left.join_stream(right, on, j.how)
}

/// The joined rows as `a.id/b.id` strings (`-` for a null side), counted.
fn run(df: DataFrame, trigger: Trigger) -> BTreeMap<String, usize> {
    let (sink, table) = MemorySink::new("joined");
    let q = df
        .write_stream(sink)
        .output_mode(OutputMode::Append)
        .trigger(trigger)
        .start()
        .unwrap();
    q.await_termination().unwrap();
    let mut out = BTreeMap::new();
    for r in table.rows() {
        let id = |v: &runnel::Value| {
            if v.is_null() {
                "-".to_string()
            } else {
                v.to_string()
            }
        };
        *out.entry(format!("{}/{}", id(&r[0]), id(&r[3])))
            .or_default() += 1;
    }
    out
}

#[test]
fn inner_join_multiplies_duplicates_in_both_modes() {
    // a: ids 0..6 with keys k0,k1,k2; b: ids 0..4 with keys k0,k1.
    let j = Join {
        how: JoinType::Inner,
        watermark_s: None,
        range: None,
    };
    for trigger in [continuous(), Trigger::AvailableNow] {
        let out = run(
            build(
                &j,
                SequenceSource::new(6, 3, SEC),
                SequenceSource::new(4, 2, SEC),
            ),
            trigger,
        );
        // a's keys are k0 k1 k2 k0 k1 k2, b's k0 k1 k0 k1: every pair of
        // equal keys, once.
        let expected: BTreeMap<String, usize> =
            ["0/0", "0/2", "3/0", "3/2", "1/1", "1/3", "4/1", "4/3"]
                .into_iter()
                .map(|p| (p.to_string(), 1))
                .collect();
        assert_eq!(out, expected, "{trigger:?}");
    }
}

#[test]
fn left_outer_join_fills_nulls_once_the_watermark_passes_in_both_modes() {
    // a: (0, k0, 0s) (1, k1, 1s) (2, k0, 100s); b: (0, k0, 0s) (1, k0, 100s).
    let j = Join {
        how: JoinType::LeftOuter,
        watermark_s: Some((1, 1)),
        range: Some((0, 5)),
    };
    for trigger in [continuous(), Trigger::AvailableNow] {
        let a = SequenceSource::with_times(vec![0, SEC, 100 * SEC], 2);
        let b = SequenceSource::with_times(vec![0, 100 * SEC], 1);
        let out = run(build(&j, a, b), trigger);
        // a1 never matches and b's watermark (99 s) passed its range: one
        // row with nulls. a2 is still within its range: not emitted yet.
        let expected: BTreeMap<String, usize> = ["0/0", "1/-", "2/1"]
            .into_iter()
            .map(|p| (p.to_string(), 1))
            .collect();
        assert_eq!(out, expected, "{trigger:?}");
    }
}

/// What a join of the two streams gives, by the definition: every pair of
/// non-late rows with equal keys inside the range, and (outer) each
/// non-late row of the kept side without a match whose range the other
/// side's final watermark has passed.
fn reference(j: &Join, a: &[i64], b: &[i64], keys: [u64; 2]) -> BTreeMap<String, usize> {
    let evicting = j.range.is_some() && j.watermark_s.is_some();
    let (da, db) = j.watermark_s.unwrap_or((0, 0));
    let kept = |times: &[i64], delay: i64| -> Vec<bool> {
        let mut max = i64::MIN;
        times
            .iter()
            .map(|&t| {
                let late = evicting && max != i64::MIN && t < max - delay * SEC;
                max = max.max(t);
                !late
            })
            .collect()
    };
    let (ka, kb) = (kept(a, da), kept(b, db));
    let matches = |i: usize, k: usize| {
        i as u64 % keys[0] == k as u64 % keys[1]
            && j.range
                .is_none_or(|(lo, hi)| a[i] >= b[k] + lo * SEC && a[i] <= b[k] + hi * SEC)
    };
    let mut out = BTreeMap::new();
    for i in (0..a.len()).filter(|&i| ka[i]) {
        for k in (0..b.len()).filter(|&k| kb[k]) {
            if matches(i, k) {
                *out.entry(format!("{i}/{k}")).or_default() += 1;
            }
        }
    }
    let final_wm =
        |times: &[i64], delay: i64| times.iter().max().map_or(i64::MIN, |m| m - delay * SEC);
    if let Some((lo, hi)) = j.range {
        if j.how == JoinType::LeftOuter {
            let wm_b = final_wm(b, db);
            for i in (0..a.len()).filter(|&i| ka[i]) {
                let matched = (0..b.len()).any(|k| kb[k] && matches(i, k));
                if !matched && a[i] - lo * SEC < wm_b {
                    *out.entry(format!("{i}/-")).or_default() += 1;
                }
            }
        }
        if j.how == JoinType::RightOuter {
            let wm_a = final_wm(a, da);
            for k in (0..b.len()).filter(|&k| kb[k]) {
                let matched = (0..a.len()).any(|i| ka[i] && matches(i, k));
                if !matched && b[k] + hi * SEC < wm_a {
                    *out.entry(format!("-/{k}")).or_default() += 1;
                }
            }
        }
    }
    out
}

fn times(raw: &[i64]) -> Vec<i64> {
    // Forward with jitter backwards (out of order, some rows late).
    let mut t = 0i64;
    raw.iter()
        .enumerate()
        .map(|(i, j)| {
            if i % 3 == 0 {
                t += j / 8;
            }
            (t + 5 - j / 5) * SEC / 2
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Random stream-stream joins over random, out-of-order streams:
    /// continuous mode and micro-batch mode (random batch sizes) give the
    /// join's definition, row for row.
    #[test]
    fn both_modes_agree_with_the_definition(
        how in 0..3usize,
        raw_a in prop::collection::vec(0i64..40, 0..60),
        raw_b in prop::collection::vec(0i64..40, 0..60),
        keys_a in 1u64..4,
        keys_b in 1u64..4,
        delays in (0i64..4, 0i64..4),
        lo in -4i64..2,
        width in 0i64..5,
        bounded in any::<bool>(),
        per_trigger in 1u64..30,
    ) {
        let how = [JoinType::Inner, JoinType::LeftOuter, JoinType::RightOuter][how];
        let outer = how != JoinType::Inner;
        let j = Join {
            how,
            watermark_s: (outer || bounded).then_some(delays),
            range: (outer || bounded).then_some((lo, lo + width)),
        };
        let (a, b) = (times(&raw_a), times(&raw_b));
        let expected = reference(&j, &a, &b, [keys_a, keys_b]);
        let c = run(
            build(&j, SequenceSource::with_times(a.clone(), keys_a), SequenceSource::with_times(b.clone(), keys_b)),
            continuous(),
        );
        prop_assert_eq!(&c, &expected, "continuous");
        let m = run(
            build(
                &j,
                SequenceSource::with_times(a, keys_a).per_trigger(per_trigger),
                SequenceSource::with_times(b, keys_b).per_trigger(per_trigger),
            ),
            Trigger::AvailableNow,
        );
        prop_assert_eq!(&m, &expected, "micro-batch");
    }
}

fn sql_sides(watermarks: bool) -> (DataFrame, DataFrame) {
    let a = SequenceSource::with_times(vec![0, SEC, 100 * SEC], 2);
    let b = SequenceSource::with_times(vec![0, 100 * SEC], 1);
    let (mut a, mut b) = (
        DataFrame::from_source("a", a),
        DataFrame::from_source("b", b),
    );
    if watermarks {
        a = a.with_watermark("ts", "1 second");
        b = b.with_watermark("ts", "1 second");
    }
    (a, b)
}

#[test]
fn sql_joins_two_streams_in_both_modes() {
    let q = runnel::sql::StreamingSql::parse(
        "SELECT x.id AS a_id, x.key, x.ts, y.id AS b_id, y.key FROM a x LEFT OUTER JOIN b y \
         ON x.key = y.key AND x.ts BETWEEN y.ts AND y.ts + INTERVAL 5 SECONDS \
         WHERE x.id < 5",
    )
    .unwrap();
    for trigger in [continuous(), Trigger::AvailableNow] {
        let (a, b) = sql_sides(true);
        let out = run(q.apply_with_stream(a, b).unwrap(), trigger);
        let expected: BTreeMap<String, usize> = ["0/0", "1/-", "2/1"]
            .into_iter()
            .map(|p| (p.to_string(), 1))
            .collect();
        assert_eq!(out, expected, "{trigger:?}");
    }
}

/// The error of a stream-stream join query (sides `a` and `b`, each with a
/// watermark on `ts` if `watermarks`), with its position.
fn sql_error(sql: &str, watermarks: bool) -> String {
    let q = match runnel::sql::StreamingSql::parse(sql) {
        Ok(q) => q,
        Err(e) => return e.to_string(),
    };
    let (a, b) = sql_sides(watermarks);
    match q.apply_with_stream(a, b) {
        Ok(df) => {
            let (sink, _) = MemorySink::new("t");
            match df
                .write_stream(sink)
                .output_mode(OutputMode::Update)
                .explain()
            {
                Err(e) => e.to_string(),
                Ok(_) => panic!("`{sql}` planned without an error"),
            }
        }
        Err(e) => e.to_string(),
    }
}

fn assert_refused(sql: &str, watermarks: bool, msg: &str, target: &str) {
    let err = sql_error(sql, watermarks);
    assert!(err.contains(msg), "expected `{msg}` in:\n{err}");
    let col = sql.find(target).expect("the target") + 1;
    assert!(
        err.contains(&format!(" at line 1, column {col}\n")),
        "expected column {col} in:\n{err}"
    );
}

#[test]
fn refused_stream_stream_joins_name_the_reason_and_the_place() {
    assert_refused(
        "SELECT * FROM a LEFT OUTER JOIN b ON a.key = b.key AND a.ts >= b.ts",
        false,
        "a left outer stream-stream join needs a watermark on both sides",
        "a.key = b.key",
    );
    assert_refused(
        "SELECT * FROM a RIGHT JOIN b ON a.key = b.key AND a.ts >= b.ts",
        true,
        "a right outer stream-stream join needs an event-time range condition",
        "a.key = b.key",
    );
    assert_refused(
        "SELECT * FROM a FULL OUTER JOIN b ON a.key = b.key",
        true,
        "FULL OUTER JOIN of two streams is not supported",
        "FULL",
    );
    assert_refused(
        "SELECT * FROM a JOIN b ON a.ts >= b.ts",
        true,
        "a stream-stream join needs at least one equality",
        "a.ts >= b.ts",
    );
}

#[test]
fn refused_builder_joins_name_the_reason() {
    let err = |df: DataFrame| {
        let (sink, _) = MemorySink::new("t");
        df.write_stream(sink).explain().unwrap_err().to_string()
    };
    // An aggregation before the join.
    let (a, b) = sql_sides(true);
    let grouped = a
        .group_by([col("key")])
        .agg([runnel::count_star().alias("n")]);
    let e = err(grouped.join_stream(b, col("key").eq(col("b.key")), JoinType::Inner));
    assert!(
        e.contains("a stream-stream join after a streaming aggregation is not supported in append output mode"),
        "{e}"
    );
    // Update output mode.
    let (a, b) = sql_sides(true);
    let (sink, _) = MemorySink::new("t");
    let e = a
        .join_stream(b, col("a.key").eq(col("b.key")), JoinType::Inner)
        .write_stream(sink)
        .output_mode(OutputMode::Update)
        .explain()
        .unwrap_err()
        .to_string();
    assert!(e.contains("only append output mode"), "{e}");
    // A full outer join.
    let (a, b) = sql_sides(true);
    let e = err(a.join_stream(
        b,
        col("a.key").eq(col("b.key")).and(range(0, 5)),
        JoinType::FullOuter,
    ));
    assert!(
        e.contains("a full outer stream-stream join is not supported"),
        "{e}"
    );
}

/// Runs `j` over the first `na` of 200 rows and `nb` of 100 rows with a
/// checkpoint; returns the joined rows and the largest join state progress
/// reported.
fn run_checkpointed(
    j: &Join,
    trigger: Trigger,
    ckpt: &std::path::Path,
    (na, nb): (usize, usize),
) -> (BTreeMap<String, usize>, u64) {
    let ta: Vec<i64> = (0..200).map(|i| i * SEC / 10).collect();
    let tb: Vec<i64> = (0..100).map(|i| i * SEC / 5).collect();
    let a = SequenceSource::with_times(ta[..na].to_vec(), 5).per_trigger(40);
    let b = SequenceSource::with_times(tb[..nb].to_vec(), 5).per_trigger(40);
    let (sink, table) = MemorySink::new("joined");
    let q = build(j, a, b)
        .write_stream(sink)
        .output_mode(OutputMode::Append)
        .trigger(trigger)
        .checkpoint(ckpt)
        .start()
        .unwrap();
    q.await_termination().unwrap();
    let state_rows = q
        .recent_progress()
        .iter()
        .flat_map(|p| p.state_operators.iter().map(|s| s.num_rows_total))
        .max()
        .unwrap_or(0);
    let mut out = BTreeMap::new();
    for r in table.rows() {
        let id = |v: &runnel::Value| {
            if v.is_null() {
                "-".to_string()
            } else {
                v.to_string()
            }
        };
        *out.entry(format!("{}/{}", id(&r[0]), id(&r[3])))
            .or_default() += 1;
    }
    (out, state_rows)
}

#[test]
fn join_state_is_reported_and_restored_from_the_checkpoint_in_both_modes() {
    let j = Join {
        how: JoinType::LeftOuter,
        watermark_s: Some((1, 1)),
        range: Some((0, 2)),
    };
    for trigger in [continuous(), Trigger::AvailableNow] {
        let whole = tempfile::tempdir().unwrap();
        let (expected, state_rows) = run_checkpointed(&j, trigger, whole.path(), (200, 100));
        assert!(
            state_rows > 0,
            "the join's state is in progress: {trigger:?}"
        );
        assert!(expected.keys().any(|k| k.ends_with("/-")), "{expected:?}");
        // Stop half-way, then resume on the checkpoint with the rest of
        // both streams: the join's state (rows still waiting for a match)
        // comes back, so the two runs together give the whole run's rows.
        let split = tempfile::tempdir().unwrap();
        let (mut union, _) = run_checkpointed(&j, trigger, split.path(), (90, 60));
        let manifest = common::commit_numbers(split.path());
        let last = common::manifest(split.path(), *manifest.last().unwrap()).to_string();
        assert!(last.contains("join-0.bin"), "{last}");
        assert!(
            last.contains("\"sources\":{\"a\""),
            "offsets per source: {last}"
        );
        let (rest, _) = run_checkpointed(&j, trigger, split.path(), (200, 100));
        for (k, n) in rest {
            *union.entry(k).or_default() += n;
        }
        assert_eq!(union, expected, "{trigger:?}");
    }
}

#[test]
fn sides_may_filter_and_project_before_the_join_in_both_modes() {
    let side = |df: DataFrame, keep_even: bool| {
        let df = if keep_even {
            df.filter((col("id") % runnel::lit(2i64)).eq(runnel::lit(0i64)))
        } else {
            df
        };
        df.select([
            col("id"),
            (col("id") % runnel::lit(3i64)).alias("k"),
            col("ts"),
        ])
        .with_watermark("ts", "1 second")
    };
    let mut expected: BTreeMap<String, usize> = BTreeMap::new();
    for a in (0..12).filter(|a| a % 2 == 0) {
        for b in 0..6 {
            if a % 3 == b % 3 {
                expected.insert(format!("{a}/{b}"), 1);
            }
        }
    }
    for trigger in [continuous(), Trigger::AvailableNow] {
        let a = side(
            DataFrame::from_source("a", SequenceSource::new(12, 4, SEC).per_trigger(5)),
            true,
        );
        let b = side(
            DataFrame::from_source("b", SequenceSource::new(6, 4, SEC).per_trigger(5)),
            false,
        );
        let out = run(
            a.join_stream(b, col("a.k").eq(col("b.k")), JoinType::Inner),
            trigger,
        );
        assert_eq!(out, expected, "{trigger:?}");
    }
    // The watermark comes last on a side.
    let (sink, _) = MemorySink::new("t");
    let e = DataFrame::from_source("a", SequenceSource::new(1, 1, SEC))
        .with_watermark("ts", "1 second")
        .filter(col("id").gt(runnel::lit(0i64)))
        .join_stream(
            DataFrame::from_source("b", SequenceSource::new(1, 1, SEC)),
            col("a.key").eq(col("b.key")),
            JoinType::Inner,
        )
        .write_stream(sink)
        .explain()
        .unwrap_err()
        .to_string();
    assert!(e.contains("after its watermark"), "{e}");
}
