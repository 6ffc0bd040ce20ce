#!/usr/bin/env python3
"""The soak (issue 14 item 6): mixed load on the real binary, a SIGKILL every few minutes,
and a checker at the end.

    SLUICE_BIN=/abs/path/sluice .venv/bin/python perf/soak.py [--minutes 30] [--kill-every 180]
    SLUICE_BIN=/abs/path/sluice .venv/bin/python perf/soak.py --quick    # 60 s, 2 kills (the test)

One broker (`sluice serve --shards 2 --flush always`, a temp data dir, a free 127.0.0.1
port below the ephemeral range, `--retention-check-interval-ms 1000`; glibc malloc with
fixed thresholds unless --default-malloc, see FIXED_MALLOC) and, each in its own process
(multiprocessing, spawn) so that it keeps going across broker restarts:

1. `produce-a`: a keyed idempotent producer (enable.idempotence, acks=all) to topic A;
   values `key|seq|filler` as in tests/clients/workload.py. Every delivery-acked
   (partition, offset, key, seq, digest of the value) goes to its file.
2. `ctp`: consume-transform-produce. A read_committed consumer in group G1 reads A; per
   batch a transactional producer writes `<partition>:<offset>|<A value>` to topic B
   (same partition), sends the consumer's positions (send_offsets_to_transaction) and
   commits. Any error: abort if it can, then a fresh consumer (it starts from G1's
   committed offsets) and, if the producer is unusable, a fresh producer with the same
   transactional.id (that fences the old one and aborts what it left open).
3. `g2-N`: members of a consumer group G2 on A that join and leave on a schedule (a new
   member, a graceful close, or a SIGKILL of the member's process), committing after
   every batch.
4. `produce-c` + `share-N`: a plain acks=all producer to topic C, and two share-group
   consumers (ShareConsumer, explicit acknowledgement) that ACCEPT every record and
   commit_sync after every poll; an acknowledgement the broker confirmed, and one whose
   commit got no clear answer, are written down apart.
5. `produce-d`: a plain producer to topic D (segment.bytes 64 KiB, retention.bytes
   256 KiB, retention.ms 20 s): retention deletes segments all the time.
6. The main process: every --kill-every seconds a SIGKILL of the broker and a restart on
   the same data dir and ports, until the last third of the run (that last lifetime is
   long, for the RSS slope within a lifetime); G2's schedule; the broker's VmRSS and
   open fds (/proc/<pid>/status, /proc/<pid>/fd) sampled every few seconds; D's log
   start offsets sampled; a worker whose progress stalls is killed and replaced (and
   counted); a worker that raises fails the run.

At the end (broker up, the loads stopped; the share consumers first drain C) the
checker reads everything back and fails, with a line saying what, if:
- A: an acked record is not at its offset byte for byte, a (key, seq) is in A twice, a
  key's sequence goes backwards, or A's offsets have a hole;
- B (read_committed, after an init_transactions with the ctp transactional.id aborted
  anything left open): an A record is transformed twice, one below G1's committed
  offset is missing, one at or above it is there (offsets and output are committed
  together), or a transformed value differs from its A record;
- G2: a committed offset is above the high watermark, or a fresh member cannot join,
  read from the committed offsets to the end, and commit the end;
- C: an acked record was never accepted (confirmed or unconfirmed accept);
- D: an acked record at or above the log start offset is missing or different, or the
  log start never moved;
- RSS or fds grow: the value at the same uptime in the last lifetime against the first,
  and the least-squares slope over the second half of the last (long) lifetime, by more
  than RSS_TOLERANCE (max(8 MiB, 25 %)) or FD_TOLERANCE (16 fds; counted without the
  client connections, which the broker reports on /metrics and G2's churn moves);
- the broker log has a panic, or the broker's graceful stop at the end is not clean.

The broker's start, kill and readiness check are tests/clients/conftest.py's `Broker`
(the one the client tests use), imported from there rather than written again.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import multiprocessing as mp
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "clients"))

from confluent_kafka import (AcknowledgeType, Consumer, KafkaError, KafkaException,  # noqa: E402
                             Producer, ShareConsumer, TopicPartition)
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry,  # noqa: E402
                                   ConfigResource, NewTopic, ResourceType)

from workload import make_messages, parse_value  # noqa: E402

TOPIC_A, TOPIC_B, TOPIC_C, TOPIC_D = "soak-a", "soak-b", "soak-c", "soak-d"
PARTITIONS = {TOPIC_A: 4, TOPIC_B: 4, TOPIC_C: 2, TOPIC_D: 2}
TOPIC_D_CONFIG = {"segment.bytes": "65536", "retention.bytes": "262144", "retention.ms": "20000"}
G1, G2, SHARE_GROUP = "soak-g1", "soak-g2", "soak-share"
TXN_ID = "soak-ctp"
KEYS = 500
RATE_A, RATE_C, RATE_D = 600, 100, 200     # records/s
SHARE_CONSUMERS = 2
FINAL_G2_RECORDS = 200
G2_MAX_MEMBERS = 3

RSS_TOLERANCE_BYTES, RSS_TOLERANCE_FRACTION = 8 << 20, 0.25
FD_TOLERANCE = 16

MIB = 1 << 20

# glibc malloc raises its mmap threshold (up to 32 MiB) and trim threshold (twice that)
# after a large block is freed, and from then on keeps freed memory instead of returning
# it: a broker's RSS is then set by the largest burst it met (every client reconnecting
# after a restart) and differs between lifetimes by tens of MiB with no leak (the 30-minute
# run in docs/RELIABILITY.md, "Soak": 19 to 72 MiB, flat within each lifetime). Fixed
# thresholds make RSS follow the memory in use, which is what the RSS checks are about.
# --default-malloc runs the broker as deployed instead.
FIXED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}


def digest(value: bytes) -> str:
    return hashlib.blake2b(value, digest_size=8).hexdigest()


def quiet(config: dict) -> dict:
    """librdkafka logs every refused reconnect while the broker is down: fatal and critical only."""
    return {"reconnect.backoff.ms": 20, "reconnect.backoff.max.ms": 500, "log_level": 2, **config}


# --- the workers (each in its own process) ---------------------------------------------


class Worker:
    """What a worker process gets: its name, the bootstrap address, a stop flag, a progress
    stamp (time.time() of its last loop) and the file it appends its findings to."""

    def __init__(self, name: str, bootstrap: str, stop, progress, out: str, seed: int):
        self.name, self.bootstrap, self.stop, self.progress = name, bootstrap, stop, progress
        self.out_path, self.rng = out, random.Random(seed)
        self.out = open(out, "a", buffering=1 << 16)
        self.flushed = time.monotonic()

    def tick(self) -> None:
        self.progress.value = time.time()
        if time.monotonic() - self.flushed > 0.5:
            self.out.flush()
            self.flushed = time.monotonic()

    def write(self, line: str) -> None:
        self.out.write(line + "\n")


def run_worker(kind: str, name: str, bootstrap: str, stop, progress, out: str, seed: int) -> None:
    """Process entry: stdout and stderr to <out>.stderr, then the worker; an exception is
    written to <out>.error and the process exits 1 (the main process fails the run)."""
    fd = os.open(out + ".stderr", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    w = Worker(name, bootstrap, stop, progress, out, seed)
    try:
        WORKERS[kind](w)
    except BaseException:
        Path(out + ".error").write_text(traceback.format_exc())
        w.out.flush()
        sys.exit(1)
    w.out.flush()


def _produce(w: Worker, producer: Producer, topic: str, value: bytes, key: bytes | None,
             on_delivery) -> bool:
    """One produce, waiting while the local queue is full; False if asked to stop meanwhile."""
    while not w.stop.is_set():
        try:
            producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
            return True
        except BufferError:
            producer.poll(0.05)
            w.tick()
    return False


def produce_a(w: Worker) -> None:
    """The keyed idempotent producer. Failed deliveries (none expected under flush=always)
    are counted, not resent: each (key, seq) is produced once, so A must hold it at most
    once. A fatal error replaces the producer (counted)."""
    fatal = []

    def make() -> Producer:
        fatal.clear()
        return Producer(quiet({
            "bootstrap.servers": w.bootstrap, "enable.idempotence": True, "acks": "all",
            "partitioner": "murmur2_random", "linger.ms": 5, "compression.type": "lz4",
            "message.timeout.ms": 300_000, "queue.buffering.max.messages": 100_000,
            "error_cb": lambda e: e.fatal() and fatal.append(e.str())}))

    def on_delivery(err, msg):
        if err is None:
            key, seq = parse_value(msg.value())
            w.write(f"ack {msg.partition()} {msg.offset()} {key.decode()} {seq} {digest(msg.value())}")
        else:
            w.write(f"failed {err.code()}")

    producer, index, started = make(), 0, time.monotonic()
    chunk: list = []
    while not w.stop.is_set():
        if fatal:
            w.write(f"fatal {fatal[0]!r}")
            producer.purge()
            producer = make()
        due = int((time.monotonic() - started) * RATE_A)
        while index < due and not w.stop.is_set():
            if not chunk:
                # Deterministic per chunk; `start` continues each key's sequence.
                chunk = make_messages(1000, keys=KEYS, seed=index, start=index)[::-1]
            m = chunk.pop()
            if not _produce(w, producer, TOPIC_A, m.value, m.key, on_delivery):
                break
            index += 1
        producer.poll(0.05)
        w.tick()
    w.write(f"unflushed {producer.flush(60)}")


def _plain_producer(w: Worker, topic: str, rate: int, size: int) -> None:
    """acks=all at `rate` records/s, each acked (partition, offset, digest) written down."""
    producer = Producer(quiet({"bootstrap.servers": w.bootstrap, "acks": "all", "linger.ms": 5,
                               "message.timeout.ms": 300_000}))

    def on_delivery(err, msg):
        if err is None:
            w.write(f"ack {msg.partition()} {msg.offset()} {digest(msg.value())}")
        else:
            w.write(f"failed {err.code()}")

    seq, started = 0, time.monotonic()
    while not w.stop.is_set():
        due = int((time.monotonic() - started) * rate)
        while seq < due and not w.stop.is_set():
            value = (b"%s-%d-" % (topic.encode(), seq)).ljust(size, b"x")
            value += w.rng.randbytes(16)
            if not _produce(w, producer, topic, value, None, on_delivery):
                break
            seq += 1
        producer.poll(0.05)
        w.tick()
    w.write(f"unflushed {producer.flush(60)}")


def produce_c(w: Worker) -> None:
    _plain_producer(w, TOPIC_C, RATE_C, 200)


def produce_d(w: Worker) -> None:
    _plain_producer(w, TOPIC_D, RATE_D, 1000)


CALL_TIMEOUT_S = 30
STALL_S = CALL_TIMEOUT_S + 20   # no progress for this long: a call overran its timeout


class Ctp:
    """One consumer-transform-produce loop: a G1 consumer and a transactional producer."""

    def __init__(self, w: Worker):
        self.w = w
        self.consumer: Consumer | None = None
        self.producer: Producer | None = None

    def ensure_producer(self) -> None:
        while self.producer is None and not self.w.stop.is_set():
            # debug=eos: librdkafka's transaction steps go to ctp.N.log.stderr, the evidence
            # when a call overruns its timeout (librdkafka issues 5456, 5511).
            # metadata.recovery.strategy=none: with one broker, a SIGKILL leaves every known
            # broker down, so librdkafka re-bootstraps and decommissions broker 1 while it is
            # still cached as G1's coordinator; the next send_offsets_to_transaction then
            # waits forever (librdkafka 5511 with 5456, seen after nearly every first kill).
            p = Producer(quiet({"bootstrap.servers": self.w.bootstrap, "transactional.id": TXN_ID,
                                "linger.ms": 5, "transaction.timeout.ms": 15_000,
                                "metadata.recovery.strategy": "none",
                                "debug": "eos", "log_level": 7}))
            try:
                self.step("init-transactions")
                p.init_transactions(CALL_TIMEOUT_S)
                self.producer = p
            except KafkaException as err:
                self.w.write(f"init-failed {err.args[0].code()}")
                time.sleep(0.5)
            self.w.tick()

    def ensure_consumer(self) -> None:
        if self.consumer is None:
            self.consumer = Consumer(quiet({
                "bootstrap.servers": self.w.bootstrap, "group.id": G1,
                "isolation.level": "read_committed", "enable.auto.commit": False,
                "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 1000, "max.poll.interval.ms": 20_000}))
            self.consumer.subscribe([TOPIC_A])

    def drop_consumer(self) -> None:
        if self.consumer is not None:
            try:
                self.consumer.close()
            except (KafkaException, RuntimeError):
                pass
            self.consumer = None

    def one_transaction(self) -> None:
        batch = [m for m in self.consumer.consume(500, 0.5) if m.error() is None]
        if not batch:
            return
        p = self.producer
        self.step("begin")
        p.begin_transaction()
        for m in batch:
            value = b"%d:%d|" % (m.partition(), m.offset()) + m.value()
            while True:
                try:
                    p.produce(TOPIC_B, value=value, key=m.key(), partition=m.partition())
                    break
                except BufferError:
                    p.poll(0.05)
        positions = [tp for tp in self.consumer.position(self.consumer.assignment()) if tp.offset >= 0]
        self.step("send-offsets")
        p.send_offsets_to_transaction(positions, self.consumer.consumer_group_metadata(), CALL_TIMEOUT_S)
        self.step("commit-transaction")
        p.commit_transaction(CALL_TIMEOUT_S)
        self.w.write(f"commit {len(batch)} " + " ".join(f"{tp.partition}:{tp.offset}" for tp in positions))

    def step(self, what: str) -> None:
        """Each blocking call is bounded by CALL_TIMEOUT_S: the progress stamp is renewed before
        each, so a stall past the supervisor's limit is a call that overran its timeout; the
        step written here says which."""
        self.w.write(f"step {what}")
        self.w.out.flush()
        self.w.tick()

    def recover(self, err: KafkaError) -> None:
        """After a failed transaction: abort it if the producer can, else a new producer;
        always a new consumer, so reading resumes at G1's committed offsets."""
        self.w.write(f"error {err.code()} {err.str()[:80]!r}")
        if self.producer is not None and not err.fatal():
            try:
                self.step("abort-transaction")
                self.producer.abort_transaction(CALL_TIMEOUT_S)
                self.w.write("aborted")
            except KafkaException as again:
                self.w.write(f"abort-failed {again.args[0].code()}")
                self.producer = None
        else:
            self.producer = None
        self.drop_consumer()

    def run(self) -> None:
        while not self.w.stop.is_set():
            self.ensure_producer()
            if self.producer is None:
                break
            self.ensure_consumer()
            try:
                self.one_transaction()
            except KafkaException as err:
                self.recover(err.args[0])
            self.w.tick()
        self.drop_consumer()


