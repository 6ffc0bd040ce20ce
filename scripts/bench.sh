#!/usr/bin/env bash
# The bundled perf suite: the scenarios of perf/scenarios.tsv against Sluice, Redis
# Streams and Tansu (a Kafka-compatible broker in Rust, installed with `cargo install`
# into target/peers the first time: 14m50s measured on 2 cores), with the
# machine's limits (fio, iperf3)
# measured in the same run, figures and ratios printed and written to perf/RESULTS.md.
#
#   scripts/bench.sh            # every scenario (7.5-8 min measured on 2 cores)
#   scripts/bench.sh --quick    # the scenarios marked quick, shorter runs (5m06s measured
#                               # with --plot, 27 s of it creating perf/.venv the first time)
#   scripts/bench.sh --plot     # also latency percentile curves and throughput bars (SVG)
#   scripts/bench.sh --only p1k-all-1p,never-max   # just these scenarios
#   scripts/bench.sh --share    # also perf/share.py: share groups (KIP-932) against the
#                               # classic consumer group on the same broker, same run
#   scripts/bench.sh --closer   # also perf/closer.py: CPU per GB and latency against this
#                               # machine's own floor (issue 18), ~5 min; JSON in the run dir
#
# Every server is started by this script on a free 127.0.0.1 port with its own temp dir
# under $BENCH_DIR (default target/bench-tmp, on the same disk as the repo), and stopped
# at the end of its scenario. The load generator is `sluice bench` for every target
# (librdkafka for Kafka brokers, the `redis` crate for Redis), so the same open-loop
# schedule and the same HDR histograms measure all of them.
# Environment:
#   DURATION_S, WARMUP_S   measured and warm-up seconds per run (quick: 4 and 1; full: 8 and 2)
#   FIO_SIZE               bytes per fio run (quick: 512M; full: 1G)
#   TANSU_ARGS             arguments of `tansu` ({PORT} is replaced by its port)
#   TANSU_VERSION          the tansu crate installed when none is found (default 0.6.0)
#   NO_TANSU=1             leave Tansu out (said in the report)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
cd "$ROOT"

QUICK=0
PLOT=0
SHARE=0
CLOSER=0
ONLY=""
while (($#)); do
  case "$1" in
    --quick) QUICK=1 ;;
    --plot) PLOT=1 ;;
    --share) SHARE=1 ;;
    --closer) CLOSER=1 ;;
    --only) ONLY="${2:?--only needs scenario names}"; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "usage: $0 [--quick] [--plot] [--share] [--closer] [--only NAME,...]" >&2; exit 2 ;;
  esac
  shift
done

if ((QUICK)); then MODE=quick; else MODE=full; fi
if ((QUICK)); then
  DURATION_S=${DURATION_S:-4}; WARMUP_S=${WARMUP_S:-1}; FIO_SIZE=${FIO_SIZE:-512M}; IPERF_S=3
else
  DURATION_S=${DURATION_S:-8}; WARMUP_S=${WARMUP_S:-2}; FIO_SIZE=${FIO_SIZE:-1G}; IPERF_S=5
fi
START=$SECONDS
step() { printf '\n==> [%4ds] %s\n' "$((SECONDS - START))" "$*" >&2; }
note() { printf '    %s\n' "$*" >&2; }

for dir in "$HOME/.cargo/bin"; do
  if [[ -d "$dir" && ":$PATH:" != *":$dir:"* ]]; then PATH="$PATH:$dir"; fi
done
export PATH

# --- 1. packages -----------------------------------------------------------------------
step "packages: redis-server, fio, iperf3, curl"
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v fio >/dev/null 2>&1 || missing+=(fio)
command -v iperf3 >/dev/null 2>&1 || missing+=(iperf3)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if ((${#missing[@]})); then
  apt_install "${missing[@]}"
else
  note "already installed"
fi

# --- 2. build -----------------------------------------------------------------------------
step "cargo build --release"
cargo build --release
BIN="$ROOT/target/release/sluice"

RUN_DIR="$ROOT/perf/runs/$(date -u +%Y%m%dT%H%M%SZ)-$MODE"
mkdir -p "$RUN_DIR"
BENCH_DIR=${BENCH_DIR:-$ROOT/target/bench-tmp}
mkdir -p "$BENCH_DIR"
WORK="$(mktemp -d "$BENCH_DIR/run.XXXXXX")"
STARTED=()   # pids this script started, stopped on exit

stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local pid
  for pid in "${STARTED[@]}"; do stop_pid "$pid"; done
  rm -rf "$WORK"
}
trap cleanup EXIT

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 12000))
    port_open "$p" || { echo "$p"; return; }
  done
}
wait_port() { # port pid what
  local i
  for i in $(seq 300); do
    port_open "$1" && return 0
    kill -0 "$2" 2>/dev/null || { echo "error: $3 exited before listening" >&2; return 1; }
    sleep 0.1
  done
  echo "error: $3 did not listen on 127.0.0.1:$1 within 30 s" >&2
  return 1
}

