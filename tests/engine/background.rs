//! Background work: `RuntimeExt::run_background`, on which compaction merges. On tokio and smol
//! it runs on the background pool — threads named `damselfly-background-N`, at the lowest
//! scheduling priority on Linux — and gives back the job's value, or its panic as
//! `TaskError::Panicked`, without losing a thread to the panic. (On the simulator it runs
//! inline, like a blocking job: `simulation/tests/tasks.rs`.)

use damselfly::runtime::{RuntimeExt, TaskError};

use crate::common::*;

/// The calling thread's name and, on Linux, its nice value (field 19 of its `stat`).
fn this_thread() -> (String, Option<i32>) {
    let name = std::thread::current().name().unwrap_or_default().to_owned();
    let nice = std::fs::read_to_string("/proc/thread-self/stat")
        .ok()
        .and_then(|stat| {
            let after_name = &stat[stat.rfind(')')? + 1..];
            after_name.split_whitespace().nth(16)?.parse().ok()
        });
    (name, nice)
}

async fn background_jobs_run_at_the_lowest_priority(runtime: Rt) -> Result<(), damselfly::Error> {
    let (name, nice) = runtime
        .run_background("where", this_thread)
        .await
        .expect("the job runs");
    assert!(name.starts_with("damselfly-background-"), "ran on {name:?}");
    if cfg!(target_os = "linux") {
        assert_eq!(nice, Some(19), "nice of {name}");
    }
    let (caller, _) = this_thread();
    assert!(!caller.starts_with("damselfly-background-"));

    // Every pool thread survives a panicking job: one more job than there are threads still
    // runs after as many panics.
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    for _ in 0..threads {
        match runtime
            .run_background("bad", || -> u8 { panic!("background kaboom") })
            .await
        {
            Err(TaskError::Panicked { task, message }) => {
                assert_eq!(task, "bad");
                assert!(message.contains("background kaboom"), "{message}");
            }
            other => panic!("expected the panic, got {other:?}"),
        }
    }
    let value = runtime.run_background("after", || 7_u8).await;
    assert_eq!(value, Ok(7));
    Ok(())
}

#[test]
fn tokio() {
    run_on_tokio(background_jobs_run_at_the_lowest_priority);
}

#[test]
fn smol() {
    run_on_smol(background_jobs_run_at_the_lowest_priority);
}