def ctp(w: Worker) -> None:
    Ctp(w).run()


def g2_member(w: Worker) -> None:
    """A member of G2: reads A, commits after every batch until asked to leave, then closes
    (a graceful leave). The main process SIGKILLs some members instead."""
    c = Consumer(quiet({"bootstrap.servers": w.bootstrap, "group.id": G2,
                        "enable.auto.commit": False, "auto.offset.reset": "earliest",
                        "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000,
                        "max.poll.interval.ms": 20_000}))
    c.subscribe([TOPIC_A])
    while not w.stop.is_set():
        batch = [m for m in c.consume(500, 0.5) if m.error() is None]
        if batch:
            try:
                done = c.commit(asynchronous=False)
                w.write("commit " + " ".join(f"{tp.partition}:{tp.offset}" for tp in done or ()))
            except KafkaException as err:
                w.write(f"commit-failed {err.args[0].code()}")
        w.tick()
    c.close()


def share_member(w: Worker) -> None:
    """A share consumer on C: ACCEPT everything, commit_sync after every poll. Writes
    `accepted P O` for a confirmed acknowledgement, `unconfirmed P O` for one whose commit
    failed or got no answer (the broker may or may not have kept it)."""
    c = ShareConsumer(quiet({"bootstrap.servers": w.bootstrap, "group.id": SHARE_GROUP,
                             "share.acknowledgement.mode": "explicit", "max.poll.records": 200}))
    c.subscribe([TOPIC_C])
    while not w.stop.is_set():
        try:
            got = [m for m in c.poll(0.5) if m.error() is None]
        except KafkaException as err:
            w.write(f"poll-failed {err.args[0].code()}")
            got = []
        for m in got:
            c.acknowledge(m, AcknowledgeType.ACCEPT)
        if got:
            _share_commit(w, c, got)
        w.tick()
    c.close()


