//! The durability model of `MemoryStorage`: what survives `simulate_power_loss`, forks, damage.

use bytes::Bytes;
use futures_lite::future::block_on;

use super::conformance::{kind_of, put, read};
use crate::storage::{
    AfterPowerLoss, Appender, Durability, MemoryStorage, Storage, StorageErrorKind,
};

async fn append(appender: &mut Box<dyn Appender>, data: &'static [u8], durability: Durability) {
    let appended = appender.append(Bytes::from_static(data), durability).await;
    appended.expect("append");
}

#[test]
fn power_loss_keeps_synced_bytes_and_drops_the_rest() {
    let storage = MemoryStorage::new();
    block_on(async {
        let mut appender = storage.create("wal/1").await.expect("create");
        append(&mut appender, b"synced ", Durability::Synced).await;
        append(&mut appender, b"buffered", Durability::Buffered).await;
        assert_eq!(read(&storage, "wal/1").await, &b"synced buffered"[..]);

        storage.simulate_power_loss();
        assert_eq!(read(&storage, "wal/1").await, &b"synced "[..]);
        assert_eq!(storage.size("wal/1").await.expect("size"), 7);
    });
}

#[test]
fn power_loss_removes_a_file_that_was_never_synced() {
    let storage = MemoryStorage::new();
    block_on(async {
        let mut appender = storage.create("wal/2").await.expect("create");
        append(&mut appender, b"lost", Durability::Buffered).await;
        storage.simulate_power_loss();
        assert_eq!(
            kind_of(storage.read("wal/2").await),
            StorageErrorKind::NotFound
        );
        assert_eq!(storage.paths(), Vec::<String>::new());
    });
}

#[test]
fn a_power_loss_can_keep_tear_or_lose_each_unsynced_tail() {
    let storage = MemoryStorage::new();
    block_on(async {
        for path in ["a/kept", "a/torn", "a/lost", "a/new"] {
            let mut appender = storage.create(path).await.expect("create");
            if path != "a/new" {
                append(&mut appender, b"durable|", Durability::Synced).await;
            }
            append(&mut appender, b"unsynced", Durability::Buffered).await;
        }
        storage
            .put("a/put", Bytes::from_static(b"put"))
            .await
            .expect("put");
        let mut offered = Vec::new();
        storage.simulate_power_loss_with(|file| {
            offered.push((file.path.to_owned(), file.durable_len));
            match file.path {
                "a/kept" => AfterPowerLoss::Tail(file.bytes[8..].to_vec()),
                "a/torn" => AfterPowerLoss::Tail(b"uns\0\xff".to_vec()),
                _ => AfterPowerLoss::Vanished,
            }
        });
        // Only files with something unsynced are offered, in path order.
        assert_eq!(
            offered,
            [
                ("a/kept".to_owned(), Some(8)),
                ("a/lost".to_owned(), Some(8)),
                ("a/new".to_owned(), None),
                ("a/torn".to_owned(), Some(8)),
            ]
        );
        assert_eq!(read(&storage, "a/kept").await, &b"durable|unsynced"[..]);
        assert_eq!(read(&storage, "a/torn").await, &b"durable|uns\0\xff"[..]);
        // A file whose existence was durable keeps its durable bytes even when "vanished".
        assert_eq!(read(&storage, "a/lost").await, &b"durable|"[..]);
        assert_eq!(
            kind_of(storage.read("a/new").await),
            StorageErrorKind::NotFound
        );
        assert_eq!(read(&storage, "a/put").await, &b"put"[..]);
        // What survived is durable now: a second power loss changes nothing.
        storage.simulate_power_loss();
        assert_eq!(read(&storage, "a/torn").await, &b"durable|uns\0\xff"[..]);
    });
}

#[test]
fn an_empty_synced_append_makes_a_new_file_durable() {
    let storage = MemoryStorage::new();
    block_on(async {
        let mut appender = storage.create("wal/3").await.expect("create");
        append(&mut appender, b"", Durability::Synced).await;
        let closed = storage.create("sst/1").await.expect("create");
        closed.close().await.expect("close syncs");
        storage.simulate_power_loss();
        assert_eq!(read(&storage, "wal/3").await, &b""[..]);
        assert_eq!(read(&storage, "sst/1").await, &b""[..]);
    });
}

