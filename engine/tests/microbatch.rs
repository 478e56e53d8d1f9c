//! Micro-batch mode: the same queries as continuous mode, run in batches,
//! reach the same result tables.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::SequenceSource;
use proptest::prelude::*;
use runnel::{
    avg, col, count, count_star, lit, max, min, sliding_window, sum, window, DataFrame, MemorySink,
    OutputMode, Trigger,
};

const SEC: i64 = 1_000_000;

/// A random query over `(id, key, ts)`.
#[derive(Clone, Debug)]
struct QuerySpec {
    filter_mod: Option<(i64, i64)>,
    with_column: bool,
    keyed: bool,
    window: (i64, Option<i64>),
    watermark_s: Option<i64>,
    mode: OutputMode,
    aggregate: bool,
}

fn build(spec: &QuerySpec, source: SequenceSource) -> DataFrame {
    let mut df = DataFrame::from_source("events", source);
    if let Some((m, r)) = spec.filter_mod {
        df = df.filter((col("id") % lit(m)).not_eq(lit(r)));
    }
    if spec.with_column {
        df = df.with_column("v", (col("id") * lit(3i64)) % lit(11i64));
    } else {
        df = df.with_column("v", col("id"));
    }
    if let Some(delay) = spec.watermark_s {
        df = df.with_watermark("ts", &format!("{delay} seconds"));
    }
    if !spec.aggregate {
        return df.select([col("id"), col("key"), col("v")]);
    }
    let w = match spec.window {
        (size, None) => window(col("ts"), &format!("{size} seconds")),
        (size, Some(slide)) => sliding_window(
            col("ts"),
            &format!("{size} seconds"),
            &format!("{slide} seconds"),
        ),
    };
    let keys = if spec.keyed {
        vec![col("key"), w]
    } else {
        vec![w]
    };
    df.group_by(keys).agg([
        count_star().alias("n"),
        sum(col("v")).alias("total"),
        min(col("v")).alias("lo"),
        max(col("id")).alias("hi"),
        avg(col("v")).alias("mean"),
        count(col("v")).alias("nv"),
    ])
}

fn run(spec: &QuerySpec, source: SequenceSource, trigger: Trigger) -> BTreeSet<String> {
    let (sink, table) = MemorySink::new("t");
    let q = build(spec, source)
        .write_stream(sink)
        .output_mode(spec.mode)
        .trigger(trigger)
        .start()
        .unwrap();
    q.await_termination().unwrap();
    table.rows().iter().map(|r| r.to_string()).collect()
}

