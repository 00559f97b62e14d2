//! The executor against a model: random versions spread over random input SSTs, merged by the
//! [`LocalExecutor`] under a random horizon, must read the same at every timestamp from the
//! horizon on — row for row — and must keep exactly what the rules keep: each key's versions
//! newer than the horizon and its newest at or below it, minus trailing deletes when deletes may
//! be dropped. Randomized; rerun one seed with `COMPACTION_TEST_SEED=<seed>`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow_array::{BooleanArray, RecordBatch};
use arrow_select::filter::filter_record_batch;
use damselfly_runtimes::{MemoryStorage, Runtime, SmolRuntime, Storage};

use super::{CompactionJob, CompactionOutcome, JOB_FORMAT, LocalExecutor};
use crate::manifest::{SstDescriptor, sst_path};
use crate::sst::tests::model::{Model, random_model};
use crate::sst::{BlockCache, KeyRange, SstOptions, SstReader, SstWriter};
use crate::table::{KeyBytes, TableSchema};

// Reading the environment is how a failing seed is replayed; tests are not engine code.
#[allow(clippy::disallowed_methods)]
fn seeds() -> Vec<u64> {
    match std::env::var("COMPACTION_TEST_SEED") {
        Ok(seed) => vec![seed.parse().expect("COMPACTION_TEST_SEED is a number")],
        Err(_) => (0..40).collect(),
    }
}

/// One version as read back: its timestamp, whether it deletes, and its row (table columns).
#[derive(Debug, Clone)]
struct Read {
    timestamp: u64,
    deleted: bool,
    row: RecordBatch,
}

/// Every version of the SSTs `descriptors` on `storage`, by key, newest first.
async fn read_all(
    storage: &Arc<dyn Storage>,
    table: &Arc<TableSchema>,
    descriptors: &[SstDescriptor],
) -> BTreeMap<KeyBytes, Vec<Read>> {
    let mut versions: BTreeMap<KeyBytes, Vec<Read>> = BTreeMap::new();
    for descriptor in descriptors {
        let reader = SstReader::open(
            Arc::clone(storage),
            &descriptor.path(),
            Arc::clone(table),
            Arc::new(BlockCache::new(0)),
            descriptor.footer_checksum(),
            descriptor.bytes,
        )
        .await
        .expect("an SST opens");
        let mut scan = reader
            .scan_versions(KeyRange::all(), 7)
            .expect("a scan starts");
        while let Some(chunk) = scan.next_chunk().await.expect("a chunk reads") {
            let keys = chunk.keys.expect("keys");
            let timestamps = chunk.timestamps.expect("timestamps");
            for (row, key) in keys.into_iter().enumerate() {
                versions.entry(key).or_default().push(Read {
                    timestamp: timestamps[row],
                    deleted: chunk.deleted.value(row),
                    row: chunk.batch.slice(row, 1),
                });
            }
        }
    }
    for list in versions.values_mut() {
        list.sort_by_key(|read| std::cmp::Reverse(read.timestamp));
    }
    versions
}

/// What a read at `at` returns for a key with `versions`: the newest at or before `at`, if it
/// is not a delete.
fn visible(versions: &[Read], at: u64) -> Option<&RecordBatch> {
    versions
        .iter()
        .find(|read| read.timestamp <= at)
        .filter(|read| !read.deleted)
        .map(|read| &read.row)
}

/// How many of `versions` (newest first) the rules keep.
fn expected_kept(versions: &[Read], horizon: u64, drop_deletes: bool) -> usize {
    let mut kept = versions
        .iter()
        .position(|read| read.timestamp <= horizon)
        .map_or(versions.len(), |at| at + 1);
    // A delete newer than the horizon stays: a transaction's conflict check needs it.
    while drop_deletes
        && kept > 0
        && versions[kept - 1].deleted
        && versions[kept - 1].timestamp <= horizon
    {
        kept -= 1;
    }
    kept
}

/// Writes the model's versions into `inputs` SSTs, each version to a random one.
async fn write_inputs(
    model: &Model,
    storage: &Arc<dyn Storage>,
    inputs: u64,
    random: &mut fastrand::Rng,
) -> Vec<SstDescriptor> {
    let (batch, keys) = model.sst_rows();
    let owner: Vec<u64> = (0..batch.num_rows())
        .map(|_| random.u64(0..inputs))
        .collect();
    let mut descriptors = Vec::new();
    for input in 0..inputs {
        let mask = BooleanArray::from_iter(owner.iter().map(|&o| Some(o == input)));
        let rows = filter_record_batch(&batch, &mask).expect("filter");
        if rows.num_rows() == 0 {
            continue;
        }
        let input_keys: Vec<KeyBytes> = keys
            .iter()
            .zip(&owner)
            .filter(|(_, o)| **o == input)
            .map(|(key, _)| key.clone())
            .collect();
        let options = SstOptions {
            page_rows: 8,
            row_group_rows: 32,
            ..SstOptions::default()
        };
        let mut writer = SstWriter::new(&model.table, &options, 0).expect("a writer");
        writer.write(&rows, &input_keys).expect("rows write");
        let encoded = writer.finish().expect("an SST");
        let id = input + 1;
        storage
            .put(&sst_path(id), encoded.bytes.clone())
            .await
            .expect("stored");
        descriptors.push(SstDescriptor::from_info(id, 0, &encoded.info));
    }
    descriptors
}

