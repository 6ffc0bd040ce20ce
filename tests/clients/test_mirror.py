"""`sluice mirror` between two real Sluice brokers: the move from one machine to a
cluster. A keyed topic and a consumer group with committed offsets are mirrored while
producers keep writing; the mirror is SIGKILLed halfway and started again; after the
switch-over, a consumer of the group on the target resumes exactly after the records
the group had committed on the source, and the target holds every source record once,
in order, in the same partition. And a group idle since an earlier mirror run (stopped
by SIGTERM or SIGKILL) is still translated exactly after a restart, from the offset
syncs the earlier run persisted on the target.

Not testable here: a real Kafka or Redpanda cluster as the target (none can be run
in this environment); the mirror uses only standard Kafka APIs on both sides
(Metadata, CreateTopics, DescribeConfigs, transactions with TxnOffsetCommit,
OffsetFetch/OffsetCommit), so what differs there is which topic configs the target
accepts (Sluice-only ones are dropped and reported).
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

import rdkafka_io

DEADLINE_S = 90
PARTITIONS = 3


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def read_all(bootstrap: str, topic: str, partitions: int, *, group: str | None = None,
             idle_s: float = 3.0) -> dict[int, list[tuple[int, bytes, bytes]]]:
    """Every record (read_committed) per partition as (offset, key, value): assigned from
    the start, or (group) subscribed from the group's committed offsets, until idle."""
    conf = {"bootstrap.servers": bootstrap, "isolation.level": "read_committed",
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "group.id": group or unique("reader")}
    c = Consumer(conf)
    if group:
        c.subscribe([topic])
    else:
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out: dict[int, list] = {p: [] for p in range(partitions)}
    last, deadline = time.monotonic(), time.monotonic() + DEADLINE_S
    while time.monotonic() - last < idle_s:
        assert time.monotonic() < deadline, "reading never went idle"
        m = c.poll(0.2)
        if m is None or m.error() is not None:
            continue
        out[m.partition()].append((m.offset(), m.key(), m.value()))
        last = time.monotonic()
    c.close()
    return out


class Writer(threading.Thread):
    """Keyed records to the source until stopped: value = key:sequence."""

    def __init__(self, bootstrap: str, topic: str):
        super().__init__(daemon=True)
        self.p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                           "acks": "all", "linger.ms": 5})
        self.topic, self.stop, self.sent = topic, threading.Event(), 0
        self.errors: list = []

    def run(self):
        while not self.stop.is_set():
            for _ in range(50):
                k = f"key-{self.sent % 17}"
                self.p.produce(self.topic, key=k.encode(), value=f"{k}:{self.sent}".encode(),
                               on_delivery=lambda e, _m: e and self.errors.append(e))
                self.sent += 1
            self.p.poll(0)
            time.sleep(0.05)
        assert self.p.flush(30) == 0


def start_mirror(sluice_bin, a, b, topic, group, log):
    return subprocess.Popen(
        [sluice_bin, "mirror", "--from", a.bootstrap, "--to", b.bootstrap, "--topic", topic,
         "--group", group, "--name", "move", "--sync-interval-s", "1", "--report-interval-s", "1",
         "--commit-interval-ms", "200", "--output", "json"],
        stdout=log, stderr=subprocess.STDOUT)


