//! Remote compaction across processes: a database in this process, workers in processes of
//! their own (the `damselfly-compactor` binary), all on loopback and one folder on disk.
//!
//! Every test checks the rows against a model of what was written, so a lost or duplicated row
//! fails it whatever path the jobs took. Each test has its own pool name and workers, so tests
//! running side by side in this process (one kameo network for all of them) never share work.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arrow_array::{Array, Int64Array, RecordBatch, UInt64Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use damselfly::compaction::{CompactionJob, JOB_FORMAT, SstOptions};
use damselfly::runtime::{Runtime, SmolRuntime, TokioRuntime};
use damselfly::{Db, DbBuilder, Error};
use damselfly_remote::multiaddr::Protocol;
use damselfly_remote::protocol::{Answer, JobBody, JobRequest};
use damselfly_remote::{
    DRILL_CRASH_EXIT_CODE, Fallback, Multiaddr, Network, NetworkConfig, PeerId, RemoteExecutor,
    RemoteOptions, find_workers,
};

type Model = BTreeMap<u64, i64>;

/// This process's network (kameo has one per process), started by the first test to need it.
fn network() -> &'static Network {
    static NETWORK: OnceLock<&'static Network> = OnceLock::new();
    NETWORK.get_or_init(|| {
        let loopback = "/ip4/127.0.0.1/tcp/0".parse().expect("a multiaddress");
        Network::start(NetworkConfig::new().listen(loopback)).expect("the network starts")
    })
}

/// A `damselfly-compactor` process; killed when dropped.
struct WorkerProcess {
    child: Child,
    peer: PeerId,
    log: PathBuf,
}

impl WorkerProcess {
    /// Starts a worker on the folder `storage` in `pool`, and waits until it listens.
    async fn start(storage: &Path, pool: &str, extra: &[&str]) -> WorkerProcess {
        let log_dir = storage
            .parent()
            .expect("the database folder is in a temporary one");
        Self::spawn(log_dir, storage.as_os_str(), pool, extra, &[]).await
    }

    /// Starts a worker on the location `storage` with the environment `env`; it logs to a file
    /// in `log_dir`. It connects to this process (`--peer`), which stores its registration.
    async fn spawn(
        log_dir: &Path,
        storage: &OsStr,
        pool: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> WorkerProcess {
        let log = log_dir.join(format!("worker-{pool}-{}.log", unique()));
        let here = network().listen_addresses().await;
        let mut child = Command::new(env!("CARGO_BIN_EXE_damselfly-compactor"))
            .arg("--storage")
            .arg(storage)
            .args(["--peer", &here[0].to_string()])
            .args([
                "--listen",
                "/ip4/127.0.0.1/tcp/0",
                "--pool",
                pool,
                "--concurrency",
                "2",
            ])
            .args(extra)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("a log file"))
            .spawn()
            .expect("the worker binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the worker prints its address");
        let address: Option<Multiaddr> = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|address| address.parse().ok());
        let Some(Protocol::P2p(peer)) = address.as_ref().and_then(|address| address.iter().last())
        else {
            let _ = child.kill();
            panic!(
                "the worker did not start: {line:?}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        WorkerProcess { child, peer, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `signal` (`STOP`, `CONT`) to the process.
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} failed");
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A distinct number per call in this process and across processes (log, pool and prefix
/// names).
fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    u64::from(std::process::id()) * 1000 + NEXT.fetch_add(1, Ordering::Relaxed)
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::UInt64, false),
        Field::new("v", DataType::Int64, false),
    ]))
}

fn builder(dir: &Path) -> DbBuilder {
    DbBuilder::from_schema_key_name(schema(), "id")
        .and_then(|builder| builder.on_disk(dir))
        .expect("a valid builder")
        .automatic_compaction(false)
        .gc_grace_period(Duration::ZERO)
}

fn remote(options: RemoteOptions) -> impl Fn(DbBuilder) -> DbBuilder {
    move |builder| builder.compaction_executor(RemoteExecutor::factory(network(), options.clone()))
}

