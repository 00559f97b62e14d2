//! Runs that go wrong say so: a deadlock is reported as stuck with the pending tasks, panics
//! surface (through a join handle, or out of `block_on` for raw tasks), and `block_on` refuses
//! to be entered twice.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use damselfly_runtimes::{Runtime, RuntimeExt, TaskError, panic_message};
use damselfly_sim::SimRuntime;

#[test]
fn a_deadlock_panics_as_stuck_naming_the_tasks_and_seed() {
    let sim = SimRuntime::new(99);
    let runtime = sim.clone();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        sim.block_on(async move {
            // The sender stays alive in this future, so the receiver waits forever.
            let (_sender, receiver) = async_channel::unbounded::<()>();
            let waiter = runtime.spawn("waiter-on-silent-channel", async move {
                let _ = receiver.recv().await;
            });
            waiter.await
        })
    }));
    let message = panic_message(outcome.expect_err("a deadlock must panic").as_ref());
    assert!(message.contains("stuck"), "{message}");
    assert!(message.contains("deadlock"), "{message}");
    assert!(message.contains("waiter-on-silent-channel"), "{message}");
    assert!(message.contains("main"), "{message}");
    assert!(message.contains("seed: 99"), "{message}");
    sim.shutdown();
    assert_eq!(sim.task_count(), 0);
}

#[test]
fn a_task_panic_surfaces_through_its_join_handle() {
    let sim = SimRuntime::new(7);
    let runtime = sim.clone();
    let result = sim.block_on(async move {
        let handle = runtime.spawn("exploding-task", async {
            panic!("kaboom");
        });
        handle.await
    });
    match result {
        Err(TaskError::Panicked { task, message }) => {
            assert_eq!(task, "exploding-task");
            assert!(message.contains("kaboom"), "{message}");
        }
        other => panic!("expected a panic report, got {other:?}"),
    }
    assert_eq!(sim.task_count(), 0);
}

#[test]
fn a_raw_task_panic_propagates_out_of_block_on() {
    let sim = SimRuntime::new(8);
    sim.spawn_boxed(
        "raw-exploding-task",
        Box::pin(async {
            panic!("raw kaboom");
        }),
    );
    let runtime = sim.clone();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        sim.block_on(async move { runtime.sleep(Duration::from_secs(1)).await })
    }));
    let message = panic_message(outcome.expect_err("the panic must propagate").as_ref());
    assert!(message.contains("raw kaboom"), "{message}");
    assert_eq!(sim.task_count(), 0, "the panicked task is forgotten");
    // The runtime is still usable.
    let runtime = sim.clone();
    let value = sim.block_on(async move {
        runtime.sleep(Duration::from_secs(1)).await;
        5
    });
    assert_eq!(value, 5);
}

#[test]
fn a_panic_in_the_main_future_propagates_and_leaves_the_runtime_usable() {
    let sim = SimRuntime::new(9);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        sim.block_on(async { panic!("main kaboom") });
    }));
    let message = panic_message(outcome.expect_err("the panic must propagate").as_ref());
    assert!(message.contains("main kaboom"), "{message}");
    assert_eq!(sim.block_on(async { 3 }), 3);
}

#[test]
fn block_on_inside_a_task_panics() {
    let sim = SimRuntime::new(10);
    let runtime = sim.clone();
    let result = sim.block_on(async move {
        let inner = runtime.clone();
        let handle = runtime.spawn("nested-block-on", async move { inner.block_on(async {}) });
        handle.await
    });
    match result {
        Err(TaskError::Panicked { message, .. }) => {
            assert!(message.contains("already running"), "{message}");
        }
        other => panic!("expected a panic report, got {other:?}"),
    }
}

#[test]
fn block_on_inside_the_main_future_panics() {
    let sim = SimRuntime::new(11);
    let runtime = sim.clone();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        sim.block_on(async move { runtime.block_on(async {}) });
    }));
    let message = panic_message(outcome.expect_err("re-entry must panic").as_ref());
    assert!(message.contains("already running"), "{message}");
    assert_eq!(sim.block_on(async { 4 }), 4);
}