#[test]
fn put_and_put_if_absent_survive_power_loss_and_delete_is_durable() {
    let storage = MemoryStorage::new();
    block_on(async {
        put(&storage, "manifest/current", b"v1").await;
        let created = storage
            .put_if_absent("manifest/1", Bytes::from_static(b"m1"))
            .await;
        created.expect("put_if_absent");
        put(&storage, "gc/gone", b"x").await;
        storage.delete("gc/gone").await.expect("delete");

        storage.simulate_power_loss();
        assert_eq!(read(&storage, "manifest/current").await, &b"v1"[..]);
        assert_eq!(read(&storage, "manifest/1").await, &b"m1"[..]);
        assert_eq!(storage.paths(), vec!["manifest/1", "manifest/current"]);
    });
}

#[test]
fn sync_makes_what_a_dead_appender_left_durable() {
    let storage = MemoryStorage::new();
    block_on(async {
        let mut appender = storage.create("wal/5").await.expect("create");
        append(&mut appender, b"synced ", Durability::Synced).await;
        append(&mut appender, b"buffered", Durability::Buffered).await;
        let mut never_synced = storage.create("wal/6").await.expect("create");
        append(&mut never_synced, b"only in the OS", Durability::Buffered).await;
        drop((appender, never_synced)); // the process that wrote them is gone

        storage.sync("wal/5").await.expect("sync");
        storage.sync("wal/6").await.expect("sync");
        storage.simulate_power_loss();
        assert_eq!(read(&storage, "wal/5").await, &b"synced buffered"[..]);
        assert_eq!(read(&storage, "wal/6").await, &b"only in the OS"[..]);
    });
}

#[test]
fn syncs_in_flight_make_nothing_durable_until_the_power_loss() {
    let storage = MemoryStorage::new();
    block_on(async {
        let mut appender = storage.create("wal/5").await.expect("create");
        append(&mut appender, b"durable ", Durability::Synced).await;
        storage.set_syncs_in_flight(true);
        append(&mut appender, b"in flight", Durability::Synced).await;
        storage.sync("wal/5").await.expect("sync");
        assert_eq!(read(&storage, "wal/5").await, &b"durable in flight"[..]);
        storage.simulate_power_loss();
        assert_eq!(read(&storage, "wal/5").await, &b"durable "[..]);

        // The power loss ended the syncs in flight.
        let mut next = storage.create("wal/6").await.expect("create");
        append(&mut next, b"synced", Durability::Synced).await;
        storage.simulate_power_loss();
        assert_eq!(read(&storage, "wal/6").await, &b"synced"[..]);
    });
}

#[test]
fn an_appender_from_before_a_power_loss_is_dead() {
    let storage = MemoryStorage::new();
    block_on(async {
        let mut appender = storage.create("wal/4").await.expect("create");
        append(&mut appender, b"kept", Durability::Synced).await;
        storage.simulate_power_loss();

        let late = appender
            .append(Bytes::from_static(b"late"), Durability::Synced)
            .await;
        let error = late.expect_err("an appender from before the power loss must fail");
        assert_eq!(error.kind, StorageErrorKind::Io);
        assert!(error.to_string().contains("lost power"), "{error}");
        let closed = appender.close().await;
        assert_eq!(kind_of(closed), StorageErrorKind::Io);
        assert_eq!(read(&storage, "wal/4").await, &b"kept"[..]);
    });
}

#[test]
fn an_appender_of_a_deleted_or_replaced_file_fails() {
    let storage = MemoryStorage::new();
    block_on(async {
        let mut appender = storage.create("wal/5").await.expect("create");
        put(&storage, "wal/5", b"replaced").await;
        let late = appender
            .append(Bytes::from_static(b"x"), Durability::Buffered)
            .await;
        assert_eq!(kind_of(late), StorageErrorKind::NotFound);
        assert_eq!(read(&storage, "wal/5").await, &b"replaced"[..]);
    });
}

