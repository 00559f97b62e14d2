//! Tests of the storage backends.
//!
//! One conformance suite (`conformance.rs`) is written once against `&dyn Storage` and run on
//! every backend: local disk on a tokio current-thread runtime, a tokio multi-thread runtime,
//! smol and an inline runtime like the simulator's; memory; memory behind a pass-through
//! `HookedStorage`; fusio over `InMemoryFs`. Each case
//! becomes one `#[test]` per backend, so a failure names both. Backend-specific behaviour (the
//! memory durability model, local-disk details, the fusio adapter) has its own file.

mod conformance;
mod fusio_backend;
mod local_disk;
mod memory_model;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use fusio::mem::fs::InMemoryFs;

use super::{FusioStorage, LocalDiskStorage, MemoryStorage, Storage};
use crate::runtime::{BlockingJob, BoxFuture, Instant, Runtime};

/// One conformance case, run on a storage a runner prepared.
type Case = for<'a> fn(&'a dyn Storage) -> BoxFuture<'a, ()>;

/// A runtime like the deterministic simulator's in the one way storage cares about: it runs
/// blocking jobs inline, at the moment they are handed over, on the caller's thread. While
/// `drop_jobs` is set it drops them instead, as a runtime that shuts down would.
#[derive(Debug, Default)]
struct InlineRuntime {
    random: AtomicU64,
    drop_jobs: AtomicBool,
}

impl Runtime for InlineRuntime {
    fn spawn_boxed(&self, name: &str, _task: BoxFuture<'static, ()>) {
        panic!("storage must not spawn tasks, but spawned {name}");
    }

    fn spawn_blocking(&self, job: BlockingJob) {
        if !self.drop_jobs.load(Ordering::Relaxed) {
            job();
        }
    }

    fn sleep(&self, _duration: Duration) -> BoxFuture<'static, ()> {
        panic!("storage must not sleep");
    }

    fn now(&self) -> Instant {
        Instant::default()
    }

    fn wall_clock(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH
    }

    fn random_u64(&self) -> u64 {
        self.random.fetch_add(1, Ordering::Relaxed)
    }
}

/// Opens local-disk storage in a fresh temporary directory (the root itself does not exist yet,
/// so opening must create it) and runs `case` on it.
async fn on_local_disk(runtime: Arc<dyn Runtime>, case: Case) {
    let temp = tempfile::tempdir().expect("a temporary directory can be made");
    let root = temp.path().join("data").join("root");
    let storage = LocalDiskStorage::open(root, runtime)
        .await
        .expect("local storage opens in a temporary directory");
    case(&storage).await;
}

#[cfg(feature = "tokio")]
fn tokio_runtime(mut builder: tokio::runtime::Builder) -> tokio::runtime::Runtime {
    builder
        .enable_all()
        .build()
        .expect("a tokio runtime can be built")
}

#[cfg(feature = "tokio")]
fn local_on_tokio_current_thread(case: Case) {
    let tokio = tokio_runtime(tokio::runtime::Builder::new_current_thread());
    let runtime = crate::TokioRuntime::from_handle(tokio.handle().clone());
    tokio.block_on(on_local_disk(Arc::new(runtime), case));
}

#[cfg(feature = "tokio")]
fn local_on_tokio_multi_thread(case: Case) {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2);
    let tokio = tokio_runtime(builder);
    let runtime = crate::TokioRuntime::from_handle(tokio.handle().clone());
    tokio.block_on(on_local_disk(Arc::new(runtime), case));
}

#[cfg(feature = "smol")]
fn local_on_smol(case: Case) {
    smol::block_on(on_local_disk(Arc::new(crate::SmolRuntime::new()), case));
}

fn local_on_inline_runtime(case: Case) {
    futures_lite::future::block_on(on_local_disk(Arc::new(InlineRuntime::default()), case));
}

fn memory(case: Case) {
    futures_lite::future::block_on(case(&MemoryStorage::new()));
}

/// A hook that lets every call through and writes down each with its outcome.
#[derive(Debug, Default)]
struct Recorder(std::sync::Mutex<Vec<String>>);

impl super::StorageHook for Recorder {
    fn after(
        &self,
        call: super::StorageCall<'_>,
        outcome: Result<u64, super::StorageErrorKind>,
    ) -> Result<(), super::StorageError> {
        let line = format!("{call:?} -> {outcome:?}");
        self.0.lock().expect("the log").push(line);
        Ok(())
    }
}