/// Round `round`: 300 upserts over a key space of 1,000 (overwrites from the second round on)
/// and 30 deletes, then a flush, so each round adds one SST.
async fn write_round(db: &Db, round: u64, model: &mut Model) -> Result<(), Error> {
    let keys: Vec<u64> = (0..300).map(|i| (round * 311 + i * 7) % 1000).collect();
    let values: Vec<i64> = keys
        .iter()
        .map(|key| (round * 10_000 + key) as i64)
        .collect();
    let mut keys_and_values: BTreeMap<u64, i64> = keys.into_iter().zip(values).collect();
    let deleted: Vec<u64> = (0..30).map(|i| (round * 13 + i * 31) % 1000).collect();
    for key in &deleted {
        keys_and_values.insert(*key, -1);
    }
    let tombstones: Vec<bool> = keys_and_values
        .keys()
        .map(|key| deleted.contains(key))
        .collect();
    let batch = RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(UInt64Array::from_iter_values(
                keys_and_values.keys().copied(),
            )),
            Arc::new(Int64Array::from_iter_values(
                keys_and_values.values().copied(),
            )),
        ],
    )
    .expect("a valid batch");
    db.ingest_with_tombstones(batch, tombstones).await?;
    for (key, value) in keys_and_values {
        if deleted.contains(&key) {
            model.remove(&key);
        } else {
            model.insert(key, value);
        }
    }
    db.flush().await
}

/// Every row, as a map; fails on a duplicate key (a row compaction duplicated).
async fn rows(db: &Db) -> Result<Model, Error> {
    let mut rows = Model::new();
    for batch in db.scan().collect().await? {
        let ids = batch
            .column(0)
            .as_any()
            .downcast_ref::<UInt64Array>()
            .expect("ids");
        let values = batch
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("values");
        for row in 0..batch.num_rows() {
            let previous = rows.insert(ids.value(row), values.value(row));
            assert!(previous.is_none(), "key {} came back twice", ids.value(row));
        }
    }
    Ok(rows)
}

async fn open(dir: &Path, runtime: impl Runtime, plug: impl Fn(DbBuilder) -> DbBuilder) -> Db {
    plug(builder(dir))
        .open(runtime)
        .await
        .expect("the database opens")
}

/// Writes `rounds` rounds, compacts, and checks the rows.
async fn rounds_then_compact(
    db: &Db,
    rounds: std::ops::Range<u64>,
    model: &mut Model,
) -> Result<(), Error> {
    for round in rounds {
        write_round(db, round, model).await?;
    }
    db.compact().await?;
    assert_eq!(&rows(db).await?, model);
    Ok(())
}

/// Opens the folder again with the default, in-process executor and checks the rows: what the
/// workers published is really there.
async fn reopened_rows(dir: &Path, runtime: impl Runtime) -> Result<Model, Error> {
    let db = open(dir, runtime, |builder| builder).await;
    let rows = rows(&db).await?;
    db.close().await?;
    Ok(rows)
}

/// A tenth of a second, on any runtime (the network's tokio runtime keeps the time).
async fn pause() {
    network()
        .run(async { tokio::time::sleep(Duration::from_millis(100)).await })
        .await
        .expect("the network runs tasks");
}

/// Waits until the registry finds every one of `workers` under `pool` (each registers once it
/// has connected to this process).
async fn connect(workers: &[&WorkerProcess], pool: &str) {
    for _ in 0..600 {
        let found: Vec<PeerId> = find_workers(network(), pool, Duration::from_secs(5))
            .await
            .iter()
            .map(|worker| worker.peer_id())
            .collect();
        if workers.iter().all(|worker| found.contains(&worker.peer)) {
            return;
        }
        pause().await;
    }
    panic!(
        "the registry never found the {} workers of {pool}",
        workers.len()
    );
}

/// A new, empty database in a temporary folder (workers serve only existing ones), and a pool
/// name of its own.
async fn new_database(
    name: &str,
    runtime: impl Runtime,
) -> Result<(tempfile::TempDir, PathBuf, String), Error> {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("db");
    open(&path, runtime, |builder| builder)
        .await
        .close()
        .await?;
    Ok((dir, path, pool(name)))
}

fn pool(name: &str) -> String {
    format!("{name}-{}", unique())
}

