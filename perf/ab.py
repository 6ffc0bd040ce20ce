#!/usr/bin/env python3
"""A/B two broker builds under the same load, alternated, on this machine, in one run.

For a change that must not change behaviour ("figures within noise"), one bench run of
each build minutes apart says little on a shared VM; alternating A and B scenario by
scenario, several rounds, and comparing medians does. Each run starts a fresh broker
(2 shards, its own temp data dir, free 127.0.0.1 ports) and drives it with the *same*
load generator (`sluice bench` of build B) and the scenario's row of perf/scenarios.tsv.

    perf/ab.py OLD_BINARY NEW_BINARY [--rounds 3] [--only p1k-all-1p,p1k-acks1-1p]
               [--duration-s 4] [--warmup-s 1] [--rate MSGS_PER_S]

Prints, per scenario, produce msg/s and p50/p99 latency (produce, or end to end when
the scenario has consumers) of each build, median over the rounds, and B/A.
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scenarios(only):
    rows = []
    for line in (ROOT / "perf" / "scenarios.tsv").read_text().splitlines():
        f = line.split()
        if not f or f[0].startswith("#"):
            continue
        name, _quick, size, acks, flush, prod, cons, parts, rate, linger = f[:10]
        if only and name not in only:
            continue
        if rate != "max" and not rate.isdigit():
            continue  # "half:NAME" depends on another run's result; not comparable here
        rows.append(dict(name=name, size=size, acks=acks, flush=flush, producers=prod,
                         consumers=cons, partitions=parts, rate="0" if rate == "max" else rate,
                         linger=linger))
    return rows


def wait_port(port: int, proc: subprocess.Popen, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"broker exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("broker did not listen in time")


def run_once(broker: str, client: str, sc: dict, args) -> dict:
    work = Path(tempfile.mkdtemp(prefix="sluice-ab-", dir=args.work_dir))
    port = free_port()
    flush = "interval:1000" if sc["flush"] == "interval" else sc["flush"]
    log = open(work / "broker.log", "w")
    proc = subprocess.Popen([broker, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir",
                             str(work / "data"), "--shards", "2", "--flush", flush,
                             "--admin-addr", f"127.0.0.1:{free_port()}"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(port, proc)
        out = subprocess.run(
            [client, "bench", "--target", "kafka", "--brokers", f"127.0.0.1:{port}",
             "--message-bytes", sc["size"], "--acks", sc["acks"], "--producers", sc["producers"],
             "--consumers", sc["consumers"], "--partitions", sc["partitions"], "--rate", sc["rate"],
             "--linger-ms", sc["linger"], "--duration-s", str(args.duration_s), "--warmup-s",
             str(args.warmup_s), "--drain-timeout-s", "20", "--json"],
            capture_output=True, text=True, timeout=args.duration_s + args.warmup_s + 120)
        if out.returncode != 0:
            raise RuntimeError(f"bench failed: {out.stderr[-500:]}")
        return json.loads(out.stdout)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(work, ignore_errors=True)


def figures(r: dict):
    lat = r.get("e2e_latency_us") or r["produce_latency_us"]
    return r["produce_msgs_per_sec"], lat["p50"], lat["p99"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default="")
    ap.add_argument("--duration-s", type=int, default=4)
    ap.add_argument("--warmup-s", type=int, default=1)
    ap.add_argument("--rate", type=int, default=None,
                    help="msg/s for every scenario instead of its own (latency at a fixed load)")
    ap.add_argument("--work-dir", default=str(ROOT / "target"))
    args = ap.parse_args()
    only = set(filter(None, args.only.split(",")))
    os.makedirs(args.work_dir, exist_ok=True)
    results = {}
    for rnd in range(args.rounds):
        for sc in scenarios(only):
            if args.rate is not None:
                sc["rate"] = str(args.rate)
            order = [("A", args.a), ("B", args.b)] if rnd % 2 == 0 else [("B", args.b), ("A", args.a)]
            for label, binary in order:
                f = figures(run_once(binary, args.b, sc, args))
                results.setdefault(sc["name"], {}).setdefault(label, []).append(f)
                print(f"round {rnd + 1} {sc['name']:<22} {label}: {f[0]:>9} msg/s "
                      f"p50 {f[1] / 1000:8.2f} ms p99 {f[2] / 1000:8.2f} ms", file=sys.stderr)
    print(f"{'scenario':<22} {'A msg/s':>10} {'B msg/s':>10} {'B/A':>6}   "
          f"{'A p50':>8} {'B p50':>8}   {'A p99':>8} {'B p99':>8}  (ms, median of {args.rounds})")
    for name, by in results.items():
        med = {k: [statistics.median(x[i] for x in v) for i in range(3)] for k, v in by.items()}
        a, b = med["A"], med["B"]
        print(f"{name:<22} {a[0]:>10.0f} {b[0]:>10.0f} {b[0] / a[0]:>6.2f}   "
              f"{a[1] / 1000:>8.2f} {b[1] / 1000:>8.2f}   {a[2] / 1000:>8.2f} {b[2] / 1000:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
