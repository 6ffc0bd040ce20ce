"""Faults on purpose (issues 12 and 14): a full disk under the broker's log and its
data, with real clients against the real binary.

The small file systems are size-limited tmpfs mounts made here (the tests run as
root) and unmounted afterwards; "full" means a filler file took every byte left.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import rdkafka_io
from powercut import PowerCutMount, require_fuse

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


class SmallFs:
    """A size-limited tmpfs at `path`, with a filler file to make it full."""

    def __init__(self, path: Path, size: str):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
        self.filler = path / "filler"

    def fill(self) -> int:
        """Writes the filler until ENOSPC; returns the bytes it took."""
        written = 0
        with open(self.filler, "ab", buffering=0) as f:
            chunk = b"\0" * 4096
            while True:
                try:
                    written += f.write(chunk)
                except OSError:
                    break
            # tmpfs allocates in pages: take the last partial page too.
            for _ in range(4096):
                try:
                    written += f.write(b"\0")
                except OSError:
                    break
        return written

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)


@pytest.fixture
def small_fs():
    """`small_fs(size)` mounts a tmpfs of that size; all are unmounted after the test
    (lazily: a broker still holding files does not keep it mounted)."""
    made: list[SmallFs] = []
    root = Path(tempfile.mkdtemp(prefix="sluice-smallfs-"))

    def make(size: str = "4m") -> SmallFs:
        fs = SmallFs(root / f"fs{len(made)}", size)
        made.append(fs)
        return fs

    yield make
    for fs in made:
        fs.unmount()
    subprocess.run(["rm", "-rf", str(root)], check=False)


def dropped_log_lines(broker) -> float:
    return sum(broker.metric("sluice_log_lines_dropped_total").values())


def produce_and_read_back(bootstrap: str, topic: str, count: int = 50) -> None:
    rdkafka_io.create_topic(bootstrap, topic, 2)
    producer = Producer(rdkafka_io.producer_config(bootstrap, linger_ms=1, message_timeout_ms=15_000))
    failed = []
    for i in range(count):
        producer.produce(topic, value=b"v%d" % i, key=b"k%d" % i,
                         on_delivery=lambda err, msg: err and failed.append(err))
    assert producer.flush(20) == 0
    assert not failed, failed
    got = rdkafka_io.consume_all(bootstrap, topic, 2, timeout=30)
    assert sorted(r.value for r in got) == sorted(b"v%d" % i for i in range(count))


def churn_topics(bootstrap: str, prefix: str, n: int) -> None:
    """Creates and deletes topics: every create and delete is an INFO line."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [f"{prefix}-{i}" for i in range(n)]
    for f in admin.create_topics([NewTopic(t, 2, 1) for t in names], operation_timeout=15).values():
        f.result(timeout=20)
    for f in admin.delete_topics(names, operation_timeout=15).values():
        f.result(timeout=20)


def test_a_full_disk_under_stderr_drops_log_lines_and_the_broker_keeps_serving(
        small_fs, broker_factory):
    """Issue 12 item 3: stderr redirected to a file on a disk that fills up. Before
    the fix tracing's fallback `eprintln!` panicked and panic=abort ended the process."""
    fs = small_fs("256k")
    broker = broker_factory(log_path=fs.path / "broker.log")
    assert fs.fill() > 0
    # The log's last page may still have room for a few lines: churn enough to pass it.
    churn_topics(broker.bootstrap, "logchurn", 30)
    broker.assert_alive()
    produce_and_read_back(broker.bootstrap, "after-full-log")
    assert dropped_log_lines(broker) >= 10, "every create and delete logs a line that had nowhere to go"
    fs.free()
    churn_topics(broker.bootstrap, "logback", 1)
    assert "logback-0" in (fs.path / "broker.log").read_text(errors="replace")
    assert broker.stop() == 0


def test_stderr_on_dev_full_from_the_start(broker_factory):
    """/dev/full fails every write: the broker starts, serves, counts and stops on SIGTERM."""
    broker = broker_factory(log_path=Path("/dev/full"))
    churn_topics(broker.bootstrap, "devfull", 3)
    produce_and_read_back(broker.bootstrap, "devfull-data")
    assert dropped_log_lines(broker) >= 6
    assert broker.stop() == 0


