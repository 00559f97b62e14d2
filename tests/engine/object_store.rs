//! The whole database on a real S3-compatible server (moto, which `scripts/test.sh` starts on
//! loopback): reads and writes through the public API, crash and reopen, fencing, a follower
//! reading while the writer writes and compacts, retries and ambiguous answers injected by a
//! proxy, and the number of requests each operation costs.
//!
//! The server is `$DAMSELFLY_S3_ENDPOINT` with the bucket `$DAMSELFLY_S3_BUCKET`. Without them
//! the tests are skipped — unless `DAMSELFLY_REQUIRE_S3` is set, as it is in CI, where their
//! absence is a failure. Each test works under a prefix of its own.

// Unique prefixes come from the wall clock; the proxy runs on threads.
#![allow(clippy::disallowed_methods)]

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use crate::s3_proxy::{Fault, Proxy};
use damselfly::storage::{S3Credentials, S3Requests, S3Spec, S3Storage};
use damselfly::{Db, ErrorKind, Expr};

/// The server's endpoint and bucket, or `None` (the test is skipped) when none is configured.
fn server() -> Option<(String, String)> {
    let endpoint = std::env::var("DAMSELFLY_S3_ENDPOINT").ok();
    let bucket = std::env::var("DAMSELFLY_S3_BUCKET").ok();
    match (endpoint, bucket) {
        (Some(endpoint), Some(bucket)) => Some((endpoint, bucket)),
        _ if std::env::var_os("DAMSELFLY_REQUIRE_S3").is_some() => {
            panic!("DAMSELFLY_S3_ENDPOINT and DAMSELFLY_S3_BUCKET must name an S3 server")
        }
        _ => {
            eprintln!("skipping an S3 test: DAMSELFLY_S3_ENDPOINT and DAMSELFLY_S3_BUCKET unset");
            None
        }
    }
}

/// A prefix no other test (or earlier run against the same server) uses.
fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos();
    format!("{test}-{}-{nanos}", std::process::id())
}

/// Where one test keeps its database: the server (or a proxy in front of it), bucket, prefix.
#[derive(Debug, Clone)]
pub struct Place {
    endpoint: String,
    bucket: String,
    prefix: String,
}

impl Place {
    fn spec(&self) -> S3Spec {
        S3Spec::new(self.bucket.clone())
            .prefix(self.prefix.clone())
            .endpoint(self.endpoint.clone())
            .allow_http(true)
            .credentials(S3Credentials::new("testing-key-id", "testing-secret"))
            .retries(6, Duration::from_millis(5))
    }

    /// A new connection, as another process would make.
    fn storage(&self) -> Arc<S3Storage> {
        Arc::new(S3Storage::connect(self.spec()).expect("a valid S3 configuration"))
    }

    /// The same place reached through `proxy`.
    fn through(&self, proxy: &Proxy) -> Place {
        Place {
            endpoint: proxy.endpoint.clone(),
            ..self.clone()
        }
    }
}

/// Defines a test that runs `body` on tokio and on smol with a fresh place on the S3 server.
macro_rules! s3_test {
    (async fn $name:ident($runtime:ident, $place:ident) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body(
                $runtime: $crate::common::Rt,
                $place: Place,
            ) -> Result<(), damselfly::Error> $body

            fn place() -> Option<Place> {
                let (endpoint, bucket) = server()?;
                let prefix = unique_prefix(stringify!($name));
                Some(Place { endpoint, bucket, prefix })
            }

            #[test]
            fn tokio() {
                if let Some(place) = place() {
                    $crate::common::run_on_tokio(|runtime| body(runtime, place));
                }
            }

            #[test]
            fn smol() {
                if let Some(place) = place() {
                    $crate::common::run_on_smol(|runtime| body(runtime, place));
                }
            }
        }
    };
}

fn delta(after: S3Requests, before: S3Requests) -> S3Requests {
    let mut delta = S3Requests::default();
    delta.get = after.get - before.get;
    delta.put = after.put - before.put;
    delta.list = after.list - before.list;
    delta.delete = after.delete - before.delete;
    delta
}