async fn compact(seed: u64) {
    let mut random = fastrand::Rng::with_seed(seed);
    let model = random_model(seed, random.usize(1..80), random.usize(1..7), 40);
    let table = Arc::clone(&model.table);
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let inputs = write_inputs(&model, &storage, random.u64(1..5), &mut random).await;
    let job = CompactionJob {
        format: JOB_FORMAT,
        inputs: inputs.clone(),
        target_level: random.u32(0..3),
        drop_deletes: random.bool(),
        horizon: random.u64(0..42),
        output_ids: 100..100 + random.u64(1..6),
        output_file_bytes: random.u64(1..8) << 10,
    };
    let runtime: Arc<dyn Runtime> = Arc::new(SmolRuntime::new());
    let parts = random.usize(1..5);
    let executor = LocalExecutor::new(
        Arc::clone(&storage),
        runtime,
        Arc::clone(&table),
        SstOptions::default(),
    )
    .with_subcompactions(parts);
    let outcome: CompactionOutcome = executor.run(job.clone()).await.expect("the job runs");
    let context =
        format!("seed {seed} (COMPACTION_TEST_SEED={seed}), {parts} parts at most, job {job:?}");
    outcome
        .check(&job)
        .unwrap_or_else(|error| panic!("{context}: {error}"));

    let before = read_all(&storage, &table, &inputs).await;
    let after = read_all(&storage, &table, &outcome.outputs).await;
    let rows_in: usize = before.values().map(Vec::len).sum();
    assert_eq!(outcome.rows_read, rows_in as u64, "{context}");
    for (key, versions) in &before {
        let kept = after.get(key).map_or(&[][..], Vec::as_slice);
        assert_eq!(
            kept.len(),
            expected_kept(versions, job.horizon, job.drop_deletes),
            "{context}: versions kept of {key:?}"
        );
        for at in job.horizon..=41 {
            let expected = visible(versions, at);
            let found = visible(kept, at);
            assert_eq!(
                expected.map(|row| row.columns().to_vec()),
                found.map(|row| row.columns().to_vec()),
                "{context}: {key:?} read at {at}"
            );
        }
    }
    assert!(
        after.keys().all(|key| before.contains_key(key)),
        "{context}: no new keys"
    );
    let max_timestamp = inputs.iter().map(|sst| sst.max_timestamp).max();
    for output in &outcome.outputs {
        assert!(Some(output.max_timestamp) <= max_timestamp);
    }
}

#[test]
fn a_merge_reads_the_same_from_the_horizon_on_and_keeps_only_what_reads_need() {
    for seed in seeds() {
        smol::block_on(compact(seed));
    }
}

#[test]
fn outputs_are_cut_at_key_boundaries_near_the_requested_size() {
    smol::block_on(async {
        let model = random_model(7, 400, 3, 40);
        let table = Arc::clone(&model.table);
        let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
        let mut random = fastrand::Rng::with_seed(7);
        let inputs = write_inputs(&model, &storage, 3, &mut random).await;
        let job = CompactionJob {
            format: JOB_FORMAT,
            inputs,
            target_level: 1,
            drop_deletes: false,
            horizon: 0,
            output_ids: 100..110,
            output_file_bytes: 4 << 10,
        };
        let executor = LocalExecutor::new(
            Arc::clone(&storage),
            Arc::new(SmolRuntime::new()),
            table,
            SstOptions::default(),
        )
        .with_subcompactions(1);
        let outcome = executor.run(job.clone()).await.expect("the job runs");
        outcome.check(&job).expect("the outcome fits the job");
        assert!(outcome.outputs.len() > 1, "{:?}", outcome.outputs);
        assert_eq!(
            outcome.rows_written, outcome.rows_read,
            "horizon 0 keeps every version"
        );
        // `check` proved them ordered without overlap: no key's versions were split.
        let ids: Vec<u64> = outcome.outputs.iter().map(|sst| sst.id).collect();
        assert_eq!(ids, (100..100 + ids.len() as u64).collect::<Vec<_>>());
        let rows: u64 = outcome.outputs.iter().map(|sst| sst.rows).sum();
        assert_eq!(rows, outcome.rows_read);
        // The unused ids stay free.
        for id in 100 + ids.len() as u64..110 {
            assert!(storage.size(&sst_path(id)).await.is_err());
        }
    });
}

