//! Shared by the public-API tests: run one test body on every runtime, and the fixtures most
//! tests use (a five-column table, batches of it, readers of results).
//!
//! `runtime_test!` turns one `async fn` into three tests — `tokio` (multi-threaded), `smol` and
//! `sim` (the deterministic simulator). The simulator's seed comes from `DAMSELFLY_SEED` when
//! set, so a failure there is replayed with the seed it prints.

#![allow(dead_code, clippy::disallowed_methods)] // fixtures are shared; not every test uses all

use std::future::Future;
use std::sync::Arc;

use damselfly::arrow_array::cast::AsArray;
use damselfly::arrow_array::types::{ArrowPrimitiveType, Int64Type, UInt64Type};
use damselfly::arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, UInt64Array,
};
use damselfly::arrow_schema::{DataType, Field, Schema, SchemaRef};
use damselfly::runtime::{Runtime, SmolRuntime, TokioRuntime};
use damselfly::{DbBuilder, Error};
use damselfly_sim::SimRuntime;

/// The runtime a test body runs on.
pub type Rt = Arc<dyn Runtime>;

/// The seed for simulated runs: `DAMSELFLY_SEED`, or a fixed default.
pub fn sim_seed() -> u64 {
    std::env::var("DAMSELFLY_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or(0x5eed_da5e)
}

/// Runs `test` on a multi-threaded tokio runtime.
pub fn run_on_tokio<F, Fut>(test: F)
where
    F: FnOnce(Rt) -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let outcome = tokio.block_on(async { test(Arc::new(TokioRuntime::current())).await });
    outcome.unwrap_or_else(|error| panic!("on tokio: {error} ({error:?})"));
}

/// Runs `test` on smol's global executor.
pub fn run_on_smol<F, Fut>(test: F)
where
    F: FnOnce(Rt) -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    let outcome = smol::block_on(test(Arc::new(SmolRuntime::new())));
    outcome.unwrap_or_else(|error| panic!("on smol: {error} ({error:?})"));
}

/// Runs `test` on the deterministic simulator with [`sim_seed`].
pub fn run_on_sim<F, Fut>(test: F)
where
    F: FnOnce(Rt) -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    let seed = sim_seed();
    let sim = SimRuntime::new(seed);
    let (policy, jitter) = (sim.policy(), sim.timer_jitter());
    let outcome = sim.block_on(test(Arc::new(sim.clone())));
    sim.shutdown();
    outcome.unwrap_or_else(|error| {
        panic!(
            "on the simulator with seed {seed}, {policy:?} schedule, timers up to {jitter}% late \
             (replay: DAMSELFLY_SEED={seed}): {error} ({error:?})"
        )
    });
}

/// Defines one test body and runs it on tokio, smol and the simulator:
///
/// ```ignore
/// runtime_test!(async fn reads_its_writes(runtime) { ... Ok(()) });
/// ```
#[macro_export]
macro_rules! runtime_test {
    ($(#[$meta:meta])* async fn $name:ident($runtime:ident) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $(#[$meta])*
            async fn body($runtime: $crate::common::Rt) -> Result<(), damselfly::Error> $body

            #[test]
            fn tokio() {
                $crate::common::run_on_tokio(body);
            }

            #[test]
            fn smol() {
                $crate::common::run_on_smol(body);
            }

            #[test]
            fn sim() {
                $crate::common::run_on_sim(body);
            }
        }
    };
}

/// The table most tests use: u64 key, i64, f64, string, bool.
pub fn events_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::UInt64, false),
        Field::new("score", DataType::Int64, false),
        Field::new("weight", DataType::Float64, true),
        Field::new("name", DataType::Utf8, false),
        Field::new("active", DataType::Boolean, true),
    ]))
}

/// A builder for the events table.
pub fn events_builder() -> DbBuilder {
    DbBuilder::from_schema_key_name(events_schema(), "id").expect("a valid table")
}

/// The events table on `storage` with leveled compaction that compacts level 0 from two files
/// on, no automatic compaction (the tests decide when), and GC without a grace period.
pub fn manual_compaction(storage: &Arc<damselfly::storage::MemoryStorage>) -> DbBuilder {
    use damselfly::compaction::{CompactionOptions, CompactionStrategy, LeveledOptions};
    events_builder()
        .on_storage(storage.clone())
        .automatic_compaction(false)
        .gc_grace_period(std::time::Duration::ZERO)
        .compaction(CompactionOptions {
            strategy: CompactionStrategy::Leveled(LeveledOptions {
                level0_file_trigger: 2,
                ..LeveledOptions::default()
            }),
            ..CompactionOptions::default()
        })
}