async fn open(place: &Place, runtime: &Rt) -> Result<Db, damselfly::Error> {
    events_builder()
        .object_store(place.spec())?
        .open(runtime.clone())
        .await
}

s3_test!(
    async fn the_public_api_works_on_a_bucket(runtime, place) {
        let db = open(&place, &runtime).await?;
        // Concurrent commits share WAL objects (group commit).
        let writers: Vec<_> = (0..8u64)
            .map(|writer| {
                let db = db.clone();
                async move { db.ingest(events(&[writer * 2, writer * 2 + 1], 1)).await }
            })
            .collect();
        for writer in writers {
            writer.await?;
        }
        let first = db.begin_snapshot().await?;
        db.flush().await?;
        db.ingest(events(&[3, 100], 2)).await?;
        db.ingest_with_tombstones(events(&[4], 0), vec![true]).await?;
        db.flush().await?;
        db.compact().await?;

        let expected: Vec<u64> = (0..16).filter(|&id| id != 4).chain([100]).collect();
        assert_eq!(u64_column(&db.scan().collect().await?, "id"), expected);
        let row = db.get(3u64).await?.expect("key 3");
        assert_eq!(i64_column(&[row], "score"), [32]);
        let filtered = db.scan().filter(Expr::col("score").ge(100i64)).collect().await?;
        assert_eq!(u64_column(&filtered, "id"), (10..16).chain([100]).collect::<Vec<_>>());
        assert_eq!(row_count(&first.scan().collect().await?), 16, "a snapshot across compaction");

        let mut left = db.begin_transaction().await?;
        let mut right = db.begin_transaction().await?;
        left.upsert(events(&[7], 5))?;
        right.upsert(events(&[7], 6))?;
        left.commit().await?;
        assert_error(right.commit().await, ErrorKind::Conflict, "key");
        db.close().await?;

        let db = open(&place, &runtime).await?;
        assert_eq!(u64_column(&db.scan().collect().await?, "id"), expected);
        assert_eq!(i64_column(&[db.get(7u64).await?.expect("key 7")], "score"), [75]);
        db.close().await
    }
);

s3_test!(
    async fn acknowledged_commits_survive_a_crash(runtime, place) {
        let (storage, process) = Process::over(place.storage());
        let db = events_builder().on_storage(storage).open(runtime.clone()).await?;
        let mut acknowledged = Vec::new();
        for round in 0..12u64 {
            db.ingest(events(&[round], 3)).await?;
            acknowledged.push(round);
            if round == 5 {
                db.flush().await?;
            }
        }
        // The process dies with commits in flight; what was acknowledged is in the bucket.
        let in_flight = db.ingest(events(&[50], 3));
        process.crash();
        let _ = in_flight.await;
        drop(db);

        let reopened = events_builder().on_storage(place.storage()).open(runtime.clone()).await?;
        let ids = u64_column(&reopened.scan().collect().await?, "id");
        let durable: Vec<u64> = ids.iter().copied().filter(|&id| id != 50).collect();
        assert_eq!(durable, acknowledged, "every acknowledged commit, once");
        assert_eq!(reopened.metrics().replayed_commits, 6 + ids.contains(&50) as u64);
        reopened.close().await
    }
);

s3_test!(
    async fn a_second_writer_fences_the_first(runtime, place) {
        let first = open(&place, &runtime).await?;
        first.ingest(events(&[1], 0)).await?;
        let second = open(&place, &runtime).await?;
        assert_eq!(ids_and_scores(&second).await?, [(1, 10)]);

        // The first writer's next WAL object collides with the second's log, or its next
        // publish finds the newer epoch: either way it is fenced.
        let _ = first.ingest(events(&[2], 0)).await;
        assert_error(first.flush().await, ErrorKind::Closed, "fenced");
        second.ingest(events(&[4], 0)).await?;
        second.flush().await?;
        second.close().await?;
        let _ = first.close().await;

        let third = open(&place, &runtime).await?;
        assert_eq!(ids_and_scores(&third).await?, [(1, 10), (4, 40)], "nothing fenced is visible");
        third.close().await
    }
);

