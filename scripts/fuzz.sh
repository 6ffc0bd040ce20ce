#!/usr/bin/env bash
# The fuzz targets of fuzz/ (src/fuzzing.rs) under libFuzzer with AddressSanitizer.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# SECONDS per target (default 20); TARGETS default to all. With FUZZ_CPU_SECONDS=N the
# targets run at once instead (at the caller's nice level), each until it has used N
# seconds of CPU (libFuzzer's own limit counts wall time, which a loaded machine
# stretches); SECONDS is then ignored but still comes first:
#   FUZZ_CPU_SECONDS=1800 scripts/fuzz.sh 0 request record_batch
# Do not SIGSTOP the fuzzers: libFuzzer's -timeout is wall time, and a stopped run
# reports a timeout. Installs cargo-fuzz if
# missing; RUSTC_BOOTSTRAP=1 lets the stable toolchain take the sanitizer flags.
# The corpus in fuzz/corpus/<target> is read, not changed (new inputs go to a temp
# dir; FUZZ_KEEP=1 adds them to the corpus instead). A crash, leak, out-of-memory or
# an input running over 10 s fails the run and leaves the input in
# fuzz/artifacts/<target>/. Prints one line per target: runs, time, corpus, result.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
for dir in "$HOME/.cargo/bin"; do
  if [[ -d "$dir" && ":$PATH:" != *":$dir:"* ]]; then PATH="$PATH:$dir"; fi
done
SECONDS_EACH="${1:-20}"
shift || true
TARGETS=("$@")
if ((${#TARGETS[@]} == 0)); then
  TARGETS=(request record_batch state_file partition_dir)
fi
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz (crates.io)"
  cargo install cargo-fuzz --locked --version 0.13.2
fi
# FUZZ_NO_BUILD=1 runs the binaries already built (a long run beside other work).
if [[ "${FUZZ_NO_BUILD:-0}" != 1 ]]; then
  cargo fuzz build -O 2>&1 | tail -n 3 || { echo "fuzz build failed"; exit 1; }
fi

# The CPU seconds (user + system) a process has used so far.
cpu_seconds() {
  awk '{ printf "%d", ($14 + $15) / '"$(getconf CLK_TCK)"' }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# FUZZ_CPU_SECONDS: every target at once, each stopped (SIGINT: libFuzzer prints its final
# stats and exits 72) once it has used that much CPU.
if [[ -n "${FUZZ_CPU_SECONDS:-}" ]]; then
  bin_dir="fuzz/target/x86_64-unknown-linux-gnu/release"
  declare -A pids logs scratches
  for t in "${TARGETS[@]}"; do
    scratches[$t]="$(mktemp -d)"
    logs[$t]="${scratches[$t]}.log"
    corpus=("${scratches[$t]}" "fuzz/corpus/$t")
    if [[ "${FUZZ_KEEP:-0}" == 1 ]]; then corpus=("fuzz/corpus/$t"); fi
    mkdir -p "fuzz/artifacts/$t"
    TMPDIR=/dev/shm "$bin_dir/$t" "${corpus[@]}" -max_total_time=604800 -timeout=10 \
      -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" \
      >"${logs[$t]}" 2>&1 &
    pids[$t]=$!
  done
  failed=0
  for t in "${TARGETS[@]}"; do
    used=0
    while kill -0 "${pids[$t]}" 2>/dev/null; do
      now="$(cpu_seconds "${pids[$t]}")"
      ((now > used)) && used="$now"
      ((used >= FUZZ_CPU_SECONDS)) && break
      sleep 5
    done
    kill -INT "${pids[$t]}" 2>/dev/null || true
    rc=0
    wait "${pids[$t]}" || rc=$?
    result=ok
    if ((rc != 0 && rc != 72)); then
      result="FAILED (exit $rc)"
      failed=1
      grep -E "ERROR|panicked|SUMMARY|Test unit written" "${logs[$t]}" | head -n 20 || true
    fi
    runs="$(grep -m1 -oE 'stat::number_of_executed_units: *[0-9]+' "${logs[$t]}" | grep -oE '[0-9]+$' || echo '?')"
    printf 'fuzz %-14s %10s runs in %s CPU-s, corpus %s inputs: %s\n' "$t" "$runs" "$used" \
      "$(find "fuzz/corpus/$t" -type f | wc -l)" "$result"
    rm -rf "${scratches[$t]}" "${logs[$t]}"
  done
  exit "$failed"
fi

failed=0
for t in "${TARGETS[@]}"; do
  scratch="$(mktemp -d)"
  corpus=("$scratch" "fuzz/corpus/$t")
  if [[ "${FUZZ_KEEP:-0}" == 1 ]]; then corpus=("fuzz/corpus/$t"); fi
  mkdir -p "fuzz/artifacts/$t"
  log="$scratch.log"
  # TMPDIR on tmpfs: the state targets write small files per input.
  if TMPDIR=/dev/shm cargo fuzz run -O "$t" "${corpus[@]}" -- \
      -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="fuzz/artifacts/$t/" >"$log" 2>&1; then
    result=ok
  else
    result=FAILED
    failed=1
    grep -E "ERROR|panicked|SUMMARY|Test unit written" "$log" | head -n 20 || true
  fi
  runs="$(grep -m1 -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')"
  printf 'fuzz %-14s %10s runs in %ss, corpus %s inputs: %s\n' "$t" "$runs" "$SECONDS_EACH" \
    "$(find "fuzz/corpus/$t" -type f | wc -l)" "$result"
  rm -rf "$scratch" "$log"
done
exit "$failed"