# --- 3. the machine -------------------------------------------------------------------------
step "machine description"
{
  echo "cpu: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)"
  echo "cores: $(nproc) online ($(lscpu | sed -n 's/^CPU(s):[[:space:]]*//p') CPUs)"
  echo "ram: $(free -h | awk '/^Mem:/ {print $2}')"
  echo "kernel: $(uname -sr)"
  dev=$(df --output=source "$BENCH_DIR" | tail -1)
  echo "disk: $dev, $(df --output=fstype "$BENCH_DIR" | tail -1) ($(lsblk -dno ROTA,SIZE "$dev" 2>/dev/null | awk '{print ($1=="1"?"rotational":"non-rotational") ", " $2}'))"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo ' (with uncommitted changes)')"
  echo "load before run: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$RUN_DIR/machine.txt" >&2

# --- 4. machine limits: fio and iperf3 --------------------------------------------------------
step "fio: sequential 1 MiB writes ($FIO_SIZE), buffered, then fdatasync per MiB (preallocated)"
# A warm-up write first: this VM hands memory left free for ~2 s back to the host (virtio-balloon
# free page reporting) and the first GiB written after that runs at half speed (perf/RESULTS.md,
# "The balloon").
fio --name=warm --filename="$WORK/warm.dat" --rw=write --bs=1M --size="$FIO_SIZE" \
  --ioengine=psync --output-format=terse >/dev/null 2>&1 || true
rm -f "$WORK/warm.dat"
fio --name=buffered --filename="$WORK/fio.dat" --rw=write --bs=1M --size="$FIO_SIZE" \
  --ioengine=psync --fallocate=native --output-format=json >"$RUN_DIR/fio-buffered.json"
rm -f "$WORK/fio.dat"
fio --name=fdatasync --filename="$WORK/fio.dat" --rw=write --bs=1M --size="$FIO_SIZE" \
  --ioengine=psync --fallocate=native --fdatasync=1 --output-format=json >"$RUN_DIR/fio-fdatasync.json"
rm -f "$WORK/fio.dat"

step "iperf3 on loopback (${IPERF_S} s)"
IPORT=$(free_port)
iperf3 -s -B 127.0.0.1 -p "$IPORT" >/dev/null 2>&1 &
IPID=$!; STARTED+=("$IPID")
wait_port "$IPORT" "$IPID" iperf3
iperf3 -c 127.0.0.1 -p "$IPORT" -t "$IPERF_S" -J >"$RUN_DIR/iperf3.json"
stop_pid "$IPID"

# --- 5. servers ---------------------------------------------------------------------------------
SERVER_PID=""
SERVER_ADDR=""
SERVER_ADMIN=""

start_sluice() { # flush
  local port admin dir flush=$1
  [[ $flush == interval ]] && flush=interval:1000
  port=$(free_port); admin=$(free_port)
  dir="$WORK/sluice-$port"; mkdir -p "$dir"
  "$BIN" serve --listen "127.0.0.1:$port" --data-dir "$dir/data" --shards 2 --flush "$flush" \
    --admin-addr "127.0.0.1:$admin" >"$dir/broker.log" 2>&1 &
  SERVER_PID=$!; STARTED+=("$SERVER_PID")
  wait_port "$port" "$SERVER_PID" "sluice serve" || { tail -20 "$dir/broker.log" >&2; return 1; }
  SERVER_ADDR="127.0.0.1:$port"; SERVER_ADMIN="127.0.0.1:$admin"
}