def partition_state(bootstrap: str, topic: str) -> tuple[int, int]:
    """(leader, error code) of partition 0 in a fresh Metadata response."""
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    p = md.topics[topic].partitions[0]
    return p.leader, (p.error.code() if p.error is not None else 0)


def wait_partition_state(bootstrap: str, topic: str, want: tuple[int, int], timeout: float = 20):
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = partition_state(bootstrap, topic)
        if seen == want:
            return
        time.sleep(0.2)
    raise AssertionError(f"{topic}-0 never showed (leader, error) {want} in Metadata; last {seen}")


def produce_values(bootstrap: str, topic: str, values: list[bytes], timeout_ms: int = 6000,
                   idempotent: bool = True):
    """Produces with acks=all; returns ({value: offset} acknowledged, [errors])."""
    producer = Producer(rdkafka_io.producer_config(
        bootstrap, linger_ms=1, message_timeout_ms=timeout_ms, enable_idempotence=idempotent))
    acked: dict[bytes, int] = {}
    errors: list[KafkaError] = []

    def report(err, msg):
        if err is None:
            acked[msg.value()] = msg.offset()
        else:
            errors.append(err)

    for v in values:
        producer.produce(topic, value=v, partition=0, on_delivery=report)
    left = producer.flush(timeout_ms / 1000 + 30)
    assert left == 0, f"{left} messages neither delivered nor failed: the producer hangs"
    return acked, errors


def read_partition(bootstrap: str, topic: str) -> dict[int, bytes]:
    return {r.offset: r.value for r in rdkafka_io.consume_all(bootstrap, topic, 1, timeout=30)}


def commit(bootstrap: str, topic: str, offset: int) -> bool:
    consumer = Consumer(rdkafka_io.consumer_config(bootstrap, group_id="faults"))
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
        return True
    except Exception:
        return False
    finally:
        consumer.close()


def committed(bootstrap: str, topic: str) -> int:
    consumer = Consumer(rdkafka_io.consumer_config(bootstrap, group_id="faults"))
    try:
        return consumer.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
    finally:
        consumer.close()


def test_a_full_data_disk_takes_the_partition_offline_in_metadata_and_back(
        small_fs, broker_factory):
    """Issue 12 item 2, issue 14 item 3 (ENOSPC): before the fix Metadata kept
    reporting leader 1 with no error while every append failed."""
    fs = small_fs("16m")
    broker = broker_factory(data_dir=fs.path / "data", flush="always")
    topic = "diskfull"
    rdkafka_io.create_topic(broker.bootstrap, topic, 1)
    first = [b"before-%05d-" % i + b"x" * 200 for i in range(300)]
    acked, errors = produce_values(broker.bootstrap, topic, first)
    assert not errors and len(acked) == len(first)
    assert commit(broker.bootstrap, topic, 100)
    last_commit = 100

    fs.fill()
    during = [b"during-%05d-" % i + b"y" * 2000 for i in range(2000)]
    # Not idempotent: on a full disk InitProducerId fails too (the producer-id block
    # cannot be saved), and this is about the partition.
    acked_during, errors = produce_values(broker.bootstrap, topic, during, idempotent=False)
    assert errors, "a full disk must fail the produce, not acknowledge it"
    acked.update(acked_during)
    # Out of space, not offline for good: the leader stays (consumers read on), the
    # partition carries KAFKA_STORAGE_ERROR.
    wait_partition_state(broker.bootstrap, topic, (1, KafkaError.KAFKA_STORAGE_ERROR))
    if commit(broker.bootstrap, topic, 200):
        last_commit = 200
    got = read_partition(broker.bootstrap, topic)
    assert {v: o for o, v in got.items()} == acked, "consumers read every acknowledged record as it was"
    assert "out of space" in broker.log_path.read_text()

    fs.free()
    wait_partition_state(broker.bootstrap, topic, (1, 0))
    after = [b"after-%05d-" % i for i in range(200)]
    acked_after, errors = produce_values(broker.bootstrap, topic, after)
    assert not errors and len(acked_after) == len(after), "appends resume without a restart"
    acked.update(acked_after)
    got = read_partition(broker.bootstrap, topic)
    assert {v: o for o, v in got.items()} == acked
    broker.assert_alive()

    broker.restart()
    assert {v: o for o, v in read_partition(broker.bootstrap, topic).items()} == acked
    assert committed(broker.bootstrap, topic) == last_commit
    assert broker.stop() == 0


