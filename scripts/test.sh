#!/usr/bin/env bash
# Runs every test of the workspace: formatting, lints (including the determinism bans in
# clippy.toml), unit tests, integration tests on every runtime, doc tests, and the interop tests
# with the real DuckDB and pyarrow (installed here, into .ci/cache/venv).
# This is the command CI runs (.ci/run), nothing hidden beside it.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "Python readers for the interop tests: DuckDB and pyarrow from PyPI"
venv=.ci/cache/venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check duckdb==2.0.0 pyarrow==26.0.1
export DAMSELFLY_PYTHON="$PWD/$venv/bin/python"
export DAMSELFLY_REQUIRE_INTEROP=1

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test (unit, integration, doc tests)"
cargo test --workspace --locked

step "all tests passed"
