"""Run the real Sluice broker for the client tests.

Every test gets its broker from the `broker` or `broker_factory` fixture. A broker
is the real binary (`$SLUICE_BIN`, default `target/release/sluice`) started as

    sluice serve --listen 127.0.0.1:<port> --data-dir <tmp>/data --shards 2
                 --admin-addr 127.0.0.1:<port> [--flush always|never|interval:MS]

with its stdout and stderr going to `<tmp>/broker.log`. When a test fails, the
tail of that log is added to the pytest report. Brokers are stopped and their
temp dirs removed after every test, failed or not (set SLUICE_KEEP_DATA=1 to
keep the dirs for a post-mortem; their paths are printed).
"""

from __future__ import annotations

import ctypes
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BIN = REPO_ROOT / "target" / "release" / "sluice"

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 15.0
LOG_TAIL_LINES = 80

# Ports are picked below Linux's default ephemeral range (32768-60999), so that
# no client connection can take the broker's port while it is down between a
# kill and a restart.
PORT_RANGE = (20000, 32000)


class BrokerError(AssertionError):
    """The broker did not start, died, or did not stop when asked."""


def sluice_binary() -> str:
    path = os.environ.get("SLUICE_BIN") or str(DEFAULT_BIN)
    if not os.access(path, os.X_OK):
        pytest.fail(
            f"broker binary {path!r} is missing or not executable: "
            "run `cargo build --release` or set SLUICE_BIN",
            pytrace=False,
        )
    return path


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, every thread) process `pid` has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports on 127.0.0.1 that nobody listens on right now."""
    held: list[socket.socket] = []
    try:
        while len(held) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.bind(("127.0.0.1", random.randrange(*PORT_RANGE)))
            except OSError:
                sock.close()
                continue
            held.append(sock)
        return [sock.getsockname()[1] for sock in held]
    finally:
        for sock in held:
            sock.close()


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGKILL the broker if pytest itself dies."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def port_accepts(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


# --- Prometheus text -----------------------------------------------------------

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Samples of a Prometheus text exposition as (name, labels, value)."""
    samples = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if not match:
            raise ValueError(f"not a Prometheus sample line: {line!r}")
        name, labels, value = match.groups()
        samples.append((name, dict(_LABEL.findall(labels or "")), float(value)))
    return samples


def parse_partition_hwms(text: str) -> dict[tuple[str, int], tuple[int, int]]:
    """{(topic, partition): (owner shard, high watermark)} from the metrics text.

    Reads lines like
        sluice_partition_high_watermark{topic="t",partition="3",shard="1"} 1234
    """
    hwms = {}
    for name, labels, value in parse_prometheus(text):
        if name == "sluice_partition_high_watermark":
            key = (labels["topic"], int(labels["partition"]))
            hwms[key] = (int(labels["shard"]), int(value))
    return hwms


# --- the broker process ----------------------------------------------------------