#[test]
fn a_fork_is_independent_and_keeps_the_durability_state() {
    let storage = MemoryStorage::new();
    block_on(async {
        let mut appender = storage.create("wal/6").await.expect("create");
        append(&mut appender, b"durable ", Durability::Synced).await;
        append(&mut appender, b"volatile", Durability::Buffered).await;
        let fork = storage.fork();

        put(&storage, "only/original", b"o").await;
        put(&fork, "only/fork", b"f").await;
        append(&mut appender, b" more", Durability::Synced).await;
        assert_eq!(storage.paths(), vec!["only/original", "wal/6"]);
        assert_eq!(fork.paths(), vec!["only/fork", "wal/6"]);
        assert_eq!(read(&fork, "wal/6").await, &b"durable volatile"[..]);

        fork.simulate_power_loss();
        assert_eq!(read(&fork, "wal/6").await, &b"durable "[..]);
        assert_eq!(read(&storage, "wal/6").await, &b"durable volatile more"[..]);
        let still_alive = appender
            .append(Bytes::from_static(b"!"), Durability::Buffered)
            .await;
        still_alive.expect("a power loss of the fork does not touch the original");
    });
}

#[test]
fn truncate_cuts_bytes_and_durable_length() {
    let storage = MemoryStorage::new();
    block_on(async {
        put(&storage, "sst/1", b"0123456789").await;
        storage.truncate("sst/1", 4).expect("truncate");
        assert_eq!(read(&storage, "sst/1").await, &b"0123"[..]);
        storage
            .truncate("sst/1", 100)
            .expect("truncating to more is a no-op");
        storage.simulate_power_loss();
        assert_eq!(read(&storage, "sst/1").await, &b"0123"[..]);
        assert_eq!(
            kind_of(storage.truncate("missing", 0)),
            StorageErrorKind::NotFound
        );
    });
}

#[test]
fn corrupt_flips_one_byte() {
    let storage = MemoryStorage::new();
    block_on(async {
        put(&storage, "sst/2", b"abc").await;
        storage.corrupt("sst/2", 1, 0x20).expect("corrupt");
        assert_eq!(read(&storage, "sst/2").await, &b"aBc"[..]);
        assert_eq!(
            kind_of(storage.corrupt("sst/2", 3, 1)),
            StorageErrorKind::UnexpectedEof
        );
        assert_eq!(
            kind_of(storage.corrupt("missing", 0, 1)),
            StorageErrorKind::NotFound
        );
        storage.simulate_power_loss();
        assert_eq!(read(&storage, "sst/2").await, &b"aBc"[..]);
    });
}

#[test]
fn clones_share_files_and_describe_themselves() {
    let storage = MemoryStorage::default();
    let clone = storage.clone();
    block_on(put(&clone, "shared", b"yes"));
    assert_eq!(storage.paths(), vec!["shared"]);
    assert_eq!(storage.location(), "memory");
    assert!(storage.supports_durable_append());
    let debug = format!("{storage:?}");
    assert!(
        debug.contains("MemoryStorage") && debug.contains("files: 1"),
        "{debug}"
    );
}

#[test]
fn every_operation_completes_at_its_first_poll() {
    let storage = MemoryStorage::new();
    let data = || Bytes::from_static(b"x");
    let ready = |future: crate::BoxFuture<'_, bool>| {
        futures_lite::future::block_on(futures_lite::future::poll_once(future))
            .expect("the operation completes at its first poll")
    };
    assert!(ready(Box::pin(async {
        storage.put("a", data()).await.is_ok()
    })));
    assert!(ready(Box::pin(async {
        storage.put_if_absent("b", data()).await.is_ok()
    })));
    assert!(ready(Box::pin(async { storage.read("a").await.is_ok() })));
    assert!(ready(Box::pin(async {
        storage.read_range("a", 0..1).await.is_ok()
    })));
    assert!(ready(Box::pin(async { storage.size("a").await.is_ok() })));
    assert!(ready(Box::pin(async { storage.list("").await.is_ok() })));
    assert!(ready(Box::pin(async { storage.delete("b").await.is_ok() })));
    assert!(ready(Box::pin(async {
        let mut appender = storage.create("c").await.expect("create");
        appender.append(data(), Durability::Synced).await.is_ok() && appender.close().await.is_ok()
    })));
}
