//! Virtual time: it jumps to the next timer, timers fire in deadline order, cancelled sleeps do
//! not move it, jittered timers fire late but never early, and the watchdog stops a run that
//! would tick forever.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use damselfly_runtimes::{Instant, Runtime, RuntimeExt, panic_message};
use damselfly_sim::SimRuntime;

const HOUR: Duration = Duration::from_secs(60 * 60);

#[test]
fn clocks_start_at_their_origins() {
    let sim = SimRuntime::new(1).with_timer_jitter(0);
    assert_eq!(sim.now(), Instant::from_origin(Duration::ZERO));
    let origin = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    assert_eq!(sim.wall_clock(), origin);
}

#[test]
fn an_hour_long_sleep_jumps_virtual_time() {
    let sim = SimRuntime::new(2).with_timer_jitter(0);
    let runtime = sim.clone();
    let (before, after, wall_after) = sim.block_on(async move {
        let before = runtime.now();
        runtime.sleep(HOUR).await;
        (before, runtime.now(), runtime.wall_clock())
    });
    assert_eq!(before, Instant::from_origin(Duration::ZERO));
    assert_eq!(after - before, HOUR);
    let origin: SystemTime = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    assert_eq!(wall_after, origin + HOUR);
}

#[test]
fn a_zero_sleep_completes_without_moving_time() {
    let sim = SimRuntime::new(3).with_timer_jitter(0);
    let runtime = sim.clone();
    let elapsed = sim.block_on(async move {
        runtime.sleep(Duration::ZERO).await;
        runtime.now().since_origin()
    });
    assert_eq!(elapsed, Duration::ZERO);
}

#[test]
fn timers_fire_in_deadline_order_at_their_deadlines() {
    for seed in 0..10 {
        let sim = SimRuntime::new(seed).with_timer_jitter(0);
        let fired = Arc::new(Mutex::new(Vec::new()));
        let runtime = sim.clone();
        let log = Arc::clone(&fired);
        sim.block_on(async move {
            let mut handles = Vec::new();
            for delay_millis in [30_u64, 10, 50, 20, 40] {
                let (task_runtime, log) = (runtime.clone(), Arc::clone(&log));
                let name = format!("sleeper-{delay_millis}");
                handles.push(runtime.spawn(&name, async move {
                    task_runtime
                        .sleep(Duration::from_millis(delay_millis))
                        .await;
                    let woke_at = task_runtime.now().since_origin();
                    log.lock().expect("log").push((delay_millis, woke_at));
                }));
            }
            for handle in handles {
                handle.await.expect("sleepers do not panic");
            }
        });
        let fired = fired.lock().expect("log").clone();
        let expected: Vec<(u64, Duration)> = [10, 20, 30, 40, 50]
            .into_iter()
            .map(|millis| (millis, Duration::from_millis(millis)))
            .collect();
        assert_eq!(fired, expected, "seed {seed}");
    }
}

#[test]
fn a_cancelled_sleep_does_not_move_time() {
    let sim = SimRuntime::new(4).with_timer_jitter(0);
    let runtime = sim.clone();
    let elapsed = sim.block_on(async move {
        // `or` polls the sleep first (registering its timer), then finishes with the ready
        // branch and drops the sleep.
        futures_lite::future::or(runtime.sleep(HOUR), async {}).await;
        runtime.sleep(Duration::from_millis(1)).await;
        runtime.now().since_origin()
    });
    assert_eq!(elapsed, Duration::from_millis(1));
}

#[test]
fn the_watchdog_stops_a_task_that_ticks_forever() {
    let sim = SimRuntime::new(5)
        .with_timer_jitter(0)
        .with_time_limit(Duration::from_secs(60));
    assert_eq!(sim.time_limit(), Duration::from_secs(60));
    let runtime = sim.clone();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        sim.block_on(async move {
            let ticker = runtime.clone();
            let handle = runtime.spawn("forever-ticker", async move {
                loop {
                    ticker.sleep(Duration::from_secs(1)).await;
                }
            });
            handle.await
        })
    }));
    let message = panic_message(outcome.expect_err("the watchdog must fire").as_ref());
    assert!(message.contains("watchdog"), "{message}");
    assert!(message.contains("forever-ticker"), "{message}");
    assert!(message.contains("main"), "{message}");
    assert!(message.contains("seed: 5"), "{message}");
    assert_eq!(sim.now().since_origin(), Duration::from_secs(60));
    sim.shutdown();
}

#[test]
fn the_default_watchdog_allows_one_hour_per_block_on() {
    let sim = SimRuntime::new(6).with_timer_jitter(0);
    let runtime = sim.clone();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        sim.block_on(async move {
            loop {
                runtime.sleep(Duration::from_secs(7)).await;
            }
        })
    }));
    let message = panic_message(outcome.expect_err("the watchdog must fire").as_ref());
    assert!(message.contains("watchdog"), "{message}");
    // The last tick at or before one hour ran; the next one would pass the limit.
    let last_tick = Duration::from_secs(3600 / 7 * 7);
    assert_eq!(sim.now().since_origin(), last_tick);
    // The limit counts from the start of each block_on.
    let runtime = sim.clone();
    sim.block_on(async move { runtime.sleep(HOUR).await });
    assert_eq!(sim.now().since_origin(), last_tick + HOUR);
}

#[test]
fn jittered_timers_fire_late_never_early_and_reorder_equal_sleeps() {
    let mut reordered = false;
    for seed in 0..40 {
        let sim = SimRuntime::new(seed).with_timer_jitter(25);
        assert_eq!(sim.timer_jitter(), 25);
        let runtime = sim.clone();
        let woke = sim.block_on(async move {
            let handles: Vec<_> = (0..3u64)
                .map(|sleeper| {
                    let task_runtime = runtime.clone();
                    runtime.spawn("sleeper", async move {
                        task_runtime.sleep(Duration::from_millis(100)).await;
                        (task_runtime.now().since_origin(), sleeper)
                    })
                })
                .collect();
            let mut woke = Vec::new();
            for handle in handles {
                woke.push(handle.await.expect("the sleeper finishes"));
            }
            woke
        });
        for &(at, _) in &woke {
            assert!(
                (Duration::from_millis(100)..=Duration::from_millis(125)).contains(&at),
                "seed {seed}: woke at {at:?}"
            );
        }
        let mut by_time = woke.clone();
        by_time.sort();
        reordered |= by_time.iter().map(|&(_, sleeper)| sleeper).ne(0..3);
    }
    assert!(
        reordered,
        "equal sleeps started in order always ended in order"
    );
}

#[test]
fn half_the_seeds_draw_no_jitter_and_the_others_some() {
    let drawn: Vec<u8> = (0..400)
        .map(|seed| SimRuntime::new(seed).timer_jitter())
        .collect();
    let none = drawn.iter().filter(|&&percent| percent == 0).count();
    assert!(
        (150..250).contains(&none),
        "{none} of 400 seeds without jitter"
    );
    assert!(drawn.iter().all(|percent| [0, 5, 25].contains(percent)));
}
