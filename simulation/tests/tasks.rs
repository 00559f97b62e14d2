//! Task life cycles: blocking jobs run inline, dropped handles detach, pending tasks survive
//! between `block_on` calls, `shutdown` drops what is left, and randomness follows the seed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use damselfly_runtimes::{Runtime, RuntimeExt, TaskError};
use damselfly_sim::SimRuntime;

/// Sets its flag when dropped.
struct DropGuard(Arc<AtomicBool>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn run_blocking_runs_inline_and_returns_its_value() {
    let sim = SimRuntime::new(1);
    let runtime = sim.clone();
    let (ran_at_call, result, elapsed) = sim.block_on(async move {
        let ran = Arc::new(AtomicBool::new(false));
        let job_ran = Arc::clone(&ran);
        let pending = runtime.run_blocking("sum", move || {
            job_ran.store(true, Ordering::SeqCst);
            (1..=10_u64).sum::<u64>()
        });
        // Inline: the job ran at the call, before anything awaited it.
        let ran_at_call = ran.load(Ordering::SeqCst);
        (ran_at_call, pending.await, runtime.now().since_origin())
    });
    assert!(ran_at_call);
    assert_eq!(result, Ok(55));
    assert_eq!(elapsed, Duration::ZERO);
}

#[test]
fn background_jobs_run_inline_like_blocking_ones() {
    let sim = SimRuntime::new(4);
    let runtime = sim.clone();
    let (ran_at_call, result) = sim.block_on(async move {
        let ran = Arc::new(AtomicBool::new(false));
        let job_ran = Arc::clone(&ran);
        let pending = runtime.run_background("merge", move || {
            job_ran.store(true, Ordering::SeqCst);
            7_u8
        });
        (ran.load(Ordering::SeqCst), pending.await)
    });
    assert!(
        ran_at_call,
        "the simulator keeps background work deterministic: inline"
    );
    assert_eq!(result, Ok(7));
}

#[test]
fn a_panicking_blocking_job_is_reported() {
    let sim = SimRuntime::new(2);
    let runtime = sim.clone();
    let result = sim.block_on(async move {
        runtime
            .run_blocking("bad-job", || -> u64 { panic!("job kaboom") })
            .await
    });
    match result {
        Err(TaskError::Panicked { task, message }) => {
            assert_eq!(task, "bad-job");
            assert!(message.contains("job kaboom"), "{message}");
        }
        other => panic!("expected a panic report, got {other:?}"),
    }
}

#[test]
fn a_dropped_join_handle_detaches_the_task() {
    let sim = SimRuntime::new(3);
    let finished = Arc::new(AtomicBool::new(false));
    let runtime = sim.clone();
    let task_finished = Arc::clone(&finished);
    sim.block_on(async move {
        let task_runtime = runtime.clone();
        let handle = runtime.spawn("detached", async move {
            task_runtime.sleep(Duration::from_millis(10)).await;
            task_finished.store(true, Ordering::SeqCst);
        });
        drop(handle);
        runtime.sleep(Duration::from_millis(20)).await;
    });
    assert!(finished.load(Ordering::SeqCst));
    assert_eq!(sim.task_count(), 0);
}

#[test]
fn pending_tasks_continue_at_the_next_block_on() {
    let sim = SimRuntime::new(4);
    let finished = Arc::new(AtomicBool::new(false));
    let task_runtime = sim.clone();
    let task_finished = Arc::clone(&finished);
    drop(sim.spawn("sleeps-across-calls", async move {
        task_runtime.sleep(Duration::from_secs(1)).await;
        task_finished.store(true, Ordering::SeqCst);
    }));
    sim.block_on(async {});
    assert!(!finished.load(Ordering::SeqCst));
    assert_eq!(sim.task_count(), 1);
    let runtime = sim.clone();
    sim.block_on(async move { runtime.sleep(Duration::from_secs(2)).await });
    assert!(finished.load(Ordering::SeqCst));
    assert_eq!(sim.task_count(), 0);
}

#[test]
fn shutdown_drops_pending_tasks_and_their_runtime_handles() {
    let sim = SimRuntime::new(5);
    let dropped = Arc::new(AtomicBool::new(false));
    let guard = DropGuard(Arc::clone(&dropped));
    // The task holds a runtime handle: a cycle only `shutdown` breaks.
    let task_runtime = sim.clone();
    drop(sim.spawn("never-finishes", async move {
        let _guard = guard;
        loop {
            task_runtime.sleep(Duration::from_secs(1)).await;
        }
    }));
    let runtime = sim.clone();
    sim.block_on(async move { runtime.sleep(Duration::from_millis(1500)).await });
    assert!(!dropped.load(Ordering::SeqCst));
    assert_eq!(sim.task_count(), 1);
    sim.shutdown();
    assert!(dropped.load(Ordering::SeqCst));
    assert_eq!(sim.task_count(), 0);
}

#[test]
fn shutdown_inside_block_on_spares_the_main_future() {
    let sim = SimRuntime::new(9).with_timer_jitter(0);
    let dropped = Arc::new(AtomicBool::new(false));
    let guard = DropGuard(Arc::clone(&dropped));
    let runtime = sim.clone();
    let value = sim.block_on(async move {
        let task_runtime = runtime.clone();
        drop(runtime.spawn("stopped-early", async move {
            let _guard = guard;
            task_runtime.sleep(Duration::from_secs(3600)).await;
        }));
        runtime.sleep(Duration::from_millis(1)).await;
        runtime.shutdown();
        // The dropped task's timer went with it: only this sleep moves time now.
        runtime.sleep(Duration::from_millis(1)).await;
        runtime.now().since_origin()
    });
    assert!(dropped.load(Ordering::SeqCst));
    assert_eq!(value, Duration::from_millis(2));
}

#[test]
fn shutdown_also_drops_tasks_spawned_by_destructors() {
    /// Spawns a task when dropped; the task sets `polled` if it ever runs.
    struct SpawnOnDrop {
        runtime: SimRuntime,
        polled: Arc<AtomicBool>,
        dropped: Arc<AtomicBool>,
    }
    impl Drop for SpawnOnDrop {
        fn drop(&mut self) {
            let (polled, guard) = (
                Arc::clone(&self.polled),
                DropGuard(Arc::clone(&self.dropped)),
            );
            self.runtime.spawn_boxed(
                "spawned-while-dropping",
                Box::pin(async move {
                    let _guard = guard;
                    polled.store(true, Ordering::SeqCst);
                }),
            );
        }
    }
    let sim = SimRuntime::new(6);
    let (polled, dropped) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let on_drop = SpawnOnDrop {
        runtime: sim.clone(),
        polled: Arc::clone(&polled),
        dropped: Arc::clone(&dropped),
    };
    sim.spawn_boxed(
        "spawns-when-dropped",
        Box::pin(async move {
            let _on_drop = on_drop;
            futures_lite::future::pending::<()>().await;
        }),
    );
    sim.shutdown();
    assert_eq!(sim.task_count(), 0);
    assert!(dropped.load(Ordering::SeqCst));
    assert!(!polled.load(Ordering::SeqCst));
}

#[test]
fn random_numbers_follow_the_seed_not_the_schedule() {
    let draw = |seed: u64, spawned_tasks: usize| {
        let sim = SimRuntime::new(seed);
        let runtime = sim.clone();
        sim.block_on(async move {
            for task in 0..spawned_tasks {
                drop(runtime.spawn(&format!("noise-{task}"), async {}));
                futures_lite::future::yield_now().await;
            }
            (0..8).map(|_| runtime.random_u64()).collect::<Vec<u64>>()
        })
    };
    assert_eq!(draw(1, 0), draw(1, 0));
    assert_eq!(
        draw(1, 0),
        draw(1, 10),
        "scheduling consumed the random stream"
    );
    assert_ne!(draw(1, 0), draw(2, 0));
}

#[test]
fn recorded_events_change_the_trace() {
    let run = |extra_event: bool| {
        let sim = SimRuntime::new(7);
        let runtime = sim.clone();
        sim.block_on(async move {
            runtime.sleep(Duration::from_millis(1)).await;
            runtime.record("bytes-written", 4096);
            if extra_event {
                runtime.record("bytes-written", 1);
            }
        });
        (sim.trace_hash(), sim.event_count())
    };
    assert_eq!(run(false), run(false));
    let (plain_hash, plain_count) = run(false);
    let (extra_hash, extra_count) = run(true);
    assert_ne!(plain_hash, extra_hash);
    assert_eq!(extra_count, plain_count + 1);
}

#[test]
fn probes_are_counted_by_name_and_traced() {
    let run = |probes: &[&'static str]| {
        let sim = SimRuntime::new(9);
        let runtime: Arc<dyn Runtime> = Arc::new(sim.clone());
        let probes = probes.to_vec();
        sim.block_on(async move {
            for probe in probes {
                runtime.probe(probe);
            }
        });
        (sim.probe_hits(), sim.trace_hash())
    };
    let (hits, hash) = run(&["wal.torn_tail", "manifest.retry", "wal.torn_tail"]);
    let expected = [("manifest.retry", 1), ("wal.torn_tail", 2)];
    assert_eq!(hits, expected.into_iter().collect());
    let (none, plain) = run(&[]);
    assert!(none.is_empty());
    assert_ne!(hash, plain, "a probe is an event of the trace");
}

#[test]
fn the_handle_is_cheap_to_clone_and_describes_itself() {
    fn assert_send_sync<T: Send + Sync + Clone + std::fmt::Debug>() {}
    assert_send_sync::<SimRuntime>();
    let sim = SimRuntime::new(8);
    assert_eq!(sim.seed(), 8);
    assert_eq!(sim.clone().seed(), 8);
    let description = format!("{sim:?}");
    assert!(description.contains("SimRuntime"), "{description}");
    assert!(description.contains("seed: 8"), "{description}");
}
