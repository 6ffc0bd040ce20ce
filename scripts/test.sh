#!/usr/bin/env bash
# Every test of Sluice, on a fresh Debian 12 machine or a developer's:
#   1. system packages the client tests need (kcat, python3-venv, and chromium with
#      chromium-driver for the console's browser test), if missing;
#   2. a Python venv at .venv with the pinned clients (tests/requirements.txt);
#   3. cargo build --release   (the broker binary, target/release/sluice);
#   4. scripts/check_layers.py (the architecture's invariants: layers, no locks
#      or atomics on the produce/fetch path, no todo!());
#   5. in the background, at nice 10, while step 6 runs: the krafka share consumer
#      (tests/krafka, for test_share_krafka.py), then cargo test --release (unit tests
#      and Rust integration tests);
#   6. pytest tests/clients tests/tools (real clients against the real binary,
#      and the layer checker against planted violations), then, once step 5 is done,
#      tests/clients/test_share_krafka.py;
#   7. node --test tests/kafkajs (kafkajs, a client with its own protocol code in
#      JavaScript, against the real binary; node and npm installed if missing, kafkajs
#      from tests/kafkajs/package-lock.json).
# Runs from any directory, without a terminal, as root (CI) or a user with sudo.
# Exits non-zero if any step fails; later test steps still run when an earlier
# test step fails, so one run shows every failure.
#
# Usage: scripts/test.sh [--setup-only]   (--setup-only: steps 1-2, kafkajs and krafka, then exit)
# Environment:
#   PYTEST_ARGS   extra arguments for pytest, e.g. "-k kcat -x"
#   SKIP_CARGO_TEST=1  skip cargo test in step 5 (the client tests still build the binary)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

SETUP_ONLY=0
case "${1:-}" in
  "") ;;
  --setup-only) SETUP_ONLY=1 ;;
  *) echo "usage: $0 [--setup-only]" >&2; exit 2 ;;
esac

VENV="$ROOT/.venv"
REQUIREMENTS="$ROOT/tests/requirements.txt"
START=$SECONDS
FAILED=()

step() { printf '\n==> [%4ds] %s\n' "$((SECONDS - START))" "$*"; }
note() { printf '    %s\n' "$*"; }

# Rust and pyenv live in the user's home; a non-login shell may not have them on PATH.
for dir in "$HOME/.cargo/bin" "$HOME/.pyenv/shims"; do
  if [[ -d "$dir" && ":$PATH:" != *":$dir:"* ]]; then PATH="$PATH:$dir"; fi
done
export PATH

# --- 1. system packages ---------------------------------------------------------
# make and zlib1g-dev: the `rdkafka` crate (sluice bench) builds librdkafka from its
# bundled source with ./configure and make, against zlib; redis-server: the bench's
# Redis Streams mode is tested against a real one; libfuse3-3: the power-cut file system
# of tests/clients/test_power_cut.py (mfusepy loads it; the tests mount as root);
# chromium and chromium-driver: tests/clients/test_console.py drives the web console in
# headless Chromium over WebDriver (tests/clients/webdriver.py, no selenium).
step "system packages: kcat, python3-venv, make, zlib1g-dev, redis-server, nodejs, npm, libfuse3-3, chromium, chromium-driver"
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
command -v kcat >/dev/null 2>&1 || missing+=(kcat)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v make >/dev/null 2>&1 || missing+=(make)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if command -v dpkg >/dev/null 2>&1; then
  dpkg -s python3-venv >/dev/null 2>&1 || missing+=(python3-venv)
  dpkg -s zlib1g-dev >/dev/null 2>&1 || missing+=(zlib1g-dev)
  dpkg -s libfuse3-3 >/dev/null 2>&1 || missing+=(libfuse3-3)
  # Text in the console's screenshots (chromium's own recommends are not installed).
  dpkg -s fonts-dejavu-core >/dev/null 2>&1 || missing+=(fonts-dejavu-core)
