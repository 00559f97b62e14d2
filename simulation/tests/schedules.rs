//! Scheduling policies: each seed draws one, FIFO runs tasks in the order they became runnable,
//! PCT lets the task of highest priority run ahead yet never starves the others, and every
//! policy replays exactly from its seed.

use std::sync::{Arc, Mutex};

use damselfly_runtimes::RuntimeExt;
use damselfly_sim::{PCT_STARVATION_POLLS, SchedulePolicy, SimRuntime};
use futures_lite::future::yield_now;

/// Spawns `tasks` tasks that each log their number `steps` times, yielding between steps, and
/// returns the log in the order the steps ran, with the run's trace hash.
fn interleaving(sim: &SimRuntime, tasks: usize, steps: usize) -> (Vec<usize>, u64) {
    let runtime = sim.clone();
    let log = Arc::new(Mutex::new(Vec::new()));
    let task_log = Arc::clone(&log);
    sim.block_on(async move {
        let handles: Vec<_> = (0..tasks)
            .map(|task| {
                let log = Arc::clone(&task_log);
                runtime.spawn("stepper", async move {
                    for _ in 0..steps {
                        log.lock().expect("the log").push(task);
                        yield_now().await;
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.await.expect("the task finishes");
        }
    });
    let order = log.lock().expect("the log").clone();
    (order, sim.trace_hash())
}

/// How many times the log switches from one task to another.
fn switches(order: &[usize]) -> usize {
    order.windows(2).filter(|pair| pair[0] != pair[1]).count()
}

#[test]
fn every_policy_is_drawn_by_some_seeds() {
    let mut counts = [0usize; 3];
    for seed in 0..1000 {
        match SchedulePolicy::for_seed(seed) {
            SchedulePolicy::Random => counts[0] += 1,
            SchedulePolicy::Pct { change_one_in } => {
                assert!([16, 128, 1024, 8192].contains(&change_one_in));
                counts[1] += 1;
            }
            SchedulePolicy::Fifo => counts[2] += 1,
        }
        assert_eq!(
            SimRuntime::new(seed).policy(),
            SchedulePolicy::for_seed(seed)
        );
    }
    // 45%, 45% and 10% of the seeds, give or take.
    assert!((350..550).contains(&counts[0]), "{counts:?}");
    assert!((350..550).contains(&counts[1]), "{counts:?}");
    assert!((50..150).contains(&counts[2]), "{counts:?}");
}

#[test]
fn fifo_runs_tasks_in_the_order_they_became_runnable() {
    let sim = SimRuntime::with_policy(7, SchedulePolicy::Fifo);
    let (order, _) = interleaving(&sim, 4, 3);
    // Round robin: each yield puts a task at the back of the queue.
    assert_eq!(order, [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3]);
}

#[test]
fn pct_lets_one_task_run_ahead_and_uniform_choice_interleaves() {
    let steps = 10;
    let never = SchedulePolicy::Pct {
        change_one_in: u32::MAX,
    };
    for seed in 0..20 {
        // Without priority changes, the task of highest priority runs all its steps before any
        // other runs (fewer steps than the starvation bound): the log is grouped by task.
        let (order, _) = interleaving(&SimRuntime::with_policy(seed, never), 4, steps);
        assert_eq!(order.len(), 4 * steps);
        assert_eq!(switches(&order), 3, "seed {seed}: {order:?}");
    }
    let (order, _) = interleaving(
        &SimRuntime::with_policy(1, SchedulePolicy::Random),
        4,
        steps,
    );
    assert!(switches(&order) > 10, "{order:?}");
}

#[test]
fn pct_never_starves_a_task_behind_one_that_yields_in_a_loop() {
    let never = SchedulePolicy::Pct {
        change_one_in: u32::MAX,
    };
    for seed in 0..20 {
        let sim = SimRuntime::with_policy(seed, never);
        let runtime = sim.clone();
        let spins = sim.block_on(async move {
            let flag = Arc::new(Mutex::new(false));
            let spinner_flag = Arc::clone(&flag);
            let spinner = runtime.spawn("spinner", async move {
                let mut spins = 0u32;
                while !*spinner_flag.lock().expect("the flag") {
                    spins += 1;
                    yield_now().await;
                }
                spins
            });
            let setter = runtime.spawn("setter", async move {
                *flag.lock().expect("the flag") = true;
            });
            setter.await.expect("the setter finishes");
            spinner.await.expect("the spinner finishes")
        });
        // Whatever the priorities, the setter ran within the starvation bound.
        assert!(
            spins <= 2 * PCT_STARVATION_POLLS,
            "seed {seed}: {spins} spins"
        );
    }
}

#[test]
fn every_policy_replays_exactly_from_its_seed() {
    for policy in [
        SchedulePolicy::Random,
        SchedulePolicy::Pct { change_one_in: 4 },
        SchedulePolicy::Fifo,
    ] {
        let first = interleaving(&SimRuntime::with_policy(11, policy), 5, 8);
        let second = interleaving(&SimRuntime::with_policy(11, policy), 5, 8);
        assert_eq!(first, second, "{policy:?}");
    }
    // Random priority changes interleave the tasks, differently for another seed.
    let changing = SchedulePolicy::Pct { change_one_in: 4 };
    let (order, _) = interleaving(&SimRuntime::with_policy(11, changing), 5, 8);
    assert!(switches(&order) > 4, "{order:?}");
    let (other, _) = interleaving(&SimRuntime::with_policy(12, changing), 5, 8);
    assert_ne!(order, other);
}