/// Rows of the events table for `ids`; every value is derived from the id and `version`, so a
/// test can tell versions apart: score = id * 10 + version.
pub fn events(ids: &[u64], version: i64) -> RecordBatch {
    let scores: Vec<i64> = ids.iter().map(|&id| id as i64 * 10 + version).collect();
    events_scored(ids, &scores)
}

/// Rows of the events table for `ids` with the given scores.
pub fn events_scored(ids: &[u64], scores: &[i64]) -> RecordBatch {
    let scores = Int64Array::from(scores.to_vec());
    let weights: Float64Array = ids.iter().map(|&id| Some(id as f64 / 2.0)).collect();
    let names: StringArray = ids.iter().map(|id| Some(format!("name-{id:05}"))).collect();
    let active: BooleanArray = ids.iter().map(|id| Some(id % 2 == 0)).collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from(ids.to_vec())),
        Arc::new(scores),
        Arc::new(weights),
        Arc::new(names),
        Arc::new(active),
    ];
    RecordBatch::try_new(events_schema(), columns).expect("a valid batch")
}

/// All values of the UInt64 column `column` across `batches`, in order.
pub fn u64_column(batches: &[RecordBatch], column: &str) -> Vec<u64> {
    primitive_column::<UInt64Type>(batches, column)
}

/// All values of the Int64 column `column` across `batches`, in order.
pub fn i64_column(batches: &[RecordBatch], column: &str) -> Vec<i64> {
    primitive_column::<Int64Type>(batches, column)
}

fn primitive_column<T: ArrowPrimitiveType>(
    batches: &[RecordBatch],
    column: &str,
) -> Vec<T::Native> {
    let mut values = Vec::new();
    for batch in batches {
        let array = batch
            .column_by_name(column)
            .unwrap_or_else(|| panic!("no column {column}"));
        let array = array
            .as_primitive_opt::<T>()
            .unwrap_or_else(|| panic!("{column} is not {:?}", T::DATA_TYPE));
        values.extend(array.iter().map(|value| value.expect("no nulls")));
    }
    values
}

/// The total number of rows in `batches`.
pub fn row_count(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

/// The ids and scores a scan of the whole events table returns.
pub async fn ids_and_scores(db: &damselfly::Db) -> Result<Vec<(u64, i64)>, Error> {
    let batches = db.scan().collect().await?;
    Ok(u64_column(&batches, "id")
        .into_iter()
        .zip(i64_column(&batches, "score"))
        .collect())
}

/// A fresh temporary folder (removed when dropped).
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary folder")
}

/// Asserts that `result` failed with `kind` and that its message contains `needle`.
pub fn assert_error<T: std::fmt::Debug>(
    result: Result<T, Error>,
    kind: damselfly::ErrorKind,
    needle: &str,
) {
    match result {
        Ok(value) => panic!("expected a {kind:?} error mentioning {needle:?}, got Ok({value:?})"),
        Err(error) => {
            assert_eq!(error.kind(), kind, "wrong kind for: {error}");
            assert!(
                error.to_string().contains(needle),
                "the message {:?} does not mention {needle:?}",
                error.to_string()
            );
        }
    }
}

/// One process's way to its files: until [`Process::crash`] every call goes to the shared
/// storage; afterwards every call fails, as if the process had died, and what it wrote — synced
/// or only handed to the OS — stays for the next process to find.
#[derive(Debug, Default)]
pub struct Process {
    crashed: std::sync::atomic::AtomicBool,
}

impl Process {
    /// The storage a process sees, and the switch that crashes it.
    pub fn on(
        storage: &damselfly::storage::MemoryStorage,
    ) -> (Arc<damselfly::storage::HookedStorage>, Arc<Process>) {
        Process::over(Arc::new(storage.clone()))
    }

    /// The storage a process sees of `storage` (any backend), and the switch that crashes it.
    pub fn over(
        storage: Arc<dyn damselfly::storage::Storage>,
    ) -> (Arc<damselfly::storage::HookedStorage>, Arc<Process>) {
        let process = Arc::new(Process::default());
        let hooked = damselfly::storage::HookedStorage::new(storage, process.clone());
        (Arc::new(hooked), process)
    }

    /// From now on the process can reach no storage.
    pub fn crash(&self) {
        self.crashed
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl damselfly::storage::StorageHook for Process {
    fn before(
        &self,
        call: damselfly::storage::StorageCall<'_>,
    ) -> damselfly::runtime::BoxFuture<'static, Result<(), damselfly::storage::StorageError>> {
        let crashed = self.crashed.load(std::sync::atomic::Ordering::SeqCst);
        let (operation, path) = (call.operation(), call.path().to_owned());
        Box::pin(async move {
            if crashed {
                return Err(damselfly::storage::StorageError::new(
                    damselfly::storage::StorageErrorKind::Io,
                    operation,
                    path,
                    "the process crashed",
                ));
            }
            Ok(())
        })
    }
}