@pytest.mark.parametrize("op", ["write", "fsync"])
def test_an_io_error_takes_its_partition_offline_and_a_restart_brings_back_every_acked_record(
        broker_factory, op):
    """Issue 14 item 3 (EIO): the power-cut file system fails every `op` (write or
    fdatasync) of one partition's files and of the group journal with EIO. That
    partition goes offline (LEADER_NOT_AVAILABLE, as Kafka does for a failed log dir)
    and acknowledges nothing more; another partition, on the same disk, goes on; a
    commit that cannot be saved fails. Once the errors stop, a restart brings back
    every acknowledged record, byte for byte at its offset, and the last commit that
    succeeded (or, after a failed fdatasync, possibly the one that was written)."""
    require_fuse()
    root = Path(tempfile.mkdtemp(prefix="sluice-eio-"))
    fail = root / "fail-rules"
    mount = PowerCutMount(root, seed=1, fail_file=fail).start()
    try:
        broker = broker_factory(data_dir=mount.mnt / "data", flush="always")
        for t in ("failing", "steady"):
            rdkafka_io.create_topic(broker.bootstrap, t, 1)
        acked = {}
        for t in ("failing", "steady"):
            got, errors = produce_values(broker.bootstrap, t, [b"%s-before-%04d" % (t.encode(), i)
                                                               for i in range(200)])
            assert not errors and len(got) == 200
            acked[t] = got
        assert commit(broker.bootstrap, "failing", 100)

        fail.write_text(f"{op} /failing-0/\n{op} /groups/\n")
        during = [b"failing-during-%04d" % i for i in range(100)]
        got, errors = produce_values(broker.bootstrap, "failing", during, idempotent=False)
        assert errors and not got, f"acknowledged on a failing disk: {len(got)}"
        wait_partition_state(broker.bootstrap, "failing", (-1, KafkaError.LEADER_NOT_AVAILABLE))
        assert not commit(broker.bootstrap, "failing", 150), "a commit that could not be saved succeeded"
        got, errors = produce_values(broker.bootstrap, "steady", [b"steady-after-%04d" % i
                                                                  for i in range(200)])
        assert not errors and len(got) == 200, "the partition without errors takes appends"
        acked["steady"].update(got)
        assert {v: o for o, v in read_partition(broker.bootstrap, "steady").items()} == acked["steady"]
        assert "partition log going offline" in broker.log_path.read_text()
        broker.assert_alive()

        fail.unlink()
        broker.restart()
        wait_partition_state(broker.bootstrap, "failing", (1, 0))
        back = read_partition(broker.bootstrap, "failing")
        for value, offset in acked["failing"].items():
            assert back.get(offset) == value, f"acked record at {offset} is {back.get(offset)!r}"
        # Records that were never acknowledged may be there (written, not synced) or
        # not, but only after the acknowledged ones and only as sent.
        extra = [back[o] for o in sorted(back) if o >= 200]
        assert extra == during[:len(extra)], extra[:3]
        assert {v: o for o, v in read_partition(broker.bootstrap, "steady").items()} == acked["steady"]
        # A commit whose write failed is gone; one whose fdatasync failed was answered
        # with an error, but its bytes were written and may stand (as after a failed
        # fsync anywhere: the client, told it failed, commits again).
        assert committed(broker.bootstrap, "failing") in ((100,) if op == "write" else (100, 150))
        got, errors = produce_values(broker.bootstrap, "failing", [b"failing-after-%04d" % i
                                                                   for i in range(50)])
        assert not errors and len(got) == 50, "the partition takes appends again after the restart"
        assert broker.stop() == 0
    finally:
        mount.stop()
        subprocess.run(["rm", "-rf", str(root)], check=False)