#[test]
fn a_hook_sees_every_outcome() {
    let recorder = Arc::new(Recorder::default());
    let storage = super::HookedStorage::new(Arc::new(MemoryStorage::new()), recorder.clone());
    futures_lite::future::block_on(async {
        let hello = bytes::Bytes::from_static(b"hello");
        for _ in 0..2 {
            let _ = storage.put_if_absent("d/a", hello.clone()).await;
        }
        let _ = storage.read_range("d/a", 1..3).await;
        let _ = storage.read("d/missing").await;
        let _ = storage.size("d/a").await;
        let _ = storage.list("d").await;
        let _ = storage.delete("d/a").await;
    });
    let log = recorder.0.lock().expect("the log").clone();
    assert_eq!(
        log,
        [
            r#"PutIfAbsent { path: "d/a", len: 5 } -> Ok(1)"#,
            r#"PutIfAbsent { path: "d/a", len: 5 } -> Ok(0)"#,
            r#"Read { path: "d/a", range: Some((1, 3)) } -> Ok(2)"#,
            r#"Read { path: "d/missing", range: None } -> Err(NotFound)"#,
            r#"Size { path: "d/a" } -> Ok(5)"#,
            r#"List { dir: "d" } -> Ok(1)"#,
            r#"Delete { path: "d/a" } -> Ok(0)"#,
        ]
    );
}

/// A hook that reports every `put_if_absent` as failed after it took effect.
#[derive(Debug)]
struct AppliedButFailed;

impl super::StorageHook for AppliedButFailed {
    fn after(
        &self,
        call: super::StorageCall<'_>,
        _outcome: Result<u64, super::StorageErrorKind>,
    ) -> Result<(), super::StorageError> {
        match call {
            super::StorageCall::PutIfAbsent { path, .. } => Err(super::StorageError::new(
                super::StorageErrorKind::Io,
                "put_if_absent",
                path,
                "the answer was lost",
            )),
            _ => Ok(()),
        }
    }
}

#[test]
fn a_hook_can_fail_a_call_that_took_effect() {
    let memory = MemoryStorage::new();
    let storage = super::HookedStorage::new(Arc::new(memory.clone()), Arc::new(AppliedButFailed));
    futures_lite::future::block_on(async {
        let hello = bytes::Bytes::from_static(b"hello");
        let error = storage
            .put_if_absent("d/a", hello.clone())
            .await
            .expect_err("the hook fails the call");
        assert_eq!(error.kind, super::StorageErrorKind::Io);
        assert_eq!(storage.read("d/a").await.expect("the put applied"), hello);
    });
}

fn hooked_memory(case: Case) {
    let storage = super::HookedStorage::new(
        Arc::new(MemoryStorage::new()),
        Arc::new(Recorder::default()),
    );
    futures_lite::future::block_on(case(&storage));
}

fn fusio_in_memory(case: Case) {
    let storage = FusioStorage::new(Arc::new(InMemoryFs::new()), "bucket/db");
    futures_lite::future::block_on(case(&storage));
}

/// One `#[test]` per listed conformance case, each run by `$runner`.
macro_rules! cases {
    ($runner:path; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $runner(|storage| Box::pin(super::conformance::$case(storage)));
            }
        )*
    };
}

/// The cases every backend passes.
macro_rules! common_cases {
    ($runner:path) => {
        cases!($runner;
            create_append_read,
            durable_append_or_unsupported,
            create_existing_fails,
            read_range_in_bounds_and_past_end,
            missing_file_is_not_found,
            put_replaces_content,
            put_if_absent_creates_once,
            racing_put_if_absent_has_one_winner,
            list_shows_direct_children_sorted,
            reserved_temp_names_are_rejected,
            delete_removes_once,
            sync_keeps_a_file_as_it_is,
            invalid_paths_are_rejected,
        );
    };
}

/// The cases of backends with real directories (a file cannot be a directory too). fusio's
/// object stores have a flat key space, where `a` and `a/b` can both exist, so it skips them.
macro_rules! directory_cases {
    ($runner:path) => {
        cases!($runner; file_cannot_be_a_directory);
    };
}

#[cfg(feature = "tokio")]
mod local_tokio_current_thread {
    common_cases!(super::local_on_tokio_current_thread);
    directory_cases!(super::local_on_tokio_current_thread);
}

#[cfg(feature = "tokio")]
mod local_tokio_multi_thread {
    common_cases!(super::local_on_tokio_multi_thread);
    directory_cases!(super::local_on_tokio_multi_thread);
}

#[cfg(feature = "smol")]
mod local_smol {
    common_cases!(super::local_on_smol);
    directory_cases!(super::local_on_smol);
}

mod local_inline_runtime {
    common_cases!(super::local_on_inline_runtime);
    directory_cases!(super::local_on_inline_runtime);
}

mod memory_backend {
    common_cases!(super::memory);
    directory_cases!(super::memory);
}

mod hooked_memory_backend {
    common_cases!(super::hooked_memory);
    directory_cases!(super::hooked_memory);
}

mod fusio_in_memory_fs {
    common_cases!(super::fusio_in_memory);
}
