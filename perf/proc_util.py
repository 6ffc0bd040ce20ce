"""Small helpers shared by the perf scenarios: free loopback ports, a process's RSS and
CPU time (all its threads, or thread by thread), a broker started on loopback, and its
/metrics."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_bytes(pid: int) -> int:
    """Resident set size of `pid` from /proc (0 if it has none)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _stat_fields(path: str) -> list[str]:
    """The fields of a /proc stat file after the command name (field 3 onwards)."""
    with open(path) as f:
        return f.read().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process: every thread, io_uring's io-wq workers
    (threads of the process) included, and the threads that have already exited."""
    fields = _stat_fields(f"/proc/{pid}/stat")
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def thread_cpu(pid: int) -> dict[int, tuple[str, float, float]]:
    """Each live thread of `pid`: tid -> (name, user s, system s)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            fields = _stat_fields(f"/proc/{pid}/task/{tid}/stat")
        except OSError:  # the thread exited meanwhile
            continue
        out[int(tid)] = (name, int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK)
    return out


def metrics_text(admin: int) -> str:
    """The broker's Prometheus text from its admin endpoint on 127.0.0.1:`admin`."""
    url = f"http://127.0.0.1:{admin}/metrics"
    return urllib.request.urlopen(url, timeout=10).read().decode()


def sample(text: str, name: str) -> float | None:
    """The value of the sample named exactly `name` (labels included) in Prometheus text."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def start_sluice(binary: str, data: Path, port: int, admin: int, *args: str,
                 start_timeout_s: float = 30, shards: int = 2,
                 prefix: tuple[str, ...] = ()) -> subprocess.Popen:
    """`sluice serve` on 127.0.0.1:`port` (`shards` shards, admin endpoint on `admin`) with
    `args`, run under `prefix` (`("taskset", "-c", "0")`), logging to broker.log next to
    `data`; returns once it accepts connections (within `start_timeout_s`)."""
    log = open(data.parent / "broker.log", "a")
    proc = subprocess.Popen(
        [*prefix, binary, "serve", "--listen", f"127.0.0.1:{port}",
         "--admin-addr", f"127.0.0.1:{admin}", "--data-dir", str(data),
         "--shards", str(shards), *args],
        stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + start_timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit("broker did not start; see broker.log")
        time.sleep(0.05)
