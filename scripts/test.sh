#!/usr/bin/env bash
# Runs every test of the workspace: formatting, lints (including the determinism bans in
# clippy.toml), unit tests, integration tests on every runtime, doc tests, and the interop tests
# with the real DuckDB and pyarrow and the object-storage tests against a real S3-compatible
# server (moto; all installed here, into .ci/cache/venv).
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

step "A local S3-compatible server for the object-storage tests: moto from PyPI"
"$venv/bin/pip" install --quiet --disable-pip-version-check 'moto[s3]==5.2.5' flask==3.1.3 \
  flask-cors==6.0.5
s3_port=$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$venv/bin/moto_server" -H 127.0.0.1 -p "$s3_port" >.ci/cache/moto.log 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true' EXIT
export DAMSELFLY_S3_ENDPOINT="http://127.0.0.1:$s3_port"
export DAMSELFLY_S3_BUCKET=damselfly-tests
export DAMSELFLY_REQUIRE_S3=1
"$venv/bin/python" - <<'PY'
import os, time, urllib.request
url = os.environ["DAMSELFLY_S3_ENDPOINT"] + "/" + os.environ["DAMSELFLY_S3_BUCKET"]
for _ in range(300):
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="PUT"), timeout=2)
        break
    except OSError:
        time.sleep(0.1)
else:
    raise SystemExit("the S3 server did not start; see .ci/cache/moto.log")
PY

step "OpenSSL headers for the S3 client (reqwest's native TLS)"
if ! pkg-config --exists openssl 2>/dev/null; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq && $sudo apt-get install -y -qq libssl-dev pkg-config
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

step "cargo test (unit, integration, doc tests)"
cargo test --workspace --all-features --locked

step "all tests passed"