fn spec_strategy() -> impl Strategy<Value = QuerySpec> {
    (
        prop::option::of((2i64..5, 0i64..2)),
        any::<bool>(),
        any::<bool>(),
        prop_oneof![
            (1i64..6).prop_map(|s| (s, None)),
            (2i64..7, 1i64..3).prop_map(|(s, d)| (s, Some(d)))
        ],
        prop::option::of(0i64..4),
        0..3usize,
        0..5usize,
    )
        .prop_map(
            |(filter_mod, with_column, keyed, window, watermark_s, mode, agg)| {
                let aggregate = agg > 0;
                let mut mode = [OutputMode::Append, OutputMode::Update, OutputMode::Complete][mode];
                let mut watermark_s = watermark_s;
                if aggregate && mode == OutputMode::Append && watermark_s.is_none() {
                    watermark_s = Some(1);
                }
                if !aggregate {
                    mode = OutputMode::Append;
                }
                QuerySpec {
                    filter_mod,
                    with_column,
                    keyed,
                    window,
                    watermark_s,
                    mode,
                    aggregate,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// Random queries over random, out-of-order and late input: continuous
    /// mode and micro-batch mode (with random batch sizes) reach the same
    /// final result table.
    #[test]
    fn both_modes_reach_the_same_result_table(
        spec in spec_strategy(),
        times in prop::collection::vec(0i64..40, 1..120),
        keys in 1u64..4,
        per_trigger in 1u64..50,
    ) {
        // Times wander forward with jitter backwards (out of order, some late).
        let mut t = 0i64;
        let times: Vec<i64> = times.iter().enumerate().map(|(i, j)| {
            if i % 3 == 0 { t += j / 8; }
            (t + 5 - j / 5) * SEC / 2
        }).collect();
        let continuous = run(&spec, SequenceSource::with_times(times.clone(), keys), Trigger::Continuous { epoch_interval: Duration::from_millis(2) });
        let batches = run(&spec, SequenceSource::with_times(times, keys).per_trigger(per_trigger), Trigger::AvailableNow);
        prop_assert_eq!(continuous, batches, "{:?}", spec);
    }
}

#[test]
fn micro_batch_progress_has_spark_durations() {
    let (sink, table) = MemorySink::new("t");
    let q = DataFrame::from_source(
        "events",
        SequenceSource::new(1_000, 3, SEC / 10).per_trigger(300),
    )
    .with_watermark("ts", "2 seconds")
    .group_by([window(col("ts"), "10 seconds"), col("key")])
    .agg([count_star()])
    .write_stream(sink)
    .output_mode(OutputMode::Update)
    .trigger(Trigger::AvailableNow)
    .start()
    .unwrap();
    q.await_termination().unwrap();
    let progress = q.recent_progress();
    assert_eq!(progress.len(), 4, "1,000 rows at 300 per batch");
    assert_eq!(
        progress.iter().map(|p| p.num_input_rows).sum::<u64>(),
        1_000
    );
    let json = serde_json::to_value(&progress[1]).unwrap();
    for key in [
        "latestOffset",
        "walCommit",
        "getBatch",
        "queryPlanning",
        "addBatch",
        "commitOffsets",
        "triggerExecution",
    ] {
        assert!(
            json["durationMs"].get(key).is_some(),
            "durationMs.{key} missing: {json}"
        );
    }
    assert_eq!(json["batchId"], 1);
    assert!(json["eventTime"]["watermark"].is_string());
    assert!(json["stateOperators"][0]["numRowsTotal"].as_u64().unwrap() > 0);
    let total: i64 = table.rows().iter().map(|r| r[3].as_i64().unwrap()).sum();
    assert_eq!(total, 1_000);
}

#[test]
fn micro_batch_resumes_from_its_commit_log() {
    let dir = tempfile::tempdir().unwrap();
    let run = |n: u64| {
        let (sink, table) = MemorySink::new("t");
        let q = DataFrame::from_source("events", SequenceSource::new(n, 2, SEC).per_trigger(100))
            .write_stream(sink)
            .checkpoint(dir.path())
            .trigger(Trigger::AvailableNow)
            .start()
            .unwrap();
        q.await_termination().unwrap();
        (table.rows(), q.id().to_string())
    };
    let (first, id1) = run(250);
    assert_eq!(first.len(), 250);
    // A second run over a longer input reads only what is new.
    let (second, id2) = run(400);
    assert_eq!(second.len(), 150);
    assert_eq!(second[0][0], runnel::Value::Int64(250));
    assert_eq!(id1, id2, "the query id is kept in the checkpoint");
    let (ckpt, _) = runnel::checkpoint::CheckpointDir::open(dir.path()).unwrap();
    assert!(ckpt.epochs().unwrap().contains(&4));
    assert!(dir.path().join("offsets/journal-00000001").exists());
}

/// Micro-batch mode checkpoints aggregation state as a full file followed by
/// delta files (the groups each batch changed); a restart from a commit that
/// names deltas rebuilds the state exactly: every key's final count is right.
#[test]
fn restart_rebuilds_state_from_a_full_file_and_its_deltas() {
    let dir = tempfile::tempdir().unwrap();
    // 3,000 groups, 300 rows per batch: most batches write a delta.
    let (keys, first, n) = (3_000u64, 30_000u64, 60_000u64);
    let run = |rows: u64| {
        let (sink, table) = MemorySink::new("counts");
        let source = SequenceSource::new(rows, keys, 1).per_trigger(300);
        let query = DataFrame::from_source("events", source)
            .group_by([col("key")])
            .agg([count_star().alias("n")])
            .write_stream(sink)
            .output_mode(OutputMode::Update)
            .checkpoint(dir.path())
            .trigger(Trigger::AvailableNow)
            .start()
            .unwrap();
        query.await_termination().unwrap();
        table
    };
    run(first);

    let manifest = |n: u64| common::manifest(dir.path(), n);
    let batches = common::commit_numbers(dir.path());
    let newest = *batches.last().unwrap();
    // Go back a few batches, to a commit that names deltas, as if the
    // process had died just after it.
    let chosen = *batches
        .iter()
        .rev()
        .filter(|b| **b + 3 <= newest)
        .find(|b| common::names_deltas(&manifest(**b)))
        .expect("a retained commit names delta files");
    // Every batch logged after it goes too (batches written together have
    // one commit, the newest's, so not every logged batch has one).
    common::discard_after(dir.path(), chosen);

    let table = run(n);
    common::assert_every_key_counted(&table.rows(), keys, n / keys);
}

/// A window that ends exactly at the Unix epoch closes in both modes once
/// the watermark reaches it (a fresh micro-batch query once started with a
/// watermark of 0 instead of none, and never emitted such a window).
#[test]
fn a_window_ending_at_the_unix_epoch_closes_in_both_modes() {
    let spec = QuerySpec {
        filter_mod: None,
        with_column: false,
        keyed: false,
        window: (1, None),
        watermark_s: Some(3),
        mode: OutputMode::Append,
        aggregate: true,
    };
    // 2.5 s, then -0.5 s (in window [-1 s, 0 s)), then 3 s: watermark 0.
    let times = vec![5 * SEC / 2, -SEC / 2, 3 * SEC, 3 * SEC, 3 * SEC];
    let continuous = run(
        &spec,
        SequenceSource::with_times(times.clone(), 1),
        Trigger::Continuous {
            epoch_interval: Duration::from_millis(2),
        },
    );
    assert_eq!(
        continuous.iter().collect::<Vec<_>>(),
        vec!["[1969-12-31 23:59:59, 1970-01-01 00:00:00, 1, 1, 1, 1, 1.0, 1]"]
    );
    for per_trigger in [1, 2, 5] {
        let batches = run(
            &spec,
            SequenceSource::with_times(times.clone(), 1).per_trigger(per_trigger),
            Trigger::AvailableNow,
        );
        assert_eq!(batches, continuous, "{per_trigger} rows per batch");
    }
}
