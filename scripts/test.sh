#!/usr/bin/env bash
# Runs every test of the workspace: formatting, lints (including the determinism bans in
# clippy.toml), unit tests, integration tests on every runtime, and doc tests.
# This is the command CI runs (.ci/run), nothing hidden beside it.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test (unit, integration, doc tests)"
cargo test --workspace --locked

step "all tests passed"
