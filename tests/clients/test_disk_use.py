"""What a partition costs on disk: segment files are preallocated in chunks that start
small and double with the writes, so idle and low-volume partitions hold little disk
(they used to hold a 64 MiB chunk each from their first record)."""

from __future__ import annotations

import subprocess
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

MIB = 1 << 20


def allocated_bytes(path) -> int:
    out = subprocess.run(["du", "-s", "--block-size=1", str(path)], check=True,
                         capture_output=True, text=True).stdout
    return int(out.split()[0])


def test_partitions_holding_one_record_each_cost_well_under_a_mib_of_disk(broker):
    """A 20-partition topic gets one record per partition (acks=all, confluent-kafka):
    while the broker runs, the data directory holds less than 1 MiB per partition on
    disk (du), and a partition written on grows its file, every record readable."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for f in admin.create_topics([NewTopic("sparse", 20, 1)]).values():
        f.result(timeout=15)
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    for i in range(20):
        p.produce("sparse", value=b"one", partition=i)
    assert p.flush(30) == 0
    used = allocated_bytes(broker.data_dir)
    assert used < 20 * MIB, f"{used / MIB:.1f} MiB on disk for 20 partitions of one record"
    # One partition written on: its segment file grows past the first chunk.
    for _ in range(3000):
        p.produce("sparse", value=b"v" * 1000, partition=0)
        p.poll(0)
    assert p.flush(30) == 0
    seg = broker.data_dir / "sparse-0" / "00000000000000000000.log"
    deadline = time.monotonic() + 10
    while seg.stat().st_size < 3000 * 1000 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert seg.stat().st_size >= 3000 * 1000
    assert allocated_bytes(broker.data_dir) < 20 * MIB + 8 * MIB
