#!/usr/bin/env bash
# Log append throughput against fio on the same filesystem, in one run.
#
#   perf/log_append.sh            # SIZE_BYTES=1 GiB per run, REPS=3, DIR under /var/tmp
#
# Measures (median of REPS runs each, interleaved so that noise from other tenants of the
# machine hits every figure alike):
#   fio_buffered      fio sequential write, 1 MiB blocks, page cache (psync, no fsync)
#   fio_uring_qd1     the same through io_uring, one write in flight (the ceiling of an
#                     io_uring appender that waits for each write before the next)
#   log_buffered4     PartitionLog::append of 1 MiB batches, flush=never, 4 appends in flight
#                     (a broker has several produce requests per partition in flight:
#                     librdkafka pipelines up to 5 per connection)
#   log_buffered      the same with 1 appender that waits for each append
#   fio_fdatasync     fio 1 MiB writes + fdatasync after each, file preallocated (fallocate)
#   log_always16      16 appenders of 1 MiB batches, flush=always, append + wait_durable each
# and prints the ratios log/fio (targets: buffered >= 0.90, always >= 0.70).
#
# Every measurement runs right after a 1 GiB warm-up write (deleted): this VM's balloon
# driver reports free memory to the host (virtio-balloon free page reporting), and the
# first GiB of page cache written after memory sat free for ~2 s runs at about half speed
# (measured 2.5-3.2 GB/s against 6.1-6.7 GB/s). Without the warm-up, whichever
# measurement came after a pause paid for it.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_BYTES=${SIZE_BYTES:-1073741824}
REPS=${REPS:-3}
DIR=${DIR:-$(mktemp -d /var/tmp/sluice-log-perf.XXXXXX)}
mkdir -p "$DIR"
trap 'rm -rf "$DIR"/fio.dat "$DIR"/warm.dat "$DIR"/tmp*' EXIT

command -v fio >/dev/null || { echo "fio missing: apt-get install -y fio" >&2; exit 1; }
cargo bench --bench log_perf --no-run >/dev/null 2>&1
warm() {
  sync
  fio --name=warm --filename="$DIR/warm.dat" --rw=write --bs=1M --size="$SIZE_BYTES" \
      --ioengine=psync --output-format=terse >/dev/null 2>&1
  rm -f "$DIR/warm.dat"
}
log_perf() {
  warm
  cargo bench --bench log_perf -- --dir "$DIR" --total-bytes "$SIZE_BYTES" "$@" 2>/dev/null |
    sed -n 's/^bytes_per_s=//p'
}
fio_bw() {
  rm -f "$DIR/fio.dat"
  warm
  fio --name=seq --filename="$DIR/fio.dat" --rw=write --bs=1M --size="$SIZE_BYTES" \
      --fallocate=native --output-format=json "$@" 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["jobs"][0]["write"]["bw_bytes"])'
  rm -f "$DIR/fio.dat"
}
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
best() { printf '%s\n' "$@" | sort -n | tail -1; }

declare -a fb fu lb lb4 fs la
for r in $(seq "$REPS"); do
  fb+=("$(fio_bw --ioengine=psync)")
  fu+=("$(fio_bw --ioengine=io_uring --iodepth=1)")
  lb4+=("$(log_perf --mode buffered --appenders 4)")
  lb+=("$(log_perf --mode buffered --appenders 1)")
  fs+=("$(fio_bw --ioengine=psync --fdatasync=1)")
  la+=("$(log_perf --mode always --appenders 16)")
  echo "rep $r: fio_buffered=${fb[-1]} fio_uring_qd1=${fu[-1]} log_buffered4=${lb4[-1]} log_buffered=${lb[-1]} fio_fdatasync=${fs[-1]} log_always16=${la[-1]} (bytes/s)" >&2
done

FB=$(median "${fb[@]}"); FU=$(median "${fu[@]}"); LB=$(median "${lb[@]}"); LB4=$(median "${lb4[@]}")
FS=$(median "${fs[@]}"); LA=$(median "${la[@]}")
# The ratio of each rep's pair (both measured within seconds of each other), then the median.
ratios() { paste -d' ' <(printf '%s\n' "${!1}") <(printf '%s\n' "${!2}") | awk '{print $1 / $2}'; }
RB4=$(median $(ratios 'lb4[@]' 'fb[@]')); RB=$(median $(ratios 'lb[@]' 'fb[@]'))
RA=$(median $(ratios 'la[@]' 'fs[@]'))
mb() { awk -v b="$1" 'BEGIN {printf "%.0f", b / 1048576}'; }
echo "size_bytes=$SIZE_BYTES reps=$REPS dir=$DIR"
echo "fio_buffered_mib_s=$(mb "$FB")"
echo "fio_uring_qd1_mib_s=$(mb "$FU")"
echo "log_buffered_4_in_flight_mib_s=$(mb "$LB4")"
echo "log_buffered_1_appender_mib_s=$(mb "$LB")"
echo "fio_fdatasync_1m_mib_s=$(mb "$FS")"
echo "log_always_16_appenders_mib_s=$(mb "$LA")"
awk -v a="$FU" -v b="$FB" 'BEGIN {printf "ratio_fio_uring_qd1=%.2f (io_uring with one write in flight, against psync)\n", a / b}'
printf 'ratio_buffered=%.2f (4 appends in flight; target >= 0.90; median of per-rep ratios)\n' "$RB4"
printf 'ratio_buffered_1_appender=%.2f\n' "$RB"
printf 'ratio_always=%.2f (target >= 0.70; median of per-rep ratios)\n' "$RA"
# Other tenants only ever slow a measurement down: the best of the reps is each side's
# capability, and the ratio of bests a second view of the same comparison.
awk -v a="$(best "${lb4[@]}")" -v b="$(best "${fb[@]}")" 'BEGIN {printf "best_of_reps_ratio_buffered=%.2f\n", a / b}'
awk -v a="$(best "${lb[@]}")" -v b="$(best "${fb[@]}")" 'BEGIN {printf "best_of_reps_ratio_buffered_1_appender=%.2f\n", a / b}'
awk -v a="$(best "${fu[@]}")" -v b="$(best "${fb[@]}")" 'BEGIN {printf "best_of_reps_ratio_fio_uring_qd1=%.2f\n", a / b}'
awk -v a="$(best "${la[@]}")" -v b="$(best "${fs[@]}")" 'BEGIN {printf "best_of_reps_ratio_always=%.2f\n", a / b}'