s3_test!(
    async fn a_follower_reads_while_the_writer_writes_and_compacts(runtime, place) {
        let writer = events_builder()
            .object_store(place.spec())?
            .automatic_compaction(false)
            .gc_grace_period(Duration::from_secs(600))
            .open(runtime.clone())
            .await?;
        writer.flush().await?;
        let follower = events_builder()
            .object_store(place.spec())?
            .open_read_only(runtime.clone())
            .await?;
        let rounds = 12u64;
        let writing = {
            let writer = writer.clone();
            async move {
                for round in 0..rounds {
                    writer.ingest(events(&[round], 1)).await?;
                    if round % 2 == 1 {
                        writer.flush().await?;
                    }
                    if round % 4 == 3 {
                        writer.compact().await?;
                    }
                }
                Ok::<_, damselfly::Error>(())
            }
        };
        let reading = async {
            let mut seen = 0;
            for refresh in 0.. {
                assert!(refresh < 100_000, "the follower never saw every round");
                if seen == rounds as usize {
                    break;
                }
                follower.refresh().await?;
                let ids = u64_column(&follower.scan().collect().await?, "id");
                // Versions are published in commit order: a follower sees a prefix.
                assert_eq!(ids, (0..ids.len() as u64).collect::<Vec<_>>(), "a consistent prefix");
                assert!(ids.len() >= seen, "a follower never goes back");
                seen = ids.len();
            }
            Ok::<_, damselfly::Error>(())
        };
        let (wrote, read) = futures_lite::future::zip(writing, reading).await;
        wrote?;
        read?;
        follower.close().await?;
        writer.close().await
    }
);

s3_test!(
    async fn transient_failures_are_retried(runtime, place) {
        let (upstream, _) = server().expect("a server");
        let proxy = Proxy::start(&upstream);
        // Every third request fails before it reaches the server, as a busy store does.
        proxy.set_plan(|request| match request.index % 3 {
            2 => Fault::Refuse(if request.index % 2 == 0 { 503 } else { 429 }),
            _ => Fault::Pass,
        });
        let faulty = place.through(&proxy);
        let db = open(&faulty, &runtime).await?;
        for round in 0..6u64 {
            db.ingest(events(&[round], 0)).await?;
        }
        db.flush().await?;
        db.ingest(events(&[6], 0)).await?;
        db.close().await?;
        assert!(proxy.faults() > 5, "faults were injected: {}", proxy.faults());

        let db = open(&place, &runtime).await?;
        assert_eq!(u64_column(&db.scan().collect().await?, "id"), (0..7).collect::<Vec<_>>());
        db.close().await?;

        // A failure that is not transient is not retried: it reaches the caller.
        proxy.set_plan(|_| Fault::Refuse(403));
        assert_error(open(&faulty, &runtime).await, ErrorKind::Io, "403");
        Ok(())
    }
);

s3_test!(
    async fn puts_reported_failed_after_taking_effect_are_resolved_by_reading_back(runtime, place) {
        let (upstream, _) = server().expect("a server");
        let proxy = Proxy::start(&upstream);
        // Every other conditional create takes effect but is answered with a 500 (or never
        // answered, as a timeout would be); some others lose to a "concurrent write" (409).
        proxy.set_plan(|request| match (request.conditional, request.index % 4) {
            (true, 0 | 2) => Fault::ApplyThenFail(500),
            (true, 1) => Fault::Refuse(409),
            _ => Fault::Pass,
        });
        let db = open(&place.through(&proxy), &runtime).await?;
        for round in 0..6u64 {
            db.ingest(events(&[round, round + 10], 0)).await?;
            if round % 2 == 1 {
                db.flush().await?;
            }
        }
        db.compact().await?;
        let expected = ids_and_scores(&db).await?;
        db.close().await?;
        assert!(proxy.faults() > 5, "faults were injected: {}", proxy.faults());

        let db = open(&place, &runtime).await?;
        assert_eq!(ids_and_scores(&db).await?, expected, "every commit exactly once");
        assert_eq!(expected.len(), 12);
        db.close().await
    }
);