def _share_commit(w: Worker, c: ShareConsumer, got: list) -> None:
    by_partition = defaultdict(list)
    for m in got:
        by_partition[m.partition()].append((m.offset(), m.delivery_count()))
    try:
        results = c.commit_sync(CALL_TIMEOUT_S)
        ok = {tp.partition for tp, e in results.items() if e is None}
    except KafkaException as err:
        w.write(f"commit-failed {err.args[0].code()}")
        ok = set()
    for p, records in by_partition.items():
        word = "accepted" if p in ok else "unconfirmed"
        for o, n in records:
            w.write(f"{word} {p} {o} {n}")


WORKERS = {"produce-a": produce_a, "produce-c": produce_c, "produce-d": produce_d,
           "ctp": ctp, "g2": g2_member, "share": share_member}


# --- the main process: broker, schedule, samples ---------------------------------------


class Proc:
    """One worker process, as the main process sees it."""

    def __init__(self, ctx, kind: str, name: str, bootstrap: str, out_dir: Path, seed: int):
        self.kind, self.name = kind, name
        self.stop = ctx.Event()
        self.progress = ctx.Value("d", time.time())
        self.out = str(out_dir / f"{name}.log")
        self.proc = ctx.Process(target=run_worker, name=name, daemon=True,
                                args=(kind, name, bootstrap, self.stop, self.progress, self.out, seed))
        self.proc.start()

    def alive(self) -> bool:
        return self.proc.is_alive()

    def kill(self) -> None:
        if self.proc.is_alive():
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.join(10)

    def finish(self, timeout: float) -> bool:
        """Asks it to stop and waits; SIGKILLs it if it does not. True if it stopped itself."""
        self.stop.set()
        self.proc.join(timeout)
        if self.proc.is_alive():
            self.kill()
            return False
        return True