fi
if ((${#missing[@]})); then
  apt_install "${missing[@]}"
else
  note "already installed"
fi
note "$(kcat -V 2>&1 | grep -m1 Version || echo 'kcat: version unknown')"

# --- 2. Python venv ---------------------------------------------------------------
step "python venv at .venv (tests/requirements.txt)"
venv_ok() { [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; }
if ! venv_ok; then
  rm -rf "$VENV"
  # Prefer the python3 on PATH (pyenv's 3.11 here); fall back to Debian's.
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    rm -rf "$VENV"
    /usr/bin/python3 -m venv "$VENV"
  fi
  note "created with $("$VENV/bin/python" --version)"
fi
stamp="$VENV/.requirements.sha256"
want="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  note "installing pinned packages"
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$REQUIREMENTS"
  echo "$want" >"$stamp"
else
  note "up to date"
fi
"$VENV/bin/python" - <<'EOF'
from importlib.metadata import version
import confluent_kafka
print(f"    confluent-kafka {version('confluent-kafka')} (librdkafka {confluent_kafka.libversion()[0]}), "
      f"kafka-python {version('kafka-python')}, aiokafka {version('aiokafka')}, pytest {version('pytest')}")
EOF

# kafkajs for tests/kafkajs, at the version its package-lock.json pins; reinstalled only
# when the lock file changes.
step "kafkajs (tests/kafkajs/package-lock.json)"
KAFKAJS="$ROOT/tests/kafkajs"
stamp="$KAFKAJS/node_modules/.package-lock.sha256"
want="$(sha256sum "$KAFKAJS/package-lock.json" | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  note "npm ci"
  npm ci --prefix "$KAFKAJS" --no-audit --no-fund --loglevel=error </dev/null
  echo "$want" >"$stamp"
else
  note "up to date"
fi
note "node $(node --version), kafkajs $(node -p "require('$KAFKAJS/node_modules/kafkajs/package.json').version")"

# krafka (crates.io) for tests/clients/test_share_krafka.py: a second KIP-932 share
# consumer, in Rust; its own Cargo.lock pins it, its own target dir keeps it out of the
# broker's build. Built here with --setup-only; otherwise in the background (step 5).
KRAFKA_BUILD=(cargo build --release --quiet --manifest-path "$ROOT/tests/krafka/Cargo.toml")
krafka_version() {
  grep -A1 '^name = "krafka"' "$ROOT/tests/krafka/Cargo.lock" | sed -n 's/^version = "\(.*\)"/\1/p'
}

if ((SETUP_ONLY)); then
  step "krafka share consumer (tests/krafka, cargo build --release)"
  "${KRAFKA_BUILD[@]}"
  note "krafka $(krafka_version)"
  step "setup done (--setup-only)"
  exit 0
fi

# --- 3. build -----------------------------------------------------------------------
step "cargo build --release"
if ! cargo build --release; then
  echo "error: cargo build --release failed; no broker binary, so no tests can run" >&2
  exit 1
fi
SLUICE_BIN="$ROOT/target/release/sluice"
REPORTS="$ROOT/target/test-reports"
rm -rf "$REPORTS" && mkdir -p "$REPORTS"
export SLUICE_BIN
[[ -x "$SLUICE_BIN" ]] || { echo "error: $SLUICE_BIN was not built" >&2; exit 1; }

# --- 4. layer check -------------------------------------------------------------------
step "scripts/check_layers.py (ARCHITECTURE.md invariants)"
if "$VENV/bin/python" "$ROOT/scripts/check_layers.py" 2>&1 | tee "$REPORTS/check-layers.log"; then
  echo "test result: ok. 1 passed; 0 failed" >>"$REPORTS/check-layers.log"
else
  FAILED+=("scripts/check_layers.py")
  echo "test result: FAILED. 0 passed; 1 failed" >>"$REPORTS/check-layers.log"
fi

# --- 5. the builds that only later steps need, in the background ----------------------
# The client tests need only the broker binary, and mostly wait on sockets; the krafka
# consumer and `cargo test --release` are CPU-bound builds. So they run beside the client
# tests, at a lower priority (the brokers under test keep the CPU they ask for), instead
# of one after the other: about 10 minutes less on a 2-core machine.
step "in the background, at nice 10: krafka (tests/krafka), then cargo test --release"
(
  nice -n 10 "${KRAFKA_BUILD[@]}" >"$REPORTS/krafka-build.log" 2>&1 \
    || touch "$REPORTS/krafka-build.failed"
  if [[ "${SKIP_CARGO_TEST:-0}" != 1 ]]; then
    nice -n 10 cargo test --release >"$REPORTS/cargo-test.log" 2>&1 \
      || touch "$REPORTS/cargo-test.failed"
  fi
) </dev/null &
BACKGROUND=$!

# --- 6. real clients against the real binary -----------------------------------------
KRAFKA_TEST="$ROOT/tests/clients/test_share_krafka.py"
step "pytest tests/clients tests/tools, but for krafka's (SLUICE_BIN=$SLUICE_BIN)"
# shellcheck disable=SC2086  # PYTEST_ARGS is split on purpose
"$VENV/bin/python" -m pytest "$ROOT/tests/clients" "$ROOT/tests/tools" --ignore="$KRAFKA_TEST" \
  -v --junitxml="$REPORTS/pytest.xml" ${PYTEST_ARGS:-} </dev/null \
  || FAILED+=("pytest tests/clients tests/tools")

# --- 7. kafkajs against the real binary ---------------------------------------------
step "node --test tests/kafkajs (SLUICE_BIN=$SLUICE_BIN)"
node --test --test-reporter=tap "$ROOT/tests/kafkajs/sluice.test.mjs" </dev/null \
  2>&1 | tee "$REPORTS/kafkajs.log" || FAILED+=("node --test tests/kafkajs")

# --- the rest of 5 and 6 ---------------------------------------------------------------
step "waiting for the background builds and cargo test"
wait "$BACKGROUND" || true
if [[ -f "$REPORTS/krafka-build.failed" ]]; then
  cat "$REPORTS/krafka-build.log"
  FAILED+=("krafka build (tests/krafka)")
else
  note "krafka $(krafka_version) built"
fi
if [[ "${SKIP_CARGO_TEST:-0}" == 1 ]]; then
  note "cargo test --release: skipped (SKIP_CARGO_TEST=1)"
else
  cat "$REPORTS/cargo-test.log"
  if [[ -f "$REPORTS/cargo-test.failed" ]]; then FAILED+=("cargo test --release"); fi
fi

step "pytest $KRAFKA_TEST"
# shellcheck disable=SC2086
rc=0
"$VENV/bin/python" -m pytest "$KRAFKA_TEST" -v --junitxml="$REPORTS/pytest-krafka.xml" \
  ${PYTEST_ARGS:-} </dev/null || rc=$?
# 5: PYTEST_ARGS selected none of its tests.
if ((rc != 0 && rc != 5)); then FAILED+=("pytest $KRAFKA_TEST"); fi

step "done in $((SECONDS - START)) s"
# One closing line with the counts of both runners: cargo's "test result" lines
# and pytest's JUnit report.
"$VENV/bin/python" - "$REPORTS" <<'EOF'
import pathlib, re, sys
import xml.etree.ElementTree as ET
reports = pathlib.Path(sys.argv[1])
passed = failed = 0
cargo = reports / "cargo-test.log"
layers = reports / "check-layers.log"
if layers.exists():
    for p, f in re.findall(r"test result: \w+\. (\d+) passed; (\d+) failed", layers.read_text()):
        passed, failed = passed + int(p), failed + int(f)
if cargo.exists():
    text = cargo.read_text(errors="replace")
    counts = re.findall(r"test result: \w+\. (\d+) passed; (\d+) failed", text)
    for p, f in counts:
        passed, failed = passed + int(p), failed + int(f)
    if (reports / "cargo-test.failed").exists() and not any(int(f) for _, f in counts):
        failed += 1  # cargo test failed before any test did: count the build

kafkajs = reports / "kafkajs.log"
if kafkajs.exists():
    text = kafkajs.read_text(errors="replace")
    p = re.findall(r"^# pass (\d+)$", text, re.M)
    f = re.findall(r"^# fail (\d+)$", text, re.M)
    if p or f:
        passed, failed = passed + int(p[-1] if p else 0), failed + int(f[-1] if f else 0)
    else:
        failed += 1  # node never reported: count the run as one failure

for junit in sorted(reports.glob("pytest*.xml")):
    for suite in ET.parse(junit).getroot().iter("testsuite"):
        tests, skipped = int(suite.get("tests", 0)), int(suite.get("skipped", 0))
        bad = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        passed, failed = passed + tests - skipped - bad, failed + bad
print(f"tests: {passed} passed, {failed} failed")
EOF
if ((${#FAILED[@]})); then
  echo "FAILED: ${FAILED[*]}" >&2
  exit 1
fi
