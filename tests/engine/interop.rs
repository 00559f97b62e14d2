//! Other tools read damselfly's files: pyarrow opens every SST, DuckDB reads the live table from
//! the SSTs the manifest names (as docs/reading-from-other-tools.md shows), and both read a
//! snapshot exported with `export_parquet`. Uses the real DuckDB and pyarrow from PyPI.
//!
//! The Python interpreter is `$DAMSELFLY_PYTHON` (or `python3`); `scripts/test.sh` installs
//! DuckDB and pyarrow into `.ci/cache/venv` and sets it. Without them the test is skipped —
//! unless `DAMSELFLY_REQUIRE_INTEROP` is set, as it is in CI, where their absence is a failure.

// The test runs Python and writes its expected rows to a file.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::process::Command;

use crate::common::*;
use damselfly::runtime::TokioRuntime;

fn python() -> Option<String> {
    let python = std::env::var("DAMSELFLY_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let ready = Command::new(&python)
        .args(["-c", "import duckdb, pyarrow"])
        .status()
        .is_ok_and(|status| status.success());
    if ready {
        return Some(python);
    }
    let advice = format!("{python} cannot import duckdb and pyarrow (pip install duckdb pyarrow)");
    if std::env::var_os("DAMSELFLY_REQUIRE_INTEROP").is_some() {
        panic!("{advice}");
    }
    eprintln!("skipping the interop test: {advice}");
    None
}

#[test]
fn duckdb_and_pyarrow_read_the_ssts_and_an_export() {
    let Some(python) = python() else {
        return;
    };
    let folder = temp_dir();
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let expected = tokio
        .block_on(async {
            let db = events_builder()
                .on_disk(folder.path())?
                .open(TokioRuntime::current())
                .await?;
            let ids: Vec<u64> = (0..1000).collect();
            db.ingest(events(&ids, 0)).await?;
            db.flush().await?;
            let updated: Vec<u64> = (0..100).collect();
            db.ingest(events(&updated, 1)).await?;
            let deleted: Vec<u64> = (100..150).collect();
            db.ingest_with_tombstones(events(&deleted, 0), vec![true; 50])
                .await?;
            db.flush().await?;
            db.ingest(events(&(1000..1010).collect::<Vec<_>>(), 0))
                .await?;
            db.flush().await?;
            let summary = db
                .begin_snapshot()
                .await?
                .export_parquet(folder.path().join("export.parquet"))
                .await?;
            let live = ids_and_scores(&db).await?;
            assert_eq!(summary.rows, live.len() as u64);
            db.close().await?;
            Ok::<_, damselfly::Error>(live)
        })
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(expected.len(), 1000 - 50 + 10);

    let expected_file = folder.path().join("expected.txt");
    let lines: Vec<String> = expected
        .iter()
        .map(|(id, score)| format!("{id} {score}"))
        .collect();
    std::fs::write(&expected_file, lines.join("\n")).expect("the expected rows are written");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/engine/read_database.py");
    let output = Command::new(python)
        .arg(script)
        .arg(folder.path())
        .arg(folder.path().join("export.parquet"))
        .arg(&expected_file)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the readers disagree:\n{stdout}\n{stderr}"
    );
    assert!(stdout.starts_with("ok: 3 SSTs"), "{stdout}");
}