def c_acked(out_dir: Path) -> set[tuple[int, int]]:
    return {(int(parts[1]), int(parts[2])) for parts in lines(str(out_dir / "produce-c.*.log"))
            if parts[0] == "ack"}


def lines(pattern: str):
    for path in sorted(glob.glob(pattern)):
        with open(path, errors="replace") as f:
            for line in f:
                parts = line.split()
                if parts:
                    yield parts


class Soak:
    def __init__(self, args, workdir: Path):
        from conftest import Broker   # the client tests' broker (see the module doc)
        self.args, self.workdir = args, workdir
        self.out_dir = workdir / "out"
        self.out_dir.mkdir()
        self.broker = Broker(args.binary, workdir, shards=2, flush="always",
                             extra_args=("--retention-check-interval-ms", "1000"))
        self.ctx = mp.get_context("spawn")
        self.procs: dict[str, Proc] = {}
        self.incarnation = Counter()
        self.seed = 0
        # per lifetime: (uptime, RSS bytes, open fds less client connections, connections)
        self.samples: list[list[tuple[float, int, int, int]]] = []
        self.lifetime_start = 0.0
        self.anon: list[list[int]] = []   # RssAnon (heap) per sample, next to `samples`
        self.lifetimes: list[float] = []   # duration of each ended lifetime
        self.kills = 0
        self.hung: Counter = Counter()
        self.crashed: list[str] = []
        self.g2_joined = self.g2_left = self.g2_killed = 0
        self.g2_next = 0
        self.d_log_start: dict[int, list[int]] = defaultdict(list)
        self.d_segments_max = 0
        self.failures: list[str] = []
        self.notes: list[str] = []

    # broker

    def start_broker(self) -> None:
        self.broker.start(timeout=90)
        self.lifetime_start = time.monotonic()
        self.samples.append([])
        self.anon.append([])

    def kill_and_restart(self) -> None:
        self.broker.kill9()
        self.kills += 1
        self.lifetimes.append(time.monotonic() - self.lifetime_start)
        self.start_broker()

    def sample(self) -> None:
        pid = self.broker.proc.pid
        try:
            with open(f"/proc/{pid}/status") as f:
                status = {l.split(":")[0]: l.split()[1:] for l in f}
            rss = int(status["VmRSS"][0]) * 1024
            anon = int(status["RssAnon"][0]) * 1024
            fds = len(os.listdir(f"/proc/{pid}/fd"))
            connections = int(sum(self.broker.per_shard("sluice_connections").values()))
        except (OSError, KeyError, ValueError):
            return
        self.anon[-1].append(anon)
        self.samples[-1].append((time.monotonic() - self.lifetime_start, rss, fds - connections, connections))

    def sample_d(self, reader: Consumer) -> None:
        for p in range(PARTITIONS[TOPIC_D]):
            try:
                low, _ = reader.get_watermark_offsets(TopicPartition(TOPIC_D, p), timeout=2, cached=False)
            except KafkaException:
                continue
            seen = self.d_log_start[p]
            if not seen or seen[-1] != low:
                seen.append(low)
        segs = len(glob.glob(str(self.broker.data_dir / "**" / f"{TOPIC_D}-*" / "*.log"), recursive=True))
        self.d_segments_max = max(self.d_segments_max, segs)

    # workers

    def spawn(self, kind: str, name: str | None = None) -> Proc:
        name = name or kind
        self.incarnation[name] += 1
        self.seed += 1
        full = f"{name}.{self.incarnation[name]}"
        proc = Proc(self.ctx, kind, full, self.broker.bootstrap, self.out_dir, self.seed)
        self.procs[full] = proc
        return proc

    def supervise(self, stall_s: float) -> None:
        """A worker that raised fails the run (and is replaced so the load goes on); one whose
        progress stamp is older than `stall_s` is killed and replaced (counted: a hung
        client, e.g. librdkafka issue 5456, send_offsets_to_transaction past its timeout)."""
        for full, proc in list(self.procs.items()):
            base = full.rsplit(".", 1)[0]
            if not proc.alive():
                del self.procs[full]
                err = Path(proc.out + ".error")
                if err.exists():
                    self.crashed.append(f"{full}: {err.read_text().strip().splitlines()[-1]}")
                    self.spawn(proc.kind, base)
                elif not proc.stop.is_set():
                    self.crashed.append(f"{full}: exited with code {proc.proc.exitcode}")
                    self.spawn(proc.kind, base)
            elif not proc.stop.is_set() and time.time() - proc.progress.value > stall_s:
                proc.kill()
                del self.procs[full]
                self.hung[base] += 1
                last = tail(Path(proc.out), 1) or "(nothing written)"
                self.notes.append(f"{full} stalled {time.time() - proc.progress.value:.0f} s at {last!r}, "
                                  f"{time.monotonic() - self.lifetime_start:.0f} s into broker lifetime "
                                  f"{len(self.samples)}")
                self.spawn(proc.kind, base)

    def g2_members(self) -> list[Proc]:
        return [p for p in self.procs.values() if p.kind == "g2" and not p.stop.is_set()]

    def churn_g2(self, rng: random.Random) -> None:
        """Members join and leave: below one member, one joins; at the maximum, one leaves;
        otherwise either. A leaving member closes (2 in 3) or is SIGKILLed."""
        members = self.g2_members()
        join = not members or (len(members) < G2_MAX_MEMBERS and rng.random() < 0.5)
        if join:
            self.g2_next += 1
            self.spawn("g2", f"g2-{self.g2_next}")
            self.g2_joined += 1
            return
        leaving = rng.choice(members)
        if rng.random() < 1 / 3:
            leaving.kill()
            del self.procs[leaving.name]
            self.g2_killed += 1
        else:
            leaving.stop.set()   # it closes; supervise() reaps it
        self.g2_left += 1

    def setup(self) -> None:
        self.start_broker()
        admin = AdminClient({"bootstrap.servers": self.broker.bootstrap})
        topics = [NewTopic(t, num_partitions=n, replication_factor=1,
                           config=TOPIC_D_CONFIG if t == TOPIC_D else {})
                  for t, n in PARTITIONS.items()]
        for f in admin.create_topics(topics, operation_timeout=20, request_timeout=20).values():
            f.result(30)
        entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
                   for k, v in {"share.auto.offset.reset": "earliest",
                                "share.record.lock.duration.ms": "5000"}.items()]
        res = ConfigResource(ResourceType.GROUP, SHARE_GROUP, incremental_configs=entries)
        for f in admin.incremental_alter_configs([res], request_timeout=20).values():
            f.result(30)

    def run(self) -> None:
        a = self.args
        rng = random.Random(a.seed)
        self.setup()
        for kind in ("produce-a", "produce-c", "produce-d", "ctp"):
            self.spawn(kind)
        for i in range(SHARE_CONSUMERS):
            self.spawn("share", f"share-{i}")
        started = time.monotonic()
        end = started + a.seconds
        # Kills until the last third (at least one kill interval) is left: that lifetime is
        # the long one the within-lifetime RSS slope is taken over.
        last_kill = a.seconds - max(a.kill_every, a.seconds / 3)
        next_kill = started + a.kill_every
        next_churn = started
        next_sample = started
        d_reader = Consumer(quiet({"bootstrap.servers": self.broker.bootstrap, "group.id": "soak-d-probe"}))
        malloc = "glibc defaults" if a.default_malloc else " ".join(f"{k}={v}" for k, v in FIXED_MALLOC.items())
        print(f"soak: broker on {self.broker.bootstrap} ({malloc}), data in {self.broker.data_dir}; "
              f"{a.seconds:.0f} s, a SIGKILL every {a.kill_every:.0f} s until {last_kill:.0f} s", flush=True)
        try:
            while time.monotonic() < end:
                now = time.monotonic()
                if now >= next_kill and now - started <= last_kill + 0.5:
                    self.kill_and_restart()
                    print(f"soak: {now - started:6.0f} s  SIGKILL #{self.kills}, restarted "
                          f"({time.monotonic() - now:.1f} s)", flush=True)
                    next_kill += a.kill_every
                if now >= next_churn:
                    self.churn_g2(rng)
                    next_churn = now + a.churn_every
                if now >= next_sample:
                    self.sample()
                    self.sample_d(d_reader)
                    next_sample = now + a.sample_every
                self.supervise(a.stall_s)
                time.sleep(0.2)
        finally:
            d_reader.close()
        self.lifetimes.append(time.monotonic() - self.lifetime_start)

    def procs_of(self, kind: str) -> list[Proc]:
        return [p for p in self.procs.values() if p.kind == kind]

    def wind_down(self) -> None:
        """Producers flush and stop; G2 members close; the ctp loop gets until G1 has caught up
        (or catch_up_s); the share consumers until every acked C record was accepted."""
        a = self.args
        for kind in ("produce-a", "produce-c", "produce-d", "g2"):
            for p in self.procs_of(kind):
                if not p.finish(90):
                    self.notes.append(f"{p.name} did not stop within 90 s; killed")
        ends = self.marks(TOPIC_A)
        deadline = time.monotonic() + a.catch_up_s
        while time.monotonic() < deadline and self.ctp_position() != {p: h for p, (_, h) in ends.items()}:
            self.supervise(a.stall_s)
            time.sleep(0.5)
        for p in self.procs_of("ctp"):
            if not p.finish(60):
                self.notes.append(f"{p.name} did not stop within 60 s; killed")
        acked = c_acked(self.out_dir)
        deadline = time.monotonic() + a.catch_up_s
        while time.monotonic() < deadline and acked - self.share_accepted()[0]:
            self.supervise(a.stall_s)
            time.sleep(0.5)
        for p in self.procs_of("share"):
            if not p.finish(60):
                self.notes.append(f"{p.name} did not stop within 60 s; killed")

    def ctp_position(self) -> dict[int, int]:
        last: dict[int, int] = {}
        for parts in lines(str(self.out_dir / "ctp.*.log")):
            if parts[0] == "commit":
                for item in parts[2:]:
                    p, o = item.split(":")
                    last[int(p)] = int(o)
        return last

    def share_accepted(self) -> tuple[set, set, Counter]:
        confirmed, unconfirmed, deliveries = set(), set(), Counter()
        for parts in lines(str(self.out_dir / "share-*.log")):
            if parts[0] in ("accepted", "unconfirmed"):
                key = (int(parts[1]), int(parts[2]))
                (confirmed if parts[0] == "accepted" else unconfirmed).add(key)
                deliveries[key] += 1
        return confirmed | unconfirmed, unconfirmed - confirmed, deliveries

    def marks(self, topic: str, isolation: str = "read_uncommitted") -> dict[int, tuple[int, int]]:
        c = Consumer({"bootstrap.servers": self.broker.bootstrap, "group.id": "soak-marks",
                      "isolation.level": isolation})
        try:
            return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=20, cached=False)
                    for p in range(PARTITIONS[topic])}
        finally:
            c.close()

    # --- the checker ---------------------------------------------------------------

    def read(self, topic: str, starts: dict[int, int], ends: dict[int, int], isolation: str,
             on_record, timeout: float = 600) -> None:
        """Every record of `topic` from `starts` up to `ends` (end offsets, exclusive) with a
        fresh assign()ed consumer, CRC checks on, passed to on_record(partition, offset, key, value)."""
        # earliest: where retention deleted the start offset meanwhile, read on from the new
        # log start (check_d judges by the log start after the read).
        c = Consumer({"bootstrap.servers": self.broker.bootstrap, "group.id": "soak-checker",
                      "enable.auto.commit": False, "enable.partition.eof": True, "check.crcs": True,
                      "auto.offset.reset": "earliest",
                      "isolation.level": isolation, "fetch.wait.max.ms": 100})
        pending = {p for p in starts if ends[p] > starts[p]}
        c.assign([TopicPartition(topic, p, starts[p]) for p in pending])
        deadline = time.monotonic() + timeout
        try:
            while pending:
                if time.monotonic() > deadline:
                    raise AssertionError(f"reading {topic} timed out; partitions {sorted(pending)} short of {ends}")
                for m in c.consume(10_000, 0.5):
                    err = m.error()
                    if err is not None:
                        if err.code() != KafkaError._PARTITION_EOF:
                            raise KafkaException(err)
                        if m.offset() >= ends[m.partition()]:
                            pending.discard(m.partition())
                        continue
                    if m.offset() < ends[m.partition()]:
                        on_record(m.partition(), m.offset(), m.key(), m.value())
                    if m.offset() + 1 >= ends[m.partition()]:
                        pending.discard(m.partition())
        finally:
            c.close()

    def fail(self, line: str) -> None:
        self.failures.append(line)
        print(f"soak: FAIL {line}", flush=True)

    def check_a(self) -> dict:
        marks = self.marks(TOPIC_A)
        stored = {p: bytearray() for p in marks}   # 8-byte digests, by offset
        holes: list = []
        seen: set[tuple[bytes, int]] = set()
        dups: list = []
        backwards: list = []
        last_seq: dict[bytes, int] = {}
        expect = {p: lo for p, (lo, _) in marks.items()}

        def on_record(p, o, key, value):
            if o != expect[p]:
                holes.append((p, expect[p], o))
            expect[p] = o + 1
            stored[p] += bytes.fromhex(digest(value))
            k, seq = parse_value(value)
            if (k, seq) in seen:
                dups.append((k, seq, p, o))
            seen.add((k, seq))
            if seq <= last_seq.get(k, -1):
                backwards.append((k, seq, p, o))
            last_seq[k] = seq

        self.read(TOPIC_A, {p: lo for p, (lo, _) in marks.items()}, {p: h for p, (_, h) in marks.items()},
                  "read_uncommitted", on_record)
        acked = lost = failed = fatal = 0
        lost_eg = []
        for parts in lines(str(self.out_dir / "produce-a.*.log")):
            if parts[0] == "failed":
                failed += 1
            elif parts[0] == "fatal":
                fatal += 1
            elif parts[0] == "ack":
                acked += 1
                p, o, d = int(parts[1]), int(parts[2]), parts[5]
                if stored[p][o * 8:o * 8 + 8] != bytes.fromhex(d):
                    lost += 1
                    lost_eg.append((p, o, parts[3], parts[4]))
        if lost:
            self.fail(f"A: {lost} of {acked} acked records missing or different at their offset, e.g. {lost_eg[:5]}")
        if dups:
            self.fail(f"A: {len(dups)} (key, seq) stored twice, e.g. {dups[:5]}")
        if backwards:
            self.fail(f"A: {len(backwards)} records with a key's sequence going backwards, e.g. {backwards[:5]}")
        if holes:
            self.fail(f"A: offsets with holes (partition, expected, got): {holes[:5]}")
        if acked == 0:
            self.fail("A: nothing was acked")
        return {"marks": marks, "stored": stored, "acked": acked, "lost": lost, "dups": len(dups),
                "failed": failed, "fatal": fatal, "records": sum(len(s) // 8 for s in stored.values())}

    def committed(self, group: str, topic: str) -> dict[int, int]:
        c = Consumer({"bootstrap.servers": self.broker.bootstrap, "group.id": group,
                      "enable.auto.commit": False})
        try:
            tps = c.committed([TopicPartition(topic, p) for p in range(PARTITIONS[topic])], timeout=30)
            return {tp.partition: tp.offset for tp in tps}
        finally:
            c.close()

    def check_b(self, a: dict) -> dict:
        # Whatever a killed ctp process left open is aborted by a new producer with its id.
        p = Producer({"bootstrap.servers": self.broker.bootstrap, "transactional.id": TXN_ID})
        p.init_transactions(60)
        p.flush(5)
        g1 = self.committed(G1, TOPIC_A)
        marks = self.marks(TOPIC_B, "read_committed")
        count: Counter = Counter()
        differs: list = []

        def on_record(bp, o, key, value):
            where, original = value.split(b"|", 1)
            ap, ao = (int(x) for x in where.split(b":"))
            count[(ap, ao)] += 1
            s = a["stored"][ap]
            if ap != bp or s[ao * 8:ao * 8 + 8] != bytes.fromhex(digest(original)):
                differs.append((bp, o, ap, ao))

        self.read(TOPIC_B, {q: 0 for q in marks}, {q: h for q, (_, h) in marks.items()}, "read_committed",
                  on_record)
        twice = [k for k, n in count.items() if n > 1]
        below = {q: max(g1.get(q, -1), 0) for q in range(PARTITIONS[TOPIC_A])}
        missing = [(q, o) for q, n in below.items() for o in range(n) if count[(q, o)] != 1]
        beyond = [k for k in count if k[1] >= below[k[0]]]
        if twice:
            self.fail(f"B: {len(twice)} A records transformed more than once in committed output, e.g. {twice[:5]}")
        if missing:
            self.fail(f"B: {len(missing)} A records below G1's committed offsets {below} not in B exactly once, "
                      f"e.g. {missing[:5]}")
        if beyond:
            self.fail(f"B: {len(beyond)} A records at or above G1's committed offsets are in B's committed "
                      f"output (offsets not committed with their output), e.g. {beyond[:5]}")
        if differs:
            self.fail(f"B: {len(differs)} transformed records differ from their A record, e.g. {differs[:5]}")
        if sum(below.values()) == 0:
            self.fail("B: G1 committed nothing")
        kinds = Counter(parts[0] for parts in lines(str(self.out_dir / "ctp.*.log")))
        codes = Counter(parts[1] for parts in lines(str(self.out_dir / "ctp.*.log")) if parts[0] == "error")
        return {"below": sum(below.values()), "b_records": sum(count.values()), "twice": len(twice),
                "missing": len(missing), "commits": kinds["commit"], "aborts": kinds["aborted"],
                "errors": ", ".join(f"{n}x code {c}" for c, n in codes.most_common()) or "none",
                "fenced": kinds["abort-failed"]}

    def check_g2(self) -> dict:
        before = self.committed(G2, TOPIC_A)
        # Records the old members cannot have read: the fresh member must get them all.
        p = Producer({"bootstrap.servers": self.broker.bootstrap, "acks": "all"})
        for i in range(FINAL_G2_RECORDS):
            p.produce(TOPIC_A, value=b"g2-final|%d|" % i, partition=i % PARTITIONS[TOPIC_A])
        if p.flush(60):
            self.fail("G2: the records for the fresh member were not all delivered")
        marks = {p: h for p, (_, h) in self.marks(TOPIC_A).items()}
        above = {p: (o, marks[p]) for p, o in before.items() if o > marks[p]}
        if above:
            self.fail(f"G2: committed offsets above the high watermark (committed, hwm): {above}")
        want = sum(marks[p] - max(o, 0) for p, o in before.items())
        # A fresh member joins, gets every partition, reads from the committed offsets to the
        # end and commits it: the group is usable after all that churn.
        c = Consumer(quiet({"bootstrap.servers": self.broker.bootstrap, "group.id": G2,
                            "enable.auto.commit": False, "auto.offset.reset": "earliest",
                            "session.timeout.ms": 6000, "max.poll.interval.ms": 20_000}))
        got = 0
        position: dict[int, int] = {}
        c.subscribe([TOPIC_A])
        deadline = time.monotonic() + 120
        try:
            while any(position.get(p, max(before[p], 0)) < marks[p] for p in marks) \
                    and time.monotonic() < deadline:
                for m in c.consume(10_000, 0.5):
                    if m.error() is None:
                        got += 1
                        position[m.partition()] = m.offset() + 1
            if got:
                c.commit(asynchronous=False)
            assignment = {tp.partition for tp in c.assignment()}
        finally:
            c.close()
        after = self.committed(G2, TOPIC_A)
        if after != marks or got != want or assignment != set(marks):
            self.fail(f"G2: a fresh member read {got} records (expected {want}) and left the group's offsets "
                      f"at {after} (high watermarks {marks}; it was assigned {sorted(assignment)})")
        joined = sum(1 for n in self.incarnation if n.startswith("g2-"))
        commits = sum(1 for parts in lines(str(self.out_dir / "g2-*.log")) if parts[0] == "commit")
        return {"joined": joined, "commits": commits, "final_read": got}

    def check_c(self) -> dict:
        acked = c_acked(self.out_dir)
        accepted, only_unconfirmed, deliveries = self.share_accepted()
        never = sorted(acked - accepted)
        if never:
            self.fail(f"C: {len(never)} of {len(acked)} acked records never accepted by a share consumer, "
                      f"e.g. {never[:5]}")
        if not acked:
            self.fail("C: nothing was acked")
        return {"acked": len(acked), "never": len(never), "redelivered": sum(1 for n in deliveries.values() if n > 1),
                "only_unconfirmed": len(only_unconfirmed & acked)}

    def check_d(self) -> dict:
        marks = self.marks(TOPIC_D)
        stored: dict[tuple[int, int], str] = {}
        self.read(TOPIC_D, {p: lo for p, (lo, _) in marks.items()}, {p: h for p, (_, h) in marks.items()},
                  "read_uncommitted", lambda p, o, k, v: stored.__setitem__((p, o), digest(v)))
        # Retention goes on while we read: what it deleted meanwhile was not lost. Everything at
        # or above the log start after the read was there all along.
        after = self.marks(TOPIC_D)
        lost = []
        acked = 0
        for parts in lines(str(self.out_dir / "produce-d.*.log")):
            if parts[0] == "ack":
                acked += 1
                p, o = int(parts[1]), int(parts[2])
                if o >= after[p][0] and stored.get((p, o)) != parts[3]:
                    lost.append((p, o))
        if lost:
            self.fail(f"D: {len(lost)} acked records at or above the log start offset missing or different, "
                      f"e.g. {lost[:5]}")
        moves = sum(len(v) - 1 for v in self.d_log_start.values())
        if not all(lo > 0 for lo, _ in marks.values()) or moves == 0:
            self.fail(f"D: retention did not move the log start offset (now {marks}, moves seen {moves})")
        return {"acked": acked, "moves": moves, "log_start": {p: lo for p, (lo, _) in marks.items()},
                "hwm": {p: h for p, (_, h) in marks.items()}, "segments_max": self.d_segments_max}

    def check_resources(self) -> str:
        """RSS and fds: per lifetime, at the same uptime across lifetimes, and the slope over the
        second half of the last (long) lifetime."""
        lives = [s for s in self.samples if s]
        anons = [a for a in self.anon if a]
        for i, (s, anon) in enumerate(zip(lives, anons)):
            rss = [r for _, r, _, _ in s]
            fds = [f for _, _, f, _ in s]
            conns = [c for *_, c in s]
            print(f"soak: lifetime {i + 1}: {s[-1][0]:.0f} s, {len(s)} samples, RSS {rss[0] / MIB:.1f} -> "
                  f"max {max(rss) / MIB:.1f} -> {rss[-1] / MIB:.1f} MiB (anonymous {anon[0] / MIB:.1f} -> "
                  f"{anon[-1] / MIB:.1f}), fds less connections {fds[0]} -> "
                  f"max {max(fds)} -> {fds[-1]}, connections {min(conns)}-{max(conns)}")
        # "At the same uptime": the medians over uptimes 0.4-0.8 x kill_every of each lifetime
        # that got that far (one sample alone moves with segment rolls and retention).
        uptime = self.args.kill_every * 0.8
        at = [(median([r for u, r, _, _ in s if uptime / 2 <= u <= uptime]),
               median([f for u, _, f, _ in s if uptime / 2 <= u <= uptime]))
              for s in lives if s[-1][0] >= uptime]
        out = []
        if len(at) >= 2:
            (r0, f0), (r1, f1) = at[0], at[-1]
            tol = max(RSS_TOLERANCE_BYTES, RSS_TOLERANCE_FRACTION * r0)
            out.append(f"RSS at {uptime / 2:.0f}-{uptime:.0f} s uptime over {len(at)} lifetimes "
                       + "/".join(f"{r / MIB:.1f}" for r, _ in at) + " MiB")
            out.append("fds (less connections) " + "/".join(f"{f:.0f}" for _, f in at))
            if r1 - r0 > tol:
                self.fail(f"RSS at {uptime:.0f} s uptime grew {(r1 - r0) / MIB:.1f} MiB from the first lifetime "
                          f"to the last (tolerance {tol / MIB:.0f} MiB)")
            if f1 - f0 > FD_TOLERANCE:
                self.fail(f"open fds at {uptime:.0f} s uptime grew {f1 - f0} from the first lifetime to the last "
                          f"(tolerance {FD_TOLERANCE})")
        else:
            self.fail(f"fewer than 2 lifetimes reached {uptime:.0f} s uptime: no trend across lifetimes")
        last = lives[-1]
        half = [x for x in last if x[0] >= last[-1][0] / 2]
        if len(half) >= 3:
            span = half[-1][0] - half[0][0]
            rs, fs = slope([(u, r) for u, r, _, _ in half]), slope([(u, f) for u, _, f, _ in half])
            mean = sum(r for _, r, _, _ in half) / len(half)
            tol = max(RSS_TOLERANCE_BYTES, RSS_TOLERANCE_FRACTION * mean)
            out.append(f"RSS slope {rs * 60 / MIB:+.2f} MiB/min and fds {fs * 60:+.2f}/min over the last "
                       f"{span:.0f} s of the last lifetime")
            if rs * span > tol:
                self.fail(f"RSS grew {rs * span / MIB:.1f} MiB (fitted) over the last {span:.0f} s of the last "
                          f"lifetime (tolerance {tol / MIB:.0f} MiB)")
            if fs * span > FD_TOLERANCE:
                self.fail(f"open fds grew {fs * span:.1f} (fitted) over the last {span:.0f} s of the last "
                          f"lifetime (tolerance {FD_TOLERANCE})")
        else:
            self.fail("too few samples in the last lifetime for a slope")
        return "; ".join(out)

    def check(self, started: float) -> int:
        a = self.check_a()
        b = self.check_b(a)
        g2 = self.check_g2()
        c = self.check_c()
        d = self.check_d()
        res = self.check_resources()
        code = self.broker.stop()
        if code != 0:
            self.fail(f"the broker's graceful stop at the end exited with code {code}")
        if "panicked at" in self.broker.log_path.read_text(errors="replace"):
            self.fail("the broker log has a panic")
        for line in self.crashed:
            self.fail(f"worker raised: {line}")
        hung = ", ".join(f"{k} {n}" for k, n in sorted(self.hung.items())) or "none"
        print(f"soak: A (idempotent, acks=all): {a['acked']:,} acked, {a['lost']} lost, {a['dups']} duplicated, "
              f"{a['records']:,} stored, {a['failed']} failed deliveries, {a['fatal']} fatal producer errors", flush=True)
        print(f"soak: B (consume-transform-produce): {b['below']:,} A records below G1's offsets, "
              f"{b['b_records']:,} committed in B, {b['missing']} missing, {b['twice']} duplicated; "
              f"{b['commits']:,} transactions committed, {b['aborts']} aborted, {b['fenced']} abandoned (abort failed: "
              f"a new producer took over); failed transaction steps: {b['errors']}", flush=True)
        print(f"soak: G2: {g2['joined']} members joined, {self.g2_left} left ({self.g2_killed} SIGKILLed), "
              f"{g2['commits']:,} commits; a fresh member read the last {g2['final_read']:,} and committed the end",
              flush=True)
        print(f"soak: C (share group): {c['acked']:,} acked, {c['never']} never accepted, {c['redelivered']} "
              f"accepted more than once, {c['only_unconfirmed']} only with an unconfirmed accept", flush=True)
        print(f"soak: D (retention): {d['acked']:,} acked, log start moved {d['moves']} times, now {d['log_start']} "
              f"of {d['hwm']}, at most {d['segments_max']} segment files", flush=True)
        print(f"soak: workers replaced after stalling: {hung}; {'; '.join(self.notes) or 'no notes'}", flush=True)
        verdict = "FAIL" if self.failures else "PASS"
        print(f"soak: {time.monotonic() - started:.0f} s ({self.args.seconds:.0f} s of load), {self.kills} SIGKILLs, "
              f"{a['acked'] + c['acked'] + d['acked']:,} acked, {a['lost'] + c['never']} lost, "
              f"{a['dups'] + b['twice']} duplicated, {b['missing']} missing from exactly-once; {res}; {verdict}",
              flush=True)
        return 1 if self.failures else 0

    def cleanup(self) -> None:
        for p in list(self.procs.values()):
            p.kill()
        if self.broker.is_running():
            self.broker.kill9()


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / var if var else 0.0


def tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--kill-every", type=float, default=180.0, help="seconds between SIGKILLs")
    ap.add_argument("--quick", action="store_true", help="60 s, a kill every 20 s (2 kills): the test's form")
    ap.add_argument("--seed", type=int, default=6)
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (data, logs, worker files)")
    ap.add_argument("--default-malloc", action="store_true",
                    help="run the broker with glibc malloc's own dynamic thresholds (see FIXED_MALLOC)")
    args = ap.parse_args(argv)
    args.binary = os.environ.get("SLUICE_BIN") or str(ROOT / "target" / "release" / "sluice")
    if not os.path.isabs(args.binary):
        args.binary = os.path.abspath(args.binary)   # the broker runs in its temp dir
    if args.quick:
        args.seconds, args.kill_every = 60.0, 20.0
        args.churn_every, args.sample_every, args.stall_s, args.catch_up_s = 5.0, 1.0, STALL_S, 30.0
    else:
        args.seconds = args.minutes * 60
        args.churn_every, args.sample_every, args.stall_s, args.catch_up_s = 20.0, 3.0, STALL_S, 120.0
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if not os.access(args.binary, os.X_OK):
        print(f"soak: broker binary {args.binary!r} is missing or not executable (set SLUICE_BIN)")
        return 2
    if not args.default_malloc:
        os.environ.update(FIXED_MALLOC)   # the broker's environment (the clients get it too: harmless)
    workdir = Path(tempfile.mkdtemp(prefix="sluice-soak-"))
    soak = Soak(args, workdir)
    started = time.monotonic()
    code = 1
    try:
        soak.run()
        soak.wind_down()
        code = soak.check(started)
    except BaseException:
        traceback.print_exc()
        print(f"soak: FAIL the run stopped: {sys.exc_info()[1]!r}", flush=True)
        code = 1
    finally:
        soak.cleanup()
        if code:
            print(f"--- broker log tail ---\n{tail(soak.broker.log_path)}")
            for err in sorted(glob.glob(str(soak.out_dir / "*.error"))) + \
                    sorted(glob.glob(str(soak.out_dir / "*.stderr"))):
                text = tail(Path(err), 10)
                if text:
                    print(f"--- {Path(err).name} ---\n{text}")
        if args.keep:
            print(f"soak: kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