async fn compacts_on_a_worker_process<R: Runtime + Clone>(runtime: R) -> Result<(), Error> {
    let (_dir, path, pool) = new_database("basic", runtime.clone()).await?;
    let worker = WorkerProcess::start(&path, &pool, &[]).await;
    connect(&[&worker], &pool).await;
    let options = RemoteOptions::default()
        .pool(&pool)
        .fallback(Fallback::Wait);
    let db = open(&path, runtime.clone(), remote(options)).await;
    let mut model = Model::new();
    rounds_then_compact(&db, 0..4, &mut model).await?;
    rounds_then_compact(&db, 4..8, &mut model).await?;
    let metrics = db.metrics();
    assert!(metrics.compaction_jobs >= 2, "{metrics:?}");
    assert_eq!(
        metrics.compaction_remote_jobs, metrics.compaction_jobs,
        "{metrics:?}"
    );
    assert_eq!(
        (metrics.compaction_fallbacks, metrics.compaction_failovers),
        (0, 0)
    );
    assert_eq!(metrics.level0_sst_count, 0, "{metrics:?}");
    db.close().await?;
    let log = worker.log();
    assert_eq!(
        log.matches("job done").count() as u64,
        metrics.compaction_jobs,
        "{log}"
    );
    assert!(
        log.contains("inputs=") && log.contains("duration_ms="),
        "{log}"
    );
    assert_eq!(reopened_rows(&path, runtime).await?, model);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_runs_on_a_worker_process_under_tokio() -> Result<(), Error> {
    compacts_on_a_worker_process(TokioRuntime::current()).await
}

#[test]
fn compaction_runs_on_a_worker_process_under_smol() -> Result<(), Error> {
    smol::block_on(compacts_on_a_worker_process(SmolRuntime::new()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_and_reads_go_on_while_two_workers_compact() -> Result<(), Error> {
    let (_dir, path, pool) = new_database("busy", TokioRuntime::current()).await?;
    let workers = [
        WorkerProcess::start(&path, &pool, &[]).await,
        WorkerProcess::start(&path, &pool, &[]).await,
    ];
    connect(&[&workers[0], &workers[1]], &pool).await;
    let options = RemoteOptions::default()
        .pool(&pool)
        .fallback(Fallback::Wait);
    let db = open(&path, TokioRuntime::current(), |builder| {
        remote(options.clone())(
            builder
                .automatic_compaction(true)
                .level0_write_thresholds(40, 60),
        )
    })
    .await;
    let mut model = Model::new();
    for round in 0..24 {
        write_round(&db, round, &mut model).await?;
        // Reads see every write at once, whatever compaction is doing underneath.
        assert_eq!(rows(&db).await?, model, "after round {round}");
    }
    db.compact().await?;
    assert_eq!(rows(&db).await?, model);
    let metrics = db.metrics();
    assert!(metrics.compaction_remote_jobs >= 2, "{metrics:?}");
    assert_eq!(metrics.compaction_fallbacks, 0, "{metrics:?}");
    db.close().await?;
    assert_eq!(reopened_rows(&path, TokioRuntime::current()).await?, model);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_dying_mid_job_fails_over_and_a_new_worker_joins() -> Result<(), Error> {
    let (_dir, path, pool) = new_database("crash", TokioRuntime::current()).await?;
    let mut doomed = WorkerProcess::start(&path, &pool, &["--drill", "crash-on-job"]).await;
    let survivor = WorkerProcess::start(&path, &pool, &[]).await;
    connect(&[&doomed, &survivor], &pool).await;
    let options = RemoteOptions::default()
        .pool(&pool)
        .fallback(Fallback::Wait);
    let db = open(&path, TokioRuntime::current(), remote(options)).await;
    let mut model = Model::new();
    // Jobs go round-robin, so within a few the doomed worker is asked first.
    let mut rounds = 0;
    let status = loop {
        rounds_then_compact(&db, rounds * 4..rounds * 4 + 4, &mut model).await?;
        rounds += 1;
        if let Some(status) = doomed.child.try_wait().expect("the worker can be polled") {
            break status;
        }
        assert!(
            rounds < 10,
            "the doomed worker was never asked:\n{}",
            doomed.log()
        );
    };
    let metrics = db.metrics();
    assert_eq!(
        status.code(),
        Some(DRILL_CRASH_EXIT_CODE),
        "{}",
        doomed.log()
    );
    assert!(doomed.log().contains("job started"), "{}", doomed.log());
    assert!(metrics.compaction_failovers >= 1, "{metrics:?}");
    assert_eq!(
        metrics.compaction_remote_jobs, metrics.compaction_jobs,
        "{metrics:?}"
    );
    assert_eq!(metrics.compaction_fallbacks, 0, "{metrics:?}");
    // A worker started now joins the pool and gets its share.
    let newcomer = WorkerProcess::start(&path, &pool, &[]).await;
    connect(&[&survivor, &newcomer], &pool).await;
    while !newcomer.log().contains("job done") {
        assert!(
            rounds < 20,
            "the new worker was never asked:\n{}",
            newcomer.log()
        );
        rounds_then_compact(&db, rounds * 4..rounds * 4 + 4, &mut model).await?;
        rounds += 1;
    }
    db.close().await?;
    assert_eq!(reopened_rows(&path, TokioRuntime::current()).await?, model);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_after_the_timeout_is_dropped_and_the_job_runs_elsewhere() -> Result<(), Error> {
    let (_dir, path, pool) = new_database("late", TokioRuntime::current()).await?;
    let late = WorkerProcess::start(&path, &pool, &["--drill", "delay-jobs=6"]).await;
    let prompt = WorkerProcess::start(&path, &pool, &[]).await;
    connect(&[&late, &prompt], &pool).await;
    // Falls back to this process should the prompt worker be slow too (a loaded machine): the
    // test is about the late answer, which must change nothing.
    let options = RemoteOptions::default()
        .pool(&pool)
        .job_timeout(Duration::from_secs(2));
    // Inputs stay on storage a while after they were replaced, so the late run can read them.
    let db = open(&path, TokioRuntime::current(), |builder| {
        remote(options.clone())(builder.gc_grace_period(Duration::from_secs(600)))
    })
    .await;
    let mut model = Model::new();
    // Jobs go round-robin, so within a few the late worker is asked first.
    let mut rounds = 0;
    while !late.log().contains("job started") {
        assert!(
            rounds < 10,
            "the late worker was never asked:\n{}",
            late.log()
        );
        rounds_then_compact(&db, rounds * 4..rounds * 4 + 4, &mut model).await?;
        rounds += 1;
    }
    let metrics = db.metrics();
    assert!(metrics.compaction_failovers >= 1, "{metrics:?}");
    // The late worker finishes the job it was given after all (a second run of a job another
    // worker ran and the database published): its outputs take the ids of the job (the same
    // files, or files nothing refers to), and its answer goes nowhere.
    wait_for(
        || late.log().contains("job done"),
        "the late worker to finish",
        &|| late.log(),
    )
    .await;
    assert_eq!(rows(&db).await?, model);
    assert_eq!(db.metrics().compaction_lost_races, 0);
    db.close().await?;
    assert_eq!(reopened_rows(&path, TokioRuntime::current()).await?, model);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_worker_delays_compaction_and_loses_nothing() -> Result<(), Error> {
    let (_dir, path, pool) = new_database("partition", TokioRuntime::current()).await?;
    let worker = WorkerProcess::start(&path, &pool, &[]).await;
    connect(&[&worker], &pool).await;
    let options = RemoteOptions::default()
        .pool(&pool)
        .fallback(Fallback::Wait)
        .job_timeout(Duration::from_secs(10))
        .lookup_timeout(Duration::from_secs(2));
    let db = open(&path, TokioRuntime::current(), remote(options)).await;
    let mut model = Model::new();
    for round in 0..4 {
        write_round(&db, round, &mut model).await?;
    }
    // The worker stops answering: the job fails (no worker took it) and nothing changes.
    worker.signal("STOP");
    let error = db.compact().await.expect_err("no worker can take the job");
    assert!(
        error.to_string().contains("no compaction worker"),
        "{error}"
    );
    assert_eq!(rows(&db).await?, model);
    assert_eq!(db.metrics().level0_sst_count, 4);
    // Healed, the same work goes through (once the worker has caught up: the first attempts
    // may still time out while it works through what it missed).
    worker.signal("CONT");
    connect(&[&worker], &pool).await;
    let mut attempts = 0;
    while let Err(error) = db.compact().await {
        attempts += 1;
        assert!(
            attempts < 10,
            "compaction never went through after healing: {error}"
        );
    }
    let metrics = db.metrics();
    assert_eq!(metrics.level0_sst_count, 0, "{metrics:?}");
    assert!(metrics.compaction_remote_jobs >= 1, "{metrics:?}");
    assert_eq!(rows(&db).await?, model);
    db.close().await?;
    assert_eq!(reopened_rows(&path, TokioRuntime::current()).await?, model);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_workers_jobs_fall_back_to_this_process() -> Result<(), Error> {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("db");
    let options = RemoteOptions::default()
        .pool(pool("empty"))
        .lookup_timeout(Duration::from_millis(200));
    let db = open(&path, TokioRuntime::current(), remote(options)).await;
    let mut model = Model::new();
    rounds_then_compact(&db, 0..4, &mut model).await?;
    let metrics = db.metrics();
    assert!(metrics.compaction_jobs >= 1, "{metrics:?}");
    assert_eq!(
        metrics.compaction_fallbacks, metrics.compaction_jobs,
        "{metrics:?}"
    );
    assert_eq!(metrics.compaction_remote_jobs, 0, "{metrics:?}");
    db.close().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_refuses_requests_it_cannot_read_correctly() -> Result<(), Error> {
    let (_dir, path, pool) = new_database("versions", TokioRuntime::current()).await?;
    let worker = WorkerProcess::start(&path, &pool, &[]).await;
    connect(&[&worker], &pool).await;
    let workers = find_workers(network(), &pool, Duration::from_secs(10)).await;
    assert_eq!(workers.len(), 1);
    let job = |format| CompactionJob {
        format,
        inputs: Vec::new(),
        target_level: 1,
        drop_deletes: false,
        horizon: 0,
        output_ids: 100..101,
        output_file_bytes: 1 << 20,
    };
    let body = |format| JobBody {
        job: job(format),
        sst: SstOptions::default(),
    };
    let mut newer_protocol = JobRequest::new(&body(JOB_FORMAT));
    newer_protocol.protocol += 1;
    let newer_format = JobRequest::new(&body(JOB_FORMAT + 1));
    let expectations = [(newer_protocol, "protocol"), (newer_format, "format")];
    for (request, expected) in expectations {
        let response = workers[0]
            .ask(&request, Duration::from_secs(30))
            .await
            .expect("the worker answers");
        match response.open() {
            Answer::Refused(reason) => assert!(reason.contains(expected), "{reason}"),
            other => panic!("expected a refusal naming the {expected}, got {other:?}"),
        }
    }
    assert!(!worker.log().contains("job started"), "{}", worker.log());
    Ok(())
}

/// Polls `done` until it holds: another process's progress, seen only in its log (at most a
/// minute; a failure shows `context`).
async fn wait_for(done: impl Fn() -> bool, what: &str, context: &dyn Fn() -> String) {
    for _ in 0..600 {
        if done() {
            return;
        }
        pause().await;
    }
    panic!("timed out waiting for {what}:\n{}", context());
}

/// The database and the worker share a bucket prefix on the S3-compatible server the test
/// script starts (`$DAMSELFLY_S3_ENDPOINT`, `$DAMSELFLY_S3_BUCKET`); skipped without one unless
/// `$DAMSELFLY_REQUIRE_S3` is set.
#[cfg(feature = "s3")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_compacts_a_database_in_a_bucket() -> Result<(), Error> {
    use damselfly::storage::{S3Credentials, S3Spec};
    let (endpoint, bucket) = match (
        std::env::var("DAMSELFLY_S3_ENDPOINT"),
        std::env::var("DAMSELFLY_S3_BUCKET"),
    ) {
        (Ok(endpoint), Ok(bucket)) => (endpoint, bucket),
        _ if std::env::var_os("DAMSELFLY_REQUIRE_S3").is_some() => {
            panic!("DAMSELFLY_S3_ENDPOINT and DAMSELFLY_S3_BUCKET must name an S3 server")
        }
        _ => {
            eprintln!("skipping an S3 test: DAMSELFLY_S3_ENDPOINT and DAMSELFLY_S3_BUCKET unset");
            return Ok(());
        }
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos();
    let prefix = format!("remote-compaction-{}-{nanos}", unique());
    let (key_id, secret) = ("testing-key-id", "testing-secret");
    let spec = S3Spec::new(bucket.clone())
        .prefix(prefix.clone())
        .endpoint(endpoint.clone())
        .allow_http(true)
        .credentials(S3Credentials::new(key_id, secret));
    let logs = tempfile::tempdir().expect("a temporary folder");
    let pool = pool("bucket");
    let location = format!("s3://{bucket}/{prefix}");
    let worker = WorkerProcess::spawn(
        logs.path(),
        OsStr::new(&location),
        &pool,
        &["--allow-http"],
        &[
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", key_id),
            ("AWS_SECRET_ACCESS_KEY", secret),
            ("AWS_REGION", "us-east-1"),
        ],
    )
    .await;
    connect(&[&worker], &pool).await;
    let options = RemoteOptions::default()
        .pool(&pool)
        .fallback(Fallback::Wait);
    let open_in_bucket = |remote_compaction: bool| {
        let builder = DbBuilder::from_schema_key_name(schema(), "id")
            .and_then(|builder| builder.object_store(spec.clone()))
            .expect("a valid builder")
            .automatic_compaction(false);
        let builder = match remote_compaction {
            true => remote(options.clone())(builder),
            false => builder,
        };
        builder.open(TokioRuntime::current())
    };
    let db = open_in_bucket(true).await?;
    let mut model = Model::new();
    rounds_then_compact(&db, 0..4, &mut model).await?;
    let metrics = db.metrics();
    assert!(metrics.compaction_jobs >= 1, "{metrics:?}");
    assert_eq!(
        metrics.compaction_remote_jobs, metrics.compaction_jobs,
        "{metrics:?}"
    );
    db.close().await?;
    let db = open_in_bucket(false).await?;
    assert_eq!(rows(&db).await?, model);
    db.close().await?;
    assert!(worker.log().contains("job done"), "{}", worker.log());
    Ok(())
}
