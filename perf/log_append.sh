#!/usr/bin/env bash
# Log append throughput against fio on the same filesystem, in one run.
#
#   perf/log_append.sh            # SIZE_BYTES=1 GiB per run, REPS=3, DIR under /var/tmp
#
# Measures (median of REPS runs each, interleaved so that noise from other tenants of the
# machine hits every figure alike):
#   fio_buffered      fio sequential write, 1 MiB blocks, page cache (psync, no fsync)
#   log_buffered      PartitionLog::append of 1 MiB batches, flush=never, 1 appender
#   fio_fdatasync     fio 1 MiB writes + fdatasync after each, file preallocated (fallocate)
#   log_buffered4     the same with 4 appenders (a broker has many produce requests in flight)
#   log_always16      16 appenders of 1 MiB batches, flush=always, append + wait_durable each
# and prints the ratios log/fio (targets: buffered >= 0.90, always >= 0.70).
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_BYTES=${SIZE_BYTES:-1073741824}
REPS=${REPS:-3}
DIR=${DIR:-$(mktemp -d /var/tmp/sluice-log-perf.XXXXXX)}
mkdir -p "$DIR"
trap 'rm -rf "$DIR"/fio.dat "$DIR"/tmp*' EXIT

command -v fio >/dev/null || { echo "fio missing: apt-get install -y fio" >&2; exit 1; }
cargo bench --bench log_perf --no-run >/dev/null 2>&1
log_perf() { cargo bench --bench log_perf -- --dir "$DIR" --total-bytes "$SIZE_BYTES" "$@" 2>/dev/null | sed -n 's/^bytes_per_s=//p'; }
fio_bw() {
  rm -f "$DIR/fio.dat"
  fio --name=seq --filename="$DIR/fio.dat" --rw=write --bs=1M --size="$SIZE_BYTES" --ioengine=psync \
      --fallocate=native --output-format=json "$@" 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["jobs"][0]["write"]["bw_bytes"])'
  rm -f "$DIR/fio.dat"
}
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -a fb lb lb4 fs la
for r in $(seq "$REPS"); do
  sync; fb+=("$(fio_bw)")
  sync; lb+=("$(log_perf --mode buffered --appenders 1)")
  sync; lb4+=("$(log_perf --mode buffered --appenders 4)")
  sync; fs+=("$(fio_bw --fdatasync=1)")
  sync; la+=("$(log_perf --mode always --appenders 16)")
  echo "rep $r: fio_buffered=${fb[-1]} log_buffered=${lb[-1]} log_buffered4=${lb4[-1]} fio_fdatasync=${fs[-1]} log_always16=${la[-1]} (bytes/s)" >&2
done

FB=$(median "${fb[@]}"); LB=$(median "${lb[@]}"); LB4=$(median "${lb4[@]}"); FS=$(median "${fs[@]}"); LA=$(median "${la[@]}")
mb() { awk -v b="$1" 'BEGIN {printf "%.0f", b / 1048576}'; }
echo "size_bytes=$SIZE_BYTES reps=$REPS dir=$DIR"
echo "fio_buffered_mib_s=$(mb "$FB")"
echo "log_buffered_mib_s=$(mb "$LB")"
echo "log_buffered_4_appenders_mib_s=$(mb "$LB4")"
echo "fio_fdatasync_1m_mib_s=$(mb "$FS")"
echo "log_always_16_appenders_mib_s=$(mb "$LA")"
awk -v a="$LB" -v b="$FB" 'BEGIN {printf "ratio_buffered=%.2f (target >= 0.90)\n", a / b}'
awk -v a="$LB4" -v b="$FB" 'BEGIN {printf "ratio_buffered_4_appenders=%.2f\n", a / b}'
awk -v a="$LA" -v b="$FS" 'BEGIN {printf "ratio_always=%.2f (target >= 0.70)\n", a / b}'
