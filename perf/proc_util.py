"""Small helpers shared by the perf scenarios: free loopback ports, a process's RSS, and
a broker started on loopback."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path


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


def start_sluice(binary: str, data: Path, port: int, admin: int, *args: str,
                 start_timeout_s: float = 30) -> subprocess.Popen:
    """`sluice serve` on 127.0.0.1:`port` (2 shards, admin endpoint on `admin`) with `args`,
    logging to broker.log next to `data`; returns once it accepts connections (within
    `start_timeout_s`)."""
    log = open(data.parent / "broker.log", "a")
    proc = subprocess.Popen(
        [binary, "serve", "--listen", f"127.0.0.1:{port}", "--admin-addr", f"127.0.0.1:{admin}",
         "--data-dir", str(data), "--shards", "2", *args],
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
