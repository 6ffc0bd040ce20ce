#!/usr/bin/env python3
"""Broker memory held by idle connections.

    /work/main/.venv/bin/python perf/idle_connections.py --connections 10000

Starts the broker (`target/release/sluice` or $SLUICE_BIN, 2 shards), reads its
VmRSS, opens CONNECTIONS connections that each send one ApiVersions request and
read the answer (so every connection has been through its read loop once) and
then stay open and silent, waits for RSS to settle, and prints RSS before and
after and the difference per connection. Needs `ulimit -n` above CONNECTIONS + 100.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from proc_util import free_port, rss_bytes

REPO = Path(__file__).resolve().parents[1]




def api_versions_v0(cid: int) -> bytes:
    client = b"idle"
    body = struct.pack(">hhih", 18, 0, cid, len(client)) + client
    return struct.pack(">i", len(body)) + body


def recv_frame(sock: socket.socket) -> None:
    def exact(n):
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return buf
    (size,) = struct.unpack(">i", exact(4))
    exact(size)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--connections", type=int, default=10_000)
    ap.add_argument("--settle", type=float, default=3.0)
    args = ap.parse_args()
    binary = os.environ.get("SLUICE_BIN", str(REPO / "target" / "release" / "sluice"))
    work = Path(tempfile.mkdtemp(prefix="sluice-idle-", dir="/var/tmp"))
    port, admin_port = free_port(), free_port()
    broker = subprocess.Popen(
        [binary, "serve", "--listen", f"127.0.0.1:{port}", "--admin-addr", f"127.0.0.1:{admin_port}",
         "--data-dir", str(work / "data"), "--shards", "2"],
        stdout=open(work / "broker.log", "wb"), stderr=subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")})
    socks = []
    ok = False
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    print("broker did not start", file=sys.stderr)
                    return 1
                time.sleep(0.1)
        time.sleep(args.settle)
        before = rss_bytes(broker.pid)
        for i in range(args.connections):
            if i % 1000 == 0:
                print(f"{i} connections", file=sys.stderr)
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            s.sendall(api_versions_v0(i))
            recv_frame(s)
            socks.append(s)
        time.sleep(args.settle)
        after = rss_bytes(broker.pid)
        print(f"binary={binary}")
        print(f"connections={len(socks)}")
        print(f"rss_before_mib={before / 2**20:.1f}")
        print(f"rss_after_mib={after / 2**20:.1f}")
        print(f"bytes_per_connection={(after - before) / max(len(socks), 1):.0f}")
        ok = True
        return 0
    finally:
        for s in socks:
            s.close()
        broker.send_signal(signal.SIGTERM)
        try:
            broker.wait(30)
        except subprocess.TimeoutExpired:
            broker.kill()
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"broker log kept: {work}/broker.log", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