start_redis() { # flush
  local port dir fsync
  case $1 in always) fsync=always ;; interval) fsync=everysec ;; never) fsync=no ;; esac
  port=$(free_port); dir="$WORK/redis-$port"; mkdir -p "$dir"
  redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --appendonly yes \
    --appendfsync "$fsync" --save "" --daemonize no --protected-mode yes \
    --logfile "$dir/redis.log" &
  SERVER_PID=$!; STARTED+=("$SERVER_PID")
  wait_port "$port" "$SERVER_PID" redis-server || { tail -20 "$dir/redis.log" >&2; return 1; }
  SERVER_ADDR="redis://127.0.0.1:$port"
}

start_tansu() { # flush (Tansu's memory engine has no flush setting: noted in the report)
  local port args
  port=$(free_port)
  args=${TANSU_ARGS:-"broker --listener-url tcp://127.0.0.1:{PORT} --advertised-listener-url tcp://127.0.0.1:{PORT} --storage-engine memory://tansu/"}
  # shellcheck disable=SC2086  # the arguments are split on purpose
  tansu ${args//\{PORT\}/$port} >"$WORK/tansu-$port.log" 2>&1 &
  SERVER_PID=$!; STARTED+=("$SERVER_PID")
  if ! wait_port "$port" "$SERVER_PID" tansu; then
    tail -20 "$WORK/tansu-$port.log" >&2
    echo "tansu failed to start: $(grep -m1 -i error "$WORK/tansu-$port.log" | cut -c1-200)" \
      >>"$RUN_DIR/tansu-skipped.txt"
    return 1
  fi
  SERVER_ADDR="127.0.0.1:$port"
}

# Tansu: the one on PATH, else the one in target/peers, else installed there now.
# Sets TANSU_WHY when there is none.
find_tansu() {
  local peers="$ROOT/target/peers"
  if ((${NO_TANSU:-0})); then TANSU_WHY="NO_TANSU=1"; return 1; fi
  command -v tansu >/dev/null 2>&1 && return 0
  if [[ ! -x "$peers/bin/tansu" ]]; then
    step "tansu: cargo install tansu ${TANSU_VERSION:-0.6.0} into target/peers (once)"
    # dynostore: the memory:// storage engine of TANSU_ARGS (not in its default features).
    if ! cargo install tansu --version "${TANSU_VERSION:-0.6.0}" --features dynostore --locked --root "$peers" \
        --target-dir "$ROOT/target/peers-build" >"$RUN_DIR/tansu-install.log" 2>&1; then
      tail -5 "$RUN_DIR/tansu-install.log" >&2
      TANSU_WHY="cargo install tansu failed (tansu-install.log)"; return 1
    fi
  fi
  PATH="$PATH:$peers/bin"
}
SYSTEMS=(sluice redis)
TANSU_WHY=""
if find_tansu; then
  SYSTEMS+=(tansu)
  note "tansu: $(command -v tansu) ($(tansu --version 2>&1 | head -1))"
else
  note "tansu: skipped: $TANSU_WHY"
  echo "tansu skipped: $TANSU_WHY" >"$RUN_DIR/tansu-skipped.txt"
fi

msgs_per_sec_of() { # json file -> msg/s
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["produce_msgs_per_sec"])' "$1"
}

run_scenario() { # name size acks flush producers consumers partitions rate linger system
  local name=$1 size=$2 acks=$3 flush=$4 producers=$5 consumers=$6 partitions=$7 rate=$8 linger=$9 sys=${10}
  local out="$RUN_DIR/$name.$sys.json" target=() r
  case $rate in
    max) r=0 ;;
    half:*)
      local base="$RUN_DIR/${rate#half:}.$sys.json"
      [[ -f $base ]] || { note "$name/$sys: ${rate#half:} has no result, skipped"; return 0; }
      r=$(python3 -c 'import sys; print(round(float(sys.argv[1]) / 2))' "$(msgs_per_sec_of "$base")")
      ;;
    *) r=$rate ;;
  esac
  case $sys in
    sluice) start_sluice "$flush" || return 0; target=(--target kafka --brokers "$SERVER_ADDR") ;;
    tansu) start_tansu "$flush" || return 0; target=(--target kafka --brokers "$SERVER_ADDR") ;;
    redis) start_redis "$flush" || return 0; target=(--target redis --redis-url "$SERVER_ADDR") ;;
  esac
  note "$name on $sys: ${size} B, acks=$acks, flush=$flush, ${producers}p/${consumers}c, $partitions partitions, rate ${r} ($rate), linger ${linger} ms"
  if timeout $((DURATION_S + WARMUP_S + 120)) "$BIN" bench "${target[@]}" --message-bytes "$size" \
      --acks "$acks" --producers "$producers" --consumers "$consumers" --partitions "$partitions" \
      --rate "$r" --linger-ms "$linger" --duration-s "$DURATION_S" --warmup-s "$WARMUP_S" --drain-timeout-s 20 \
      --json --curves >"$out.tmp" 2>"$RUN_DIR/$name.$sys.stderr"; then
    python3 - "$out.tmp" "$out" "$name" "$sys" "$flush" "$rate" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
