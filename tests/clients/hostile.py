"""Hostile and sloppy clients, by hand, for tests/clients/test_hostile.py and perf/hostile_load.py.

Each is an object with `start()`, `stop()` and `found()` (a dict of what it saw, for
the report and the test's assertions). They run in threads of their own (raw sockets,
wire.py) or, where a real client library must misbehave, in a child process that is
SIGKILLed. Every one is bounded in time and cleans up in `stop()`.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import wire


def _closed_by_peer(sock: socket.socket) -> bool:
    """True when the broker has closed `sock` (EOF or reset), without blocking."""
    try:
        sock.setblocking(False)
        data = sock.recv(1)
        return data == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


class ConnectionFlood:
    """Opens connections until `count` are open or refused, and holds them open."""

    def __init__(self, port: int, count: int):
        self.port, self.count = port, count
        self.socks: list[socket.socket] = []
        self.connect_errors = 0
        self._found: dict = {}

    def start(self) -> None:
        for _ in range(self.count):
            try:
                self.socks.append(wire.connect(self.port, timeout=5))
            except OSError:
                self.connect_errors += 1
        time.sleep(1.0)  # let the broker close the ones over its limit

    def stop(self) -> None:
        refused = sum(_closed_by_peer(s) for s in self.socks)
        self._found = {"opened": len(self.socks), "closed_by_broker": refused,
                       "held_open": len(self.socks) - refused,
                       "connect_errors": self.connect_errors}
        for s in self.socks:
            s.close()
        self.socks.clear()

    def found(self) -> dict:
        """What the connections looked like just before `stop()` closed them."""
        return self._found


class SlowFrames:
    """`conns` connections, each sending one ApiVersions request a byte at a time,
    a byte every `interval` seconds per connection; records when the broker closed
    each (seconds after its first byte)."""

    def __init__(self, port: int, conns: int, interval: float = 1.0):
        self.port, self.conns, self.interval = port, conns, interval
        self.closed_after: list[float] = []
        self.answered = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        request = wire.api_versions_request(0, 1)
        socks = [wire.connect(self.port) for _ in range(self.conns)]
        started = time.monotonic()
        sent = 0
        open_ = list(socks)
        try:
            while open_ and not self._stop.is_set():
                for s in list(open_):
                    if sent < len(request):
                        try:
                            s.sendall(request[sent:sent + 1])
                        except OSError:
                            pass
                    if _closed_by_peer(s):
                        self.closed_after.append(time.monotonic() - started)
                        open_.remove(s)
                    elif sent >= len(request):
                        self.answered += 1  # the whole request went out: not slow enough
                        open_.remove(s)
                sent += 1
                self._stop.wait(self.interval)
        finally:
            for s in socks:
                s.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def found(self) -> dict:
        done = sorted(self.closed_after)
        return {"connections": self.conns, "closed_by_broker": len(done),
                "closed_after_s": round(done[len(done) // 2], 1) if done else None,
                "completed": self.answered}


class NeverReader:
    """Sends Fetch requests for `topic` (from offset 0) as fast as the socket takes
    them and never reads a response; records whether and when the broker closed it."""

    def __init__(self, port: int, topic: str, partitions: int, max_bytes: int = 4 << 20):
        self.port, self.topic, self.partitions = port, topic, partitions
        self.max_bytes = max_bytes
        self.sent = 0
        self.local_port = 0
        self.closed_after: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", self.port))
        self.local_port = s.getsockname()[1]
        s.settimeout(0.5)
        started = time.monotonic()
        offsets = {p: 0 for p in range(self.partitions)}
        try:
            while not self._stop.is_set():
                try:
                    s.sendall(wire.fetch_v4_request(self.sent, self.topic, offsets, max_wait_ms=0, partition_max_bytes=self.max_bytes))
                    self.sent += 1
                except TimeoutError:
                    pass  # the broker stopped reading us: TCP pushes back
                except OSError:
                    self.closed_after = time.monotonic() - started
                    return
        finally:
            s.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def found(self) -> dict:
        return {"requests_sent": self.sent, "closed_after_s":
                None if self.closed_after is None else round(self.closed_after, 1),
                "broker_side_open": tcp_open(self.port, self.local_port)}


def tcp_open(local_port: int, remote_port: int) -> bool:
    """Whether a loopback TCP socket bound to `local_port` and connected to
    `remote_port` still exists in any state but TIME_WAIT/CLOSE (/proc/net/tcp)."""
    want = (f"0100007F:{local_port:04X}", f"0100007F:{remote_port:04X}")
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if (fields[1], fields[2]) == want and fields[3] not in ("06", "07"):
                return True
    return False


class Pipeliner:
    """Writes `count` ApiVersions requests without waiting, reading the answers in a
    second thread; checks every answer arrives, in request order."""

    def __init__(self, port: int, count: int):
        self.port, self.count = port, count
        self.answers: list[int] = []
        self.error: str | None = None
        self._sock: socket.socket | None = None
        self._writer = threading.Thread(target=self._write, daemon=True)
        self._reader = threading.Thread(target=self._read, daemon=True)

    def start(self) -> None:
        self._sock = wire.connect(self.port, timeout=60)
        self._reader.start()
        self._writer.start()

    def _write(self) -> None:
        data = b"".join(wire.api_versions_request(0, i) for i in range(self.count))
        try:
            self._sock.sendall(data)
        except OSError as e:
            self.error = f"write: {e}"

    def _read(self) -> None:
        try:
            for _ in range(self.count):
                (corr,) = struct.unpack_from(">i", wire.read_frame(self._sock), 0)
                self.answers.append(corr)
        except OSError as e:
            self.error = f"read after {len(self.answers)}: {e}"

    def stop(self) -> None:
        self._writer.join(60)
        self._reader.join(60)
        if self._sock is not None:
            self._sock.close()

    def found(self) -> dict:
        return {"requests": self.count, "answered": len(self.answers),
                "in_order": self.answers == list(range(len(self.answers))), "error": self.error}


QUITTER = r"""
import os, signal, sys, time
from confluent_kafka import Consumer, Producer
kind, bootstrap, topic, name = sys.argv[1:5]
if kind == "txn":
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": name,
                  "transaction.timeout.ms": 2000})
    p.init_transactions(30)
    p.begin_transaction()
    failed = []
    for i in range(100):
        p.produce(topic, key=b"quitter", value=b"never committed %d" % i,
                  on_delivery=lambda err, _m: err is not None and failed.append(str(err)))
    if p.flush(30) != 0 or failed:
        sys.exit(f"records of the open transaction not delivered: {failed[:3]}")
else:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": name,
                  "session.timeout.ms": 6000, "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    c.poll(0.5)  # joined, the rebalance under way
print("quitting", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


class Quitters:
    """Child processes that vanish (SIGKILL themselves) mid-transaction (`kind`
    "txn": 100 records produced in an open transaction) or mid-rebalance ("group":
    subscribed, first poll under way), one every `every` seconds."""

    def __init__(self, kind: str, bootstrap: str, topic: str, every: float = 2.0):
        self.kind, self.bootstrap, self.topic, self.every = kind, bootstrap, topic, every
        self.quit = 0
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            name = f"quitter-{self.kind}-{n}" if self.kind == "txn" else "quitters"
            n += 1
            try:
                child = subprocess.run(
                    [sys.executable, "-c", QUITTER, self.kind, self.bootstrap, self.topic, name],
                    capture_output=True, timeout=60, cwd=Path(__file__).parent)
            except subprocess.TimeoutExpired:
                self.failed.append(f"{name}: did not reach its quitting point in 60 s")
                continue
            if child.returncode == -signal.SIGKILL and b"quitting" in child.stdout:
                self.quit += 1
            else:
                self.failed.append(f"{name}: rc {child.returncode}: {child.stderr[-300:]!r}")
            self._stop.wait(self.every)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(90)

    def found(self) -> dict:
        return {"vanished": self.quit, "failed": self.failed[:3]}


def broker_log_bursts(log_text: str, min_gap_s: float = 0.95) -> dict[str, int]:
    """{kind: lines closer than `min_gap_s` to the previous line of that kind} over a
    broker log (tracing's default format: time, level, target, message, fields). A
    kind is the target and the message up to its first ':' or ';', fields left out;
    lines without a time are ignored."""
    last: dict[str, float] = {}
    bursts: dict[str, int] = {}
    for line in log_text.splitlines():
        parts = line.split(None, 3)
        if len(parts) < 4 or parts[1] not in ("WARN", "INFO", "ERROR"):
            continue
        try:
            t = _seconds(parts[0])
        except (ValueError, IndexError):
            continue
        message = re.split(r"\s[\w.]+=", parts[3], maxsplit=1)[0]
        kind = parts[2] + " " + re.split(r"[:;]", message, maxsplit=1)[0][:60]
        if kind in last and t - last[kind] < min_gap_s:
            bursts[kind] = bursts.get(kind, 0) + 1
        last[kind] = t
    return bursts


def _seconds(stamp: str) -> float:
    """Seconds since midnight of an RFC 3339 time such as 2026-12-02T19:00:00.123456Z."""
    clock = stamp.split("T", 1)[1].rstrip("Z")
    h, m, s = clock.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def kill_tree(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)


class Steady:
    """The well-behaved client next to the hostile ones: a producer (acks=all, no
    linger) sending `rate` records a second of `size` bytes to `topic` (one
    partition), and a consumer (assign, from the start) reading them. Each value
    carries its number and send time; `found()` has what was lost or duplicated and
    the ack and end-to-end latencies (ms)."""

    def __init__(self, bootstrap: str, topic: str, rate: int = 200, size: int = 1024):
        from confluent_kafka import Consumer, Producer, TopicPartition
        self.topic, self.rate, self.size = topic, rate, size
        self.producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0,
                                  "message.timeout.ms": 60_000})
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "steady",
                                  "enable.auto.commit": False, "fetch.wait.max.ms": 100,
                                  "check.crcs": True})
        self.consumer.assign([TopicPartition(topic, 0, 0)])
        self.sent = 0
        self.acked: dict[int, float] = {}   # number -> ack latency (ms)
        self.seen: dict[int, float] = {}    # number -> end-to-end latency (ms)
        self.duplicates = 0
        self.errors: list[str] = []
        self._producing = threading.Event()
        self._consuming = threading.Event()
        self._threads = [threading.Thread(target=self._produce, daemon=True),
                         threading.Thread(target=self._consume, daemon=True)]

    def start(self) -> None:
        self._producing.set()
        self._consuming.set()
        for t in self._threads:
            t.start()

    def _produce(self) -> None:
        pad = b"s" * max(0, self.size - 16)
        gap = 1.0 / self.rate
        next_at = time.monotonic()
        while self._producing.is_set():
            n, sent_at = self.sent, time.time()
            value = struct.pack(">qd", n, sent_at) + pad

            def done(err, _msg, n=n, sent_at=sent_at):
                if err is not None:
                    self.errors.append(f"record {n}: {err}")
                else:
                    self.acked[n] = (time.time() - sent_at) * 1000
            try:
                self.producer.produce(self.topic, value=value, partition=0, on_delivery=done)
                self.sent += 1
            except BufferError:
                pass
            next_at += gap
            while time.monotonic() < next_at:
                self.producer.poll(max(0.0, min(0.005, next_at - time.monotonic())))
        left = self.producer.flush(60)
        if left:
            self.errors.append(f"{left} records undelivered after 60 s")

    def _consume(self) -> None:
        while self._consuming.is_set():
            # poll, not consume(n): consume waits for n records or its whole timeout,
            # which would be measured as latency.
            msg = self.consumer.poll(0.2)
            if msg is None or msg.error() is not None:
                continue  # partition EOF and transient errors; losses show below
            n, sent_at = struct.unpack_from(">qd", msg.value(), 0)
            if n in self.seen:
                self.duplicates += 1
            self.seen[n] = (time.time() - sent_at) * 1000

    def stop(self, timeout: float = 60) -> None:
        self._producing.clear()
        self._threads[0].join(90)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not set(self.acked) <= set(self.seen):
            time.sleep(0.1)
        self._consuming.clear()
        self._threads[1].join(30)
        self.consumer.close()

    def found(self) -> dict:
        lost = sorted(set(self.acked) - set(self.seen))
        return {"sent": self.sent, "acked": len(self.acked), "consumed": len(self.seen),
                "lost": len(lost), "first_lost": lost[:5], "duplicates": self.duplicates,
                "errors": self.errors[:5],
                "ack_ms": percentiles(list(self.acked.values())),
                "e2e_ms": percentiles(list(self.seen.values()))}


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50 / p99 / p99.9 / max of `values` (nearest rank)."""
    if not values:
        return {"p50": None, "p99": None, "p999": None, "max": None}
    v = sorted(values)

    def rank(q: float) -> float:
        return round(v[min(len(v) - 1, int(q * len(v)))], 2)
    return {"p50": rank(0.50), "p99": rank(0.99), "p999": rank(0.999), "max": round(v[-1], 2)}


class RssSampler:
    """Samples a process's RSS every `every` seconds in a thread; `peak` in bytes."""

    def __init__(self, pid: int, every: float = 0.2):
        self.pid, self.every, self.peak = pid, every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with open(f"/proc/{self.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            self.peak = max(self.peak, int(line.split()[1]) * 1024)
            except OSError:
                return
            self._stop.wait(self.every)

    def start(self) -> "RssSampler":
        self._thread.start()
        return self

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(5)
        return self.peak
