//! The fault-injecting storage on its own: handles die at a crash, a power loss keeps only what
//! was durable (or what the plan lets survive), a power loss armed for a sync comes in the middle
//! of one, per-call faults follow the plan and go into the ledger, and crash during recovery
//! comes at the call it was set for.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use damselfly_runtimes::{Durability, StorageErrorKind};
use damselfly_sim::{FaultKind, FaultPlan, PowerCutAt, SimRuntime, SimStorage};

fn storage(plan: FaultPlan) -> (SimRuntime, SimStorage) {
    let sim = SimRuntime::new(11);
    let storage = SimStorage::new(&sim, plan);
    (sim, storage)
}

#[test]
fn a_crash_kills_old_handles_and_keeps_every_written_byte() {
    let (sim, storage) = storage(FaultPlan::none());
    let deaths = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&deaths);
    storage.on_death(move || {
        counted.fetch_add(1, Ordering::SeqCst);
    });
    let old = storage.handle();
    sim.block_on(async {
        let mut file = old.create("wal/1").await.expect("create");
        let buffered = Bytes::from_static(b"buffered");
        file.append(buffered, Durability::Buffered)
            .await
            .expect("append");
        storage.crash();
        let late = file.append(Bytes::from_static(b"late"), Durability::Buffered);
        assert_eq!(late.await.expect_err("dead").kind, StorageErrorKind::Io);
        assert!(
            old.read("wal/1").await.is_err(),
            "a dead handle reads nothing"
        );
        let new = storage.handle();
        assert_eq!(new.read("wal/1").await.expect("read"), &b"buffered"[..]);
    });
    assert_eq!(deaths.load(Ordering::SeqCst), 1);
    assert_eq!(storage.ledger().count(FaultKind::ProcessCrash), 1);
}

#[test]
fn a_power_loss_keeps_what_was_synced() {
    let (sim, storage) = storage(FaultPlan::none());
    let handle = storage.handle();
    sim.block_on(async {
        let mut file = handle.create("wal/1").await.expect("create");
        let synced = Bytes::from_static(b"synced ");
        file.append(synced, Durability::Synced).await.expect("sync");
        let buffered = Bytes::from_static(b"buffered");
        file.append(buffered, Durability::Buffered)
            .await
            .expect("append");
        let mut never = handle.create("wal/2").await.expect("create");
        never
            .append(Bytes::from_static(b"x"), Durability::Buffered)
            .await
            .expect("append");
        storage.power_loss();
        let new = storage.handle();
        assert_eq!(new.read("wal/1").await.expect("read"), &b"synced "[..]);
        let gone = new.read("wal/2").await.expect_err("never synced");
        assert_eq!(gone.kind, StorageErrorKind::NotFound);
    });
    assert_eq!(storage.ledger().count(FaultKind::PowerLoss), 1);
}

#[test]
fn a_power_loss_armed_for_a_sync_comes_in_its_middle() {
    let (sim, storage) = storage(FaultPlan::none());
    let handle = storage.handle();
    sim.block_on(async {
        let mut file = handle.create("wal/1").await.expect("create");
        let first = Bytes::from_static(b"first ");
        file.append(first, Durability::Synced).await.expect("sync");
        // Buffered writes pass; the next sync is where the power goes out.
        storage.power_loss_at_next(PowerCutAt::Sync);
        let buffered = Bytes::from_static(b"buffered ");
        file.append(buffered, Durability::Buffered)
            .await
            .expect("append");
        let cut = file.append(Bytes::from_static(b"synced?"), Durability::Synced);
        let error = cut.await.expect_err("the power went out");
        assert!(error.to_string().contains("during the call"), "{error}");
        assert!(!storage.power_loss_if_armed(), "it came already");
        // Without torn writes in the plan, what the sync did not finish is lost.
        let new = storage.handle();
        assert_eq!(new.read("wal/1").await.expect("read"), &b"first "[..]);
        // The files sync again afterwards.
        let mut next = new.create("wal/2").await.expect("create");
        next.append(Bytes::from_static(b"kept"), Durability::Synced)
            .await
            .expect("sync");
        storage.power_loss();
        let last = storage.handle();
        assert_eq!(last.read("wal/2").await.expect("read"), &b"kept"[..]);
    });
    let ledger = storage.ledger();
    assert_eq!(ledger.count(FaultKind::PowerLoss), 2);
    assert!(ledger.records[0].detail.contains("during"), "{ledger:?}");
}

#[test]
fn a_power_loss_armed_for_a_create_loses_the_new_file() {
    let (sim, storage) = storage(FaultPlan::none());
    let handle = storage.handle();
    storage.power_loss_at_next(PowerCutAt::Create);
    sim.block_on(async {
        handle
            .put("kept", Bytes::from_static(b"put"))
            .await
            .expect("put");
        let created = handle.create("wal/1").await;
        assert!(created.is_err(), "the power went out");
        let new = storage.handle();
        assert_eq!(new.read("kept").await.expect("read"), &b"put"[..]);
        let lost = new.read("wal/1").await.expect_err("never durable");
        assert_eq!(lost.kind, StorageErrorKind::NotFound);
    });
    assert_eq!(storage.ledger().count(FaultKind::LostCreate), 1);
}

#[test]
fn an_armed_power_loss_without_a_sync_is_cut_on_demand() {
    let (sim, storage) = storage(FaultPlan::none());
    let handle = storage.handle();
    storage.power_loss_at_next(PowerCutAt::Sync);
    sim.block_on(async {
        handle
            .put("a", Bytes::from_static(b"put"))
            .await
            .expect("put");
    });
    assert!(storage.power_loss_if_armed());
    assert_eq!(storage.ledger().count(FaultKind::PowerLoss), 1);
    assert!(!storage.power_loss_if_armed());
}

#[test]
fn per_call_faults_follow_the_plan_and_the_switch() {
    let plan = FaultPlan::none().with(FaultKind::ListError, 1);
    let (sim, storage) = storage(plan);
    let handle = storage.handle();
    sim.block_on(async {
        assert!(handle.list("wal").await.is_ok(), "faults start off");
        storage.set_faults_active(true);
        let failed = handle.list("wal").await.expect_err("one in one fails");
        assert!(failed.to_string().contains("injected"), "{failed}");
        assert!(
            handle.read("nothing").await.is_err(),
            "missing, not injected"
        );
        storage.set_faults_active(false);
        assert!(handle.list("wal").await.is_ok());
    });
    assert_eq!(storage.ledger().count(FaultKind::ListError), 1);
}

#[test]
fn a_crash_during_recovery_comes_at_the_call_it_was_set_for() {
    let (sim, storage) = storage(FaultPlan::none());
    let handle = storage.handle();
    storage.crash_after(2);
    sim.block_on(async {
        handle.list("").await.expect("first call");
        handle.list("").await.expect("second call");
        assert!(handle.list("").await.is_err(), "the third call crashes");
        assert!(handle.list("").await.is_err(), "and the handle is dead");
        assert!(storage.handle().list("").await.is_ok());
    });
    assert_eq!(storage.ledger().count(FaultKind::CrashDuringRecovery), 1);
}
