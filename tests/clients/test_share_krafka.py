"""A second share client: krafka 0.28.1 (crates.io), a Kafka client in Rust with its own
protocol code and its own KIP-932 ShareConsumer, written independently of librdkafka.

The consumer is `tests/krafka` (built by scripts/test.sh into tests/krafka/target, or
set KRAFKA_SHARE_BIN). The story: a krafka member works through a queue of 100 jobs,
sends one back (RELEASE) and gets it again with delivery count 2, accepts every job
exactly once; the share group's start offset is then past them all, and a librdkafka
member joining the same group afterwards gets only the next job.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import rdkafka_io
from test_share import consume, produce, set_group_configs, share_consumer, unique
from test_share_admin import describe_share_offsets

KRAFKA_BIN = os.environ.get("KRAFKA_SHARE_BIN") or str(
    Path(__file__).resolve().parents[1] / "krafka" / "target" / "release" / "sluice-krafka-share")


def krafka_share(bootstrap: str, topic: str, group: str, want: int) -> list[tuple[int, int, str]]:
    if not os.access(KRAFKA_BIN, os.X_OK):
        pytest.fail(f"{KRAFKA_BIN} is missing: `cargo build --release --manifest-path "
                    "tests/krafka/Cargo.toml` (scripts/test.sh does) or set KRAFKA_SHARE_BIN",
                    pytrace=False)
    out = subprocess.run([KRAFKA_BIN, bootstrap, topic, group, str(want)],
                         capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = []
    for line in out.stdout.splitlines():
        offset, count, value = line.split(" ", 2)
        rows.append((int(offset), int(count), value))
    return rows


def test_a_krafka_share_consumer_releases_one_job_gets_it_back_and_accepts_all(broker):
    topic, group = unique("q"), unique("g")
    rdkafka_io.create_topic(broker.bootstrap, topic, 1)
    set_group_configs(broker.bootstrap, group, {"share.auto.offset.reset": "earliest"})
    produce(broker.bootstrap, topic, [b"job-%d" % i for i in range(100)])
    deliveries = krafka_share(broker.bootstrap, topic, group, 100)
    first = [d for d in deliveries if d[0] == 0]
    assert first == [(0, 1, "job-0"), (0, 2, "job-0")], first
    others = sorted(d for d in deliveries if d[0] != 0)
    assert others == [(i, 1, f"job-{i}") for i in range(1, 100)], others[:5]
    assert describe_share_offsets(broker.port, group) == {(topic, 0): (100, 0)}
    produce(broker.bootstrap, topic, [b"job-100"])
    c = share_consumer(broker.bootstrap, group, topic)
    seen = consume(c, 1)
    c.close()
    assert seen == [(100, b"job-100", 1)]