class Broker:
    """One real `sluice serve` process with its own ports and data dir.

    `restart()` keeps the ports and the data dir, so clients can reconnect to
    the same bootstrap address and find the data the previous run wrote.
    """

    def __init__(self, binary: str, workdir: Path, *, shards: int = 2,
                 flush: str | None = None, extra_args: tuple[str, ...] = (),
                 data_dir: Path | None = None, log_path: Path | None = None):
        self.binary = binary
        self.workdir = workdir
        # Both may point elsewhere (a small file system a fault test made).
        self.data_dir = data_dir or workdir / "data"
        self.log_path = log_path or workdir / "broker.log"
        self.port, self.admin_port = free_ports(2)
        self.shards = shards
        self.flush = flush
        self.extra_args = tuple(extra_args)
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self._final_log_tail: str | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def admin_addr(self) -> str:
        return f"127.0.0.1:{self.admin_port}"

    def command(self) -> list[str]:
        cmd = [
            self.binary, "serve",
            "--listen", self.bootstrap,
            "--data-dir", str(self.data_dir),
            "--shards", str(self.shards),
            "--admin-addr", self.admin_addr,
        ]
        if self.flush is not None:
            cmd += ["--flush", self.flush]
        return cmd + list(self.extra_args)

    # lifecycle

    def start(self, timeout: float = START_TIMEOUT_S, settle: float = 0.0) -> "Broker":
        """Start the process and wait until it serves (see _wait_until_serving).
        `settle`: seconds to leave it alone first, so that nothing from outside
        (our own probes) wakes its threads while it starts."""
        if self.is_running():
            raise BrokerError("broker is already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        cmd = self.command()
        # The broker reads SLUICE_* settings from the environment: only our flags count here.
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
        env.setdefault("RUST_BACKTRACE", "1")
        env.setdefault("RUST_LOG", "info")
        with open(self.log_path, "ab", buffering=0) as log:
            try:
                log.write(f"\n===== start #{self.starts}: {' '.join(cmd)}\n".encode())
                log.flush()
            except OSError:
                pass  # a log on a full file system (tests of exactly that)
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=env, cwd=self.workdir, preexec_fn=_die_with_parent,
            )
        time.sleep(settle)
        self._wait_until_serving(timeout)
        return self

    def _wait_until_serving(self, timeout: float) -> None:
        """Ready means: the Kafka port accepts TCP, and /metrics answers with a
        sample from every shard (it asks each shard over the mesh, so a shard
        that never started shows here, not as a hung client later)."""
        deadline = time.monotonic() + timeout
        stage = "accept TCP on the Kafka port"
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                raise BrokerError(
                    f"broker exited with code {code} while starting\n{self.log_tail()}")
            if stage.startswith("accept"):
                if port_accepts(self.port):
                    stage = f"report all {self.shards} shards on /metrics"
                    continue
            elif self._all_shards_report(deadline):
                return
            time.sleep(0.05)
        self._kill_and_reap()
        raise BrokerError(
            f"broker on {self.bootstrap} did not {stage} within {timeout:.0f} s\n{self.log_tail()}")

    def _all_shards_report(self, deadline: float) -> bool:
        try:
            text = self.metrics_text(timeout=max(0.1, min(5.0, deadline - time.monotonic())))
        except OSError:
            return False
        shards = {labels.get("shard") for name, labels, _ in parse_prometheus(text)
                  if name == "sluice_connections"}
        return shards >= {str(s) for s in range(self.shards)}

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def assert_alive(self) -> None:
        if not self.is_running():
            code = None if self.proc is None else self.proc.returncode
            raise BrokerError(f"broker is not running (exit code {code})\n{self.log_tail()}")

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """Graceful stop: SIGTERM, wait, then SIGKILL. Returns the exit code.

        Raises BrokerError if the broker had already died on its own, or did
        not exit within `timeout` after SIGTERM (it is SIGKILLed first).
        """
        self.assert_alive()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._kill_and_reap()
            raise BrokerError(
                f"broker did not exit within {timeout:.0f} s of SIGTERM; SIGKILLed\n"
                f"{self.log_tail()}")
        self.proc = None
        return code

    def kill9(self) -> None:
        """SIGKILL, as a power cut would: no chance to flush or clean up."""
        self.assert_alive()
        self._kill_and_reap()

    def restart(self, *, kill: bool = False, flush: str | None = None) -> "Broker":
        """Stop (gracefully, or with SIGKILL if `kill`), then start again on the
        same ports and data dir, optionally with another --flush policy."""
        if kill:
            self.kill9()
        else:
            code = self.stop()
            if code != 0:
                raise BrokerError(f"graceful stop exited with code {code}\n{self.log_tail()}")
        if flush is not None:
            self.flush = flush
        return self.start()

    def _kill_and_reap(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc = None

    # observation

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        if self._final_log_tail is not None:
            return self._final_log_tail
        if not self.log_path.is_file():
            return f"(the broker logs to {self.log_path}, not a regular file)"
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as err:
            return f"(no broker log: {err})"
        tail = text.splitlines()[-lines:]
        return f"--- last {len(tail)} lines of {self.log_path} ---\n" + "\n".join(tail)

    def metrics_text(self, timeout: float = 5.0) -> str:
        url = f"http://{self.admin_addr}/metrics"
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read().decode()

    def metric(self, name: str) -> dict[tuple[tuple[str, str], ...], float]:
        """Every sample of one metric: {sorted label pairs: value}."""
        return {tuple(sorted(labels.items())): value
                for sample_name, labels, value in parse_prometheus(self.metrics_text())
                if sample_name == name}

    def per_shard(self, name: str) -> dict[int, float]:
        """A per-shard counter or gauge as {shard: value}."""
        return {int(dict(labels)["shard"]): value for labels, value in self.metric(name).items()}

    def partition_hwms(self) -> dict[tuple[str, int], tuple[int, int]]:
        """{(topic, partition): (owner shard, high watermark)} from /metrics."""
        return parse_partition_hwms(self.metrics_text())

    def teardown(self, keep_data: bool) -> list[str]:
        """Stop whatever runs, remember the log tail, remove the temp dir.
        Returns the problems found (a broker that died on its own)."""
        problems = []
        if self.proc is not None:
            code = self.proc.poll()
            if code is not None:
                problems.append(f"broker on {self.bootstrap} died on its own with exit code {code}")
                self.proc = None
            else:
                try:
                    self.stop()
                except BrokerError as err:
                    problems.append(str(err).splitlines()[0])
        self._final_log_tail = self.log_tail()
        try:
            if self.log_path.is_file() and "panicked at" in self.log_path.read_text(errors="replace"):
                problems.append(f"the broker log has a panic (see {self.log_path} / the log tail)")
        except OSError:
            pass
        if keep_data:
            print(f"keeping broker data and log in {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return problems


# --- fixtures --------------------------------------------------------------------


@pytest.fixture(scope="session")
def sluice_bin() -> str:
    return sluice_binary()


@pytest.fixture
def broker_factory(request, sluice_bin):
    """Make brokers: `broker_factory(flush="always")` starts one and returns it."""
    brokers: list[Broker] = []
    request.node._sluice_brokers = brokers
    keep = os.environ.get("SLUICE_KEEP_DATA") == "1"

    def make(*, start: bool = True, **kwargs) -> Broker:
        workdir = Path(tempfile.mkdtemp(prefix="sluice-test-"))
        broker = Broker(sluice_bin, workdir, **kwargs)
        brokers.append(broker)
        if start:
            broker.start()
        return broker

    yield make

    problems = []
    for broker in brokers:
        problems += broker.teardown(keep)
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


@pytest.fixture
def broker(broker_factory) -> Broker:
    """A running 2-shard broker with the default flush policy."""
    return broker_factory()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, add the tail of each broker's log to the report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for i, broker in enumerate(getattr(item, "_sluice_brokers", ())):
            report.sections.append((f"sluice broker #{i} log ({broker.bootstrap})", broker.log_tail()))