#[test]
fn a_job_in_parts_writes_the_same_versions_each_part_under_its_share_of_the_ids() {
    smol::block_on(async {
        let model = random_model(11, 400, 3, 40);
        let table = Arc::clone(&model.table);
        let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
        let mut random = fastrand::Rng::with_seed(11);
        let inputs = write_inputs(&model, &storage, 3, &mut random).await;
        let job = |output_ids| CompactionJob {
            format: JOB_FORMAT,
            inputs: inputs.clone(),
            target_level: 1,
            drop_deletes: false,
            horizon: 20,
            output_ids,
            output_file_bytes: 4 << 10,
        };
        let executor = |parts| {
            LocalExecutor::new(
                Arc::clone(&storage),
                Arc::new(SmolRuntime::new()),
                Arc::clone(&table),
                SstOptions::default(),
            )
            .with_subcompactions(parts)
        };
        let whole_job = job(100..112);
        let whole = executor(1).run(whole_job.clone()).await.expect("runs");
        whole.check(&whole_job).expect("fits");
        let parts_job = job(200..212);
        let parts = executor(3).run(parts_job.clone()).await.expect("runs");
        parts
            .check(&parts_job)
            .expect("fits: outputs in key order, without overlap");

        // The same versions survive, and each of the three parts wrote under its own ids.
        assert_eq!(
            (parts.rows_read, parts.rows_written),
            (whole.rows_read, whole.rows_written)
        );
        let versions = |read: BTreeMap<KeyBytes, Vec<Read>>| {
            read.into_iter()
                .map(|(key, reads)| (key, reads.iter().map(|read| read.timestamp).collect()))
                .collect::<Vec<(KeyBytes, Vec<u64>)>>()
        };
        assert_eq!(
            versions(read_all(&storage, &table, &whole.outputs).await),
            versions(read_all(&storage, &table, &parts.outputs).await)
        );
        let shares: BTreeSet<u64> = parts.outputs.iter().map(|sst| (sst.id - 200) / 4).collect();
        assert_eq!(shares, BTreeSet::from([0, 1, 2]), "{:?}", parts.outputs);
    });
}

#[test]
fn an_outcome_that_does_not_fit_its_job_is_rejected() {
    let model = random_model(3, 20, 2, 10);
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let mut random = fastrand::Rng::with_seed(3);
    let inputs = smol::block_on(write_inputs(&model, &storage, 1, &mut random));
    let job = CompactionJob {
        format: JOB_FORMAT,
        inputs: inputs.clone(),
        target_level: 1,
        drop_deletes: false,
        horizon: 0,
        output_ids: 100..102,
        output_file_bytes: 1 << 20,
    };
    let output = SstDescriptor {
        id: 100,
        level: 1,
        ..inputs[0].clone()
    };
    let good = CompactionOutcome {
        format: JOB_FORMAT,
        outputs: vec![output.clone()],
        rows_read: output.rows,
        rows_written: output.rows,
    };
    good.check(&job).expect("a fitting outcome passes");
    let reject = |outcome: CompactionOutcome, needle: &str| {
        let error = outcome.check(&job).expect_err(needle);
        assert!(error.reason.contains(needle), "{error} lacks {needle:?}");
    };
    reject(
        CompactionOutcome {
            format: JOB_FORMAT + 1,
            ..good.clone()
        },
        "job format",
    );
    let at = |descriptor: SstDescriptor| CompactionOutcome {
        outputs: vec![descriptor],
        ..good.clone()
    };
    reject(
        at(SstDescriptor {
            id: 5,
            ..output.clone()
        }),
        "not a fresh id",
    );
    reject(
        at(SstDescriptor {
            level: 2,
            ..output.clone()
        }),
        "targets level 1",
    );
    reject(
        at(SstDescriptor {
            max_timestamp: output.max_timestamp + 1,
            ..output.clone()
        }),
        "outside the inputs' timestamps",
    );
    reject(
        CompactionOutcome {
            rows_written: output.rows + 1,
            ..good.clone()
        },
        "rows",
    );
    reject(
        CompactionOutcome {
            outputs: vec![
                output.clone(),
                SstDescriptor {
                    id: 101,
                    ..output.clone()
                },
            ],
            rows_written: output.rows * 2,
            rows_read: output.rows * 2,
            ..good
        },
        "not in key order",
    );
}