s3_test!(
    async fn requests_per_operation(runtime, place) {
        let storage = place.storage();
        let db = events_builder().on_storage(storage.clone()).open(runtime.clone()).await?;
        let rows: Vec<u64> = (0..10_000).collect();
        db.ingest(events(&rows, 0)).await?;

        let before = storage.requests();
        db.ingest(events(&[5], 1)).await?;
        let commit = delta(storage.requests(), before);
        assert_eq!((commit.put, commit.total()), (1, 1), "a commit is one PUT: {commit:?}");

        let before = storage.requests();
        db.flush().await?;
        let flush = delta(storage.requests(), before);
        db.close().await?;

        let storage = place.storage();
        let db = events_builder().on_storage(storage.clone()).open(runtime.clone()).await?;
        let open = storage.requests();
        let before = storage.requests();
        assert_eq!(row_count(&db.scan().collect().await?), 10_000);
        let scan = delta(storage.requests(), before);
        let before = storage.requests();
        assert!(db.get(4_321u64).await?.is_some());
        let lookup = delta(storage.requests(), before);
        let before = storage.requests();
        assert!(db.get(9_876u64).await?.is_some());
        let second_lookup = delta(storage.requests(), before);
        db.close().await?;

        let storage = place.storage();
        let follower = events_builder().on_storage(storage.clone()).open_read_only(runtime).await?;
        let before = storage.requests();
        follower.refresh().await?;
        let idle_refresh = delta(storage.requests(), before);
        assert_eq!(
            (idle_refresh.list, idle_refresh.total()),
            (1, 1),
            "a refresh that finds nothing new is one listing: {idle_refresh:?}"
        );
        follower.close().await?;

        eprintln!("S3 requests (GET/PUT/LIST/DELETE):");
        for (what, count) in [
            ("commit", commit),
            ("flush (one SST)", flush),
            ("open (one SST, empty WAL)", open),
            ("full scan of a one-SST table", scan),
            ("point lookup (cold)", lookup),
            ("point lookup (another block)", second_lookup),
            ("follower refresh, nothing new", idle_refresh),
        ] {
            eprintln!(
                "  {what:32} {}/{}/{}/{} = {}",
                count.get,
                count.put,
                count.list,
                count.delete,
                count.total()
            );
        }
        // Background work (the WAL's first object after open, truncation and manifest pruning
        // after a flush) can land in any window, so only reads are pinned exactly.
        assert!(open.total() <= 12 && open.put <= 2, "open: {open:?}");
        assert!(flush.total() <= 10, "flush: {flush:?}");
        assert!(scan.get <= 2 && scan.list == 0, "scan: {scan:?}");
        for lookup in [lookup, second_lookup] {
            assert!(lookup.get <= 2 && lookup.list == 0, "a lookup is ranged reads: {lookup:?}");
        }
        Ok(())
    }
);

#[test]
fn bad_configurations_are_refused_and_secrets_stay_hidden() {
    let secret = S3Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG");
    let spec = S3Spec::new("bucket")
        .endpoint("http://127.0.0.1:1")
        .credentials(secret.clone());
    let refused = events_builder().object_store(spec.clone()).map(|_| ());
    assert_error(refused, ErrorKind::InvalidInput, "allow_http");
    let debug = format!("{:?}", spec.clone().allow_http(true));
    assert!(
        !debug.contains("AKIDEXAMPLE") && !debug.contains("wJalr"),
        "{debug}"
    );

    let no_bucket = events_builder().object_store(S3Spec::new("a/b").credentials(secret.clone()));
    assert_error(no_bucket.map(|_| ()), ErrorKind::InvalidInput, "bucket");
    let bad_url = S3Spec::new("bucket")
        .endpoint("ftp://host")
        .credentials(secret);
    assert_error(
        events_builder().object_store(bad_url).map(|_| ()),
        ErrorKind::InvalidInput,
        "URL",
    );
}