r.update(scenario=sys.argv[3], system=sys.argv[4], flush=sys.argv[5], rate_spec=sys.argv[6])
json.dump(r, open(sys.argv[2], "w"))
PY
    rm -f "$out.tmp"
  else
    note "$name on $sys: sluice bench failed (see $RUN_DIR/$name.$sys.stderr)"
    tail -3 "$RUN_DIR/$name.$sys.stderr" >&2 || true
    rm -f "$out.tmp"
  fi
  if [[ $sys == sluice ]]; then
    curl -s --max-time 5 "http://$SERVER_ADMIN/metrics" >"$RUN_DIR/$name.sluice.metrics.txt" || true
  fi
  stop_pid "$SERVER_PID"
  rm -rf "$WORK"/sluice-* "$WORK"/redis-*
}

step "scenarios ($MODE: ${DURATION_S} s measured after ${WARMUP_S} s warm-up each)"
while read -r name quick size acks flush producers consumers partitions rate linger _; do
  [[ -z $name || $name == \#* ]] && continue
  if ((QUICK)) && [[ $quick != y ]]; then continue; fi
  if [[ -n $ONLY && ",$ONLY," != *",$name,"* ]]; then continue; fi
  for sys in "${SYSTEMS[@]}"; do
    run_scenario "$name" "$size" "$acks" "$flush" "$producers" "$consumers" "$partitions" "$rate" "$linger" "$sys"
  done
done <"$ROOT/perf/scenarios.tsv"

# --- 5b. share groups against the classic consumer group (opt-in) ---------------------------
if ((SHARE)); then
  step "share groups vs classic consumer group and RabbitMQ (perf/share.py)"
  # The RabbitMQ peer: rabbitmq-server (Debian) and pika (perf/requirements.txt) in .venv.
  [[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]] || apt_install rabbitmq-server
  "$ROOT/.venv/bin/python" -c 'import pika' 2>/dev/null ||
    "$ROOT/.venv/bin/python" -m pip install --disable-pip-version-check -q -r "$ROOT/perf/requirements.txt"
  SLUICE_BIN="$ROOT/target/release/sluice" "$ROOT/.venv/bin/python" "$ROOT/perf/share.py"
fi

# --- 5c. against the machine's own floor (opt-in) ----------------------------------------------
if ((CLOSER)); then
  step "CPU per GB and latency against this machine's floor (perf/closer.py)"
  command -v sockperf >/dev/null 2>&1 || apt_install sockperf || note "sockperf: not installed, closer.py uses its Python echo"
  SLUICE_BIN="$BIN" BENCH_DIR="$BENCH_DIR" CLOSER_OUT="$RUN_DIR/closer.json" \
    "$ROOT/.venv/bin/python" "$ROOT/perf/closer.py" >/dev/null
fi

# --- 6. report --------------------------------------------------------------------------------
step "report"
REPORT_ARGS=("$RUN_DIR" --mode "$MODE" --results "$ROOT/perf/RESULTS.md")
if ((PLOT)); then
  VENV="$ROOT/perf/.venv"
  if [[ ! -x $VENV/bin/python ]] || ! "$VENV/bin/python" -c 'import matplotlib' 2>/dev/null; then
    note "creating $VENV with matplotlib"
    python3 -m venv "$VENV" 2>/dev/null || /usr/bin/python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q matplotlib
  fi
  "$VENV/bin/python" "$ROOT/perf/report.py" "${REPORT_ARGS[@]}" --plot "$ROOT/perf/plots"
else
  python3 "$ROOT/perf/report.py" "${REPORT_ARGS[@]}"
fi
step "done in $((SECONDS - START)) s; raw results in ${RUN_DIR#"$ROOT"/}"