def events(path) -> list[dict]:
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def test_mirror_copies_topic_and_group_and_survives_sigkill(broker_factory, sluice_bin, tmp_path):
    a, b = broker_factory(), broker_factory()
    topic, group = unique("orders"), unique("billing")
    rdkafka_io.create_topic(a.bootstrap, topic, PARTITIONS,
                            config={"retention.ms": "86400000", "max.message.bytes": "500000"})
    writer = Writer(a.bootstrap, topic)
    writer.start()
    time.sleep(1.0)

    # The group consumes part of the topic on the source and commits.
    c = Consumer({"bootstrap.servers": a.bootstrap, "group.id": group,
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    processed_on_a: list[tuple[int, int, bytes]] = []
    deadline = time.monotonic() + DEADLINE_S
    while len(processed_on_a) < 300:
        assert time.monotonic() < deadline
        m = c.poll(0.2)
        if m is None or m.error() is not None:
            continue
        processed_on_a.append((m.partition(), m.offset(), m.value()))
    c.commit(asynchronous=False)
    committed = {tp.partition: tp.offset for tp in c.committed(
        [TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)}
    c.close()

    log_path = tmp_path / "mirror.log"
    with open(log_path, "ab") as log:
        mirror = start_mirror(sluice_bin, a, b, topic, group, log)
        time.sleep(4)
        mirror.send_signal(signal.SIGKILL)  # halfway, mid-transaction perhaps
        mirror.wait(10)
        time.sleep(1)
        mirror = start_mirror(sluice_bin, a, b, topic, group, log)
        time.sleep(3)
        writer.stop.set()
        writer.join(60)
        assert not writer.errors, writer.errors
        # Wait until the target has every record, then stop the mirror gracefully.
        deadline = time.monotonic() + DEADLINE_S
        while True:
            assert mirror.poll() is None, log_path.read_text()[-3000:]
            status = [e for e in events(log_path) if e["event"] == "status"]
            if status and status[-1]["detail"]["lag"] == 0 and status[-1]["detail"]["copied"] > 0:
                break
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.5)
        time.sleep(2)  # one more offset sync after the last records
        mirror.send_signal(signal.SIGTERM)
        assert mirror.wait(30) == 0, log_path.read_text()[-3000:]

    evs = events(log_path)
    assert [e["event"] for e in evs].count("started") == 2
    assert any(e["event"] == "created-topic" for e in evs)
    assert any(e["event"] == "synced-group" and e["detail"]["group"] == group for e in evs)

    # The topic: same partitions, the configs set on the source.
    described = json.loads(subprocess.run(
        [sluice_bin, "topic", "describe", topic, "--brokers", b.bootstrap, "--output", "json"],
        capture_output=True, text=True, check=True).stdout)
    assert described["partition_count"] == PARTITIONS
    configs = {c["name"]: (c["value"], c["source"]) for c in described["configs"]}
    assert configs["retention.ms"] == ("86400000", "topic")
    assert configs["max.message.bytes"] == ("500000", "topic")

    # Every record, once, in order, in its partition, despite the SIGKILL.
    src = read_all(a.bootstrap, topic, PARTITIONS)
    dst = read_all(b.bootstrap, topic, PARTITIONS)
    assert sum(len(v) for v in src.values()) == writer.sent
    for p in range(PARTITIONS):
        assert [(k, v) for _, k, v in dst[p]] == [(k, v) for _, k, v in src[p]], f"partition {p}"

    # Switch-over: the group's consumer on the target starts right after what it had
    # committed on the source: nothing lost, nothing consumed twice.
    resumed = read_all(b.bootstrap, topic, PARTITIONS, group=group)
    for p in range(PARTITIONS):
        want = [v for off, _, v in src[p] if off >= committed[p]]
        assert [v for _, _, v in resumed[p]] == want, f"partition {p}"
    seen_on_a = {v for _, _, v in processed_on_a}
    seen_on_b = {v for recs in resumed.values() for _, _, v in recs}
    assert not (seen_on_a & seen_on_b), "records consumed twice across the switch-over"
    assert len(seen_on_a) + len(seen_on_b) == writer.sent


def produce_in_transactions(bootstrap: str, topic: str, first: int, count: int,
                            per_txn: int = 10) -> None:
    """Records `first`..`first+count` to partition 0, `per_txn` a transaction: the source
    then has a commit marker after every `per_txn` records, gaps in its offsets."""
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": unique("txn")})
    p.init_transactions(30)
    for start in range(first, first + count, per_txn):
        p.begin_transaction()
        for i in range(start, min(start + per_txn, first + count)):
            p.produce(topic, key=f"k{i % 7}".encode(), value=f"v{i}".encode(), partition=0)
        p.commit_transaction(30)


def commit_offset(bootstrap: str, group: str, topic: str, offset: int) -> None:
    """Commit `offset` for the group without joining it: the group stays idle."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
    c.close()


def committed_offset(bootstrap: str, group: str, topic: str) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "enable.auto.commit": False})
    [tp] = c.committed([TopicPartition(topic, 0)], timeout=10)
    c.close()
    return tp.offset


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_groups_idle_since_an_earlier_run_are_translated_after_a_restart(
        broker_factory, sluice_bin, tmp_path, stop):
    """A group committed on A inside what the first mirror run copied, idle since: the
    first run does not sync groups and is stopped; after a restart (more records on A
    meanwhile) the mirror commits the group on B at exactly the translated offset, from
    the offset syncs the first run persisted on B."""
    a, b = broker_factory(), broker_factory()
    topic, name = unique("ledger"), unique("restart")
    at_record, at_marker = unique("idle"), unique("idle-marker")
    rdkafka_io.create_topic(a.bootstrap, topic, 1)
    produce_in_transactions(a.bootstrap, topic, 0, 300)
    first = read_all(a.bootstrap, topic, 1)[0]
    assert len(first) == 300
    mid_offset = first[150][0]
    # An offset of A holding a commit marker, no record: the group's next record is the
    # one after it.
    marker, after_marker = next((off + 1, (k, v)) for (off, _, _), (nxt, k, v)
                                in zip(first[100:], first[101:]) if nxt > off + 1)
    commit_offset(a.bootstrap, at_record, topic, mid_offset)
    commit_offset(a.bootstrap, at_marker, topic, marker)

    base = [sluice_bin, "mirror", "--from", a.bootstrap, "--to", b.bootstrap, "--topic", topic,
            "--name", name, "--commit-interval-ms", "100", "--report-interval-s", "0.5",
            "--output", "json"]
    log_path = tmp_path / "mirror.log"
    with open(log_path, "ab") as log:
        mirror = subprocess.Popen(base + ["--no-groups"], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + DEADLINE_S
        while True:
            assert mirror.poll() is None, log_path.read_text()[-3000:]
            status = [e for e in events(log_path) if e["event"] == "status"]
            # Every record copied (the lag stays 1: A's last offset is a commit marker).
            if status and status[-1]["detail"]["copied"] == 300:
                break
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.2)
        mirror.send_signal(stop)
        rc = mirror.wait(30)
        assert rc == (0 if stop == signal.SIGTERM else -signal.SIGKILL), log_path.read_text()
        for g in (at_record, at_marker):
            assert committed_offset(b.bootstrap, g, topic) < 0, "the first run synced a group"

        produce_in_transactions(a.bootstrap, topic, 300, 100)
        second = subprocess.run(base + ["--once", "--group", at_record, "--group", at_marker,
                                        "--sync-interval-s", "0.5"],
                                stdout=log, stderr=subprocess.STDOUT, timeout=DEADLINE_S)
    assert second.returncode == 0, log_path.read_text()[-3000:]

    src = read_all(a.bootstrap, topic, 1)[0]
    dst = read_all(b.bootstrap, topic, 1)[0]
    assert [(k, v) for _, k, v in dst] == [(k, v) for _, k, v in src], "copied once, in order"
    on_b = {(k, v): off for off, k, v in dst}
    want_record = on_b[(first[150][1], first[150][2])]
    want_marker = on_b[after_marker]
    assert committed_offset(b.bootstrap, at_record, topic) == want_record
    assert committed_offset(b.bootstrap, at_marker, topic) == want_marker
    loaded = [e["detail"] for e in events(log_path) if e["event"] == "loaded-offset-syncs"]
    assert loaded[0]["runs"] == 0 and loaded[-1]["runs"] > 0, loaded

    # The syncs: one compacted partition on B, not a mirrored topic.
    syncs = f"sluice-mirror.{name}.offset-syncs"
    described = json.loads(subprocess.run(
        [sluice_bin, "topic", "describe", syncs, "--brokers", b.bootstrap, "--output", "json"],
        capture_output=True, text=True, check=True).stdout)
    assert described["partition_count"] == 1
    configs = {c["name"]: c["value"] for c in described["configs"]}
    assert configs["cleanup.policy"] == "compact"
    assert not any(e["event"] == "created-topic" and e["detail"]["topic"] == syncs
                   for e in events(log_path))
    refused = subprocess.run(base[:6] + ["--topic", syncs, "--once"],
                             capture_output=True, text=True, timeout=30)
    assert refused.returncode != 0 and "never mirrored" in refused.stderr, refused
