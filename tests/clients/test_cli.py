"""The `sluice` operator commands (topic, produce, consume, group, share-group, cluster,
dlq) driven as a user would: the real binary's CLI against the real broker, with
`--output json` parsed here, resets checked afterwards with a real consumer, and bad
input (unknown topic, bad offset spec, broker down) giving a clear message and the
documented exit code (src/cli/error.rs: 1 refused, 2 bad input, 3 unreachable,
4 not found, 5 unsupported).
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from datetime import datetime, timezone

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

import rdkafka_io
from conftest import free_ports

DEADLINE_S = 60


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Cli:
    def __init__(self, binary: str, broker):
        self.binary, self.broker = binary, broker

    def run(self, *args: str, stdin: str | None = None, check: bool = True,
            brokers: str | None = None, json_out: bool = True, timeout: float = DEADLINE_S):
        cmd = [self.binary, *args, "--brokers", brokers or self.broker.bootstrap,
               "--admin", self.broker.admin_addr]
        if json_out:
            cmd += ["--output", "json"]
        out = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)
        if check:
            assert out.returncode == 0, f"{cmd} exited {out.returncode}:\n{out.stderr}\n{out.stdout}"
        return out

    def json(self, *args: str, **kw):
        out = self.run(*args, **kw)
        return json.loads(out.stdout)

    def lines(self, *args: str, **kw) -> list[dict]:
        out = self.run(*args, **kw)
        return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


@pytest.fixture
def cli(broker, sluice_bin) -> Cli:
    return Cli(sluice_bin, broker)


def first_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """Where a real consumer of `group` starts on each partition: the offset of the first
    record it gets (no commits)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "enable.auto.commit": False, "auto.offset.reset": "latest"})
    c.subscribe([topic])
    seen: dict[int, int] = {}
    deadline = time.monotonic() + DEADLINE_S
    while len(seen) < partitions:
        assert time.monotonic() < deadline, f"only {seen} of {partitions} partitions read"
        m = c.poll(0.5)
        if m is None or m.error() is not None:
            continue
        seen.setdefault(m.partition(), m.offset())
    c.close()
    return seen


# --- topics ------------------------------------------------------------------------------

def test_topic_create_describe_alter_add_partitions_delete(cli):
    topic = unique("orders")
    made = cli.json("topic", "create", topic, "-p", "3", "-c", "retention.ms=3600000")
    assert made["topics"][0]["created"] is True and made["topics"][0]["partitions"] == 3

    listed = {t["topic"]: t for t in cli.json("topic", "list")["topics"]}
    assert listed[topic]["partitions"] == 3

    cli.run("produce", topic, "-p", "1", "-v", "a", "-v", "b")
    d = cli.json("topic", "describe", topic)
    assert d["partition_count"] == 3
    parts = {p["partition"]: p for p in d["partitions"]}
    assert parts[1]["high_watermark"] == 2 and parts[1]["log_start_offset"] == 0
    assert parts[0]["high_watermark"] == 0 and d["records"] == 2
    assert parts[1]["size_bytes"] > 0
    configs = {c["name"]: c for c in d["configs"]}
    assert configs["retention.ms"]["value"] == "3600000"
    assert configs["retention.ms"]["source"] == "topic"
    assert configs["segment.bytes"]["source"] == "default"

    cli.run("topic", "alter-config", topic, "--set", "max.message.bytes=2097152",
            "--delete", "retention.ms")
    configs = {c["name"]: c for c in cli.json("topic", "describe", topic)["configs"]}
    assert configs["max.message.bytes"]["value"] == "2097152"
    assert configs["max.message.bytes"]["source"] == "topic"
    bad = cli.run("topic", "alter-config", topic, "--set", "cleanup.policy=shred", check=False)
    assert bad.returncode == 2 and json.loads(bad.stderr)["error_name"] == "INVALID_CONFIG"
    assert configs["retention.ms"]["source"] == "default"

    cli.run("topic", "add-partitions", topic, "--total", "5")
    assert cli.json("topic", "describe", topic)["partition_count"] == 5
    fewer = cli.run("topic", "add-partitions", topic, "--total", "2", check=False)
    assert fewer.returncode != 0 and "INVALID_PARTITIONS" in fewer.stderr, fewer.stderr

    again = cli.run("topic", "create", topic, check=False, json_out=False)
    assert again.returncode == 1, again
    assert "TOPIC_ALREADY_EXISTS (36)" in again.stderr, again.stderr
    assert cli.run("topic", "create", topic, "--if-not-exists").returncode == 0

    cli.run("topic", "delete", topic)
    gone = cli.run("topic", "describe", topic, check=False, json_out=False)
    assert gone.returncode == 4, gone
    assert "UNKNOWN_TOPIC_OR_PARTITION" in gone.stderr and topic in gone.stderr, gone.stderr
    assert cli.run("topic", "delete", topic, "--if-exists").returncode == 0
    assert topic not in {t["topic"] for t in cli.json("topic", "list")["topics"]}


def test_table_output_is_aligned_for_people(cli):
    topic = unique("people")
    cli.run("topic", "create", topic, "-p", "2")
    out = cli.run("topic", "list", json_out=False).stdout
    header, *rows = out.splitlines()
    assert header.split() == ["TOPIC", "PARTITIONS", "REPLICAS"]
    row = next(r for r in rows if r.startswith(topic))
    assert row.split() == [topic, "2", "1"]
    # The second column starts where the padding after the topic name ends (the random
    # topic name may itself contain a "2").
    assert header.index("PARTITIONS") == len(row) - len(row[len(topic):].lstrip())


# --- produce and consume --------------------------------------------------------------------

def test_produce_and_consume_round_trip_keys_headers_partitions(cli):
    topic = unique("rt")
    cli.run("topic", "create", topic, "-p", "2")
    produced = cli.json("produce", topic, "-K", ":", "-H", "trace=t1", "-H", "app=cli", "-p", "1",
                        stdin="k1:v1\nk2:v2\nno-key-here\n")
    assert produced["produced"] == 3 and produced["failed"] == 0
    assert produced["partitions"] == [{"partition": 1, "first_offset": 0, "last_offset": 2, "count": 3}]

    records = cli.lines("consume", topic)
    assert [(r["partition"], r["offset"], r["key"], r["value"]) for r in records] == [
        (1, 0, "k1", "v1"), (1, 1, "k2", "v2"), (1, 2, None, "no-key-here")]
    assert records[0]["headers"] == [["trace", "t1"], ["app", "cli"]]

    text = cli.run("consume", topic, "-f", r"%p|%o|%k|%s|%h|%S\n", json_out=False).stdout
    assert text.splitlines() == ["1|0|k1|v1|trace=t1,app=cli|2", "1|1|k2|v2|trace=t1,app=cli|2",
                                 "1|2||no-key-here|trace=t1,app=cli|11"]

    # Where to start, and how many.
    assert [r["offset"] for r in cli.lines("consume", topic, "--from", "1")] == [1, 2]
    assert [r["offset"] for r in cli.lines("consume", topic, "--from", "-1")] == [2]
    assert [r["offset"] for r in cli.lines("consume", topic, "-c", "2")] == [0, 1]
    assert cli.lines("consume", topic, "--from", "end") == []
    assert cli.lines("consume", topic, "-p", "0") == []


def test_produce_from_a_file_compressed_unacknowledged_and_consume_with_every_format_field(cli, tmp_path):
    """produce -F (a file), -z zstd and --acks 0; consume -f with %t, %T and %K: the
    records come back whole, named by topic, with their key lengths (-1: no key) and
    the produce time."""
    topic = unique("file")
    cli.run("topic", "create", topic)
    lines = tmp_path / "records.txt"
    lines.write_text("k1=first\nsecond\n")
    before = int(time.time() * 1000)
    produced = cli.json("produce", topic, "-F", str(lines), "-K", "=", "-z", "zstd",
                        "--acks", "0")
    assert produced["produced"] == 2 and produced["failed"] == 0, produced
    after = int(time.time() * 1000)
    deadline = time.monotonic() + 20  # acks=0: the records land a moment later
    while time.monotonic() < deadline:
        text = cli.run("consume", topic, "-f", r"%t|%K|%k|%s|%T\n", json_out=False).stdout
        if len(text.splitlines()) == 2:
            break
        time.sleep(0.2)
    rows = [line.split("|") for line in text.splitlines()]
    assert [r[:4] for r in rows] == [[topic, "2", "k1", "first"], [topic, "-1", "", "second"]], rows
    assert all(before <= int(r[4]) <= after for r in rows), (before, rows, after)


def test_consume_follow_prints_records_produced_after_it_started(cli, broker, sluice_bin):
    """consume --follow waits at the end and prints what comes later, until stopped."""
    topic = unique("follow")
    cli.run("topic", "create", topic)
    cli.run("produce", topic, "-v", "early")
    proc = subprocess.Popen(
        [sluice_bin, "consume", topic, "--follow", "-f", r"%s\n", "--brokers", broker.bootstrap],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "early\n"
        cli.run("produce", topic, "-v", "late")
        assert proc.stdout.readline() == "late\n"  # the test's 300 s timeout bounds it
        assert proc.poll() is None, "consume --follow stopped at the end"
    finally:
        proc.terminate()
        proc.wait(30)


def test_consume_from_a_time(cli):
    topic = unique("time")
    cli.run("topic", "create", topic)
    cli.run("produce", topic, "-v", "old")
    time.sleep(1.0)
    middle = int(time.time() * 1000)
    time.sleep(1.0)
    cli.run("produce", topic, "-v", "new")
    assert [r["value"] for r in cli.lines("consume", topic, "--from", f"@{middle}")] == ["new"]
    iso = datetime.fromtimestamp(middle / 1000, timezone.utc).isoformat(timespec="milliseconds")
    assert [r["value"] for r in cli.lines("consume", topic, "--from", "@" + iso)] == ["new"]
    ago = int(time.time() * 1000) - middle
    assert [r["value"] for r in cli.lines("consume", topic, "--from", f"ago:{ago}ms")] == ["new"]


def test_consume_in_a_group_commits_what_it_printed(cli, broker):
    topic, group = unique("grp"), unique("g")
    cli.run("topic", "create", topic)
    cli.run("produce", topic, stdin="".join(f"r{i}\n" for i in range(5)))
    assert [r["value"] for r in cli.lines("consume", topic, "-g", group, "-c", "3")] == ["r0", "r1", "r2"]
    assert [r["value"] for r in cli.lines("consume", topic, "-g", group)] == ["r3", "r4"]
    d = cli.json("group", "describe", group)
    assert d["offsets"] == [{"topic": topic, "partition": 0, "committed": 5, "end": 5, "lag": 0,
                             "member": None, "client_id": None}]


# --- groups -------------------------------------------------------------------------------------

@pytest.fixture
def committed_group(cli, broker):
    """A 2-partition topic with 5 records a partition before `middle` (ms) and 5 after,
    and a group with committed offsets 4 (partition 0) and 6 (partition 1)."""
    topic, group = unique("reset"), unique("g")
    cli.run("topic", "create", topic, "-p", "2")
    for p in (0, 1):
        cli.run("produce", topic, "-p", str(p), stdin="".join(f"a{i}\n" for i in range(5)))
    time.sleep(1.2)
    middle = int(time.time() * 1000)
    time.sleep(1.2)
    for p in (0, 1):
        cli.run("produce", topic, "-p", str(p), stdin="".join(f"b{i}\n" for i in range(5)))
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition(topic, 0, 4), TopicPartition(topic, 1, 6)], asynchronous=False)
    c.close()
    return topic, group, middle


def test_group_list_describe_and_lag(cli, committed_group):
    topic, group, _ = committed_group
    assert group in {g["group"] for g in cli.json("group", "list")["groups"]}
    d = cli.json("group", "describe", group)
    assert d["state"] == "Empty" and d["members"] == []
    lag = {o["partition"]: (o["committed"], o["end"], o["lag"]) for o in d["offsets"]}
    assert lag == {0: (4, 10, 6), 1: (6, 10, 4)}
    assert d["total_lag"] == 10
    assert cli.json("group", "lag", group)["total_lag"] == 10
    every = {g["group"]: g for g in cli.json("group", "lag")["groups"]}
    assert every[group]["total_lag"] == 10 and every[group]["partitions"] == 2
    text = cli.run("group", "lag", group, json_out=False).stdout
    assert "total lag 10" in text


@pytest.mark.parametrize("mode,want", [
    (["--to-earliest"], {0: 0, 1: 0}),
    (["--to-latest"], {0: 10, 1: 10}),
    (["--to-offset", "3"], {0: 3, 1: 3}),
    (["--to-offset", "99"], {0: 10, 1: 10}),  # clamped to the end
    (["--shift-by", "-2"], {0: 2, 1: 4}),
    (["--shift-by", "3"], {0: 7, 1: 9}),
    (["--to-current"], {0: 4, 1: 6}),
    ("datetime", {0: 5, 1: 5}),
    ("timestamp", {0: 5, 1: 5}),
    ("duration", {0: 5, 1: 5}),
])
def test_every_reset_mode_moves_a_real_consumer(cli, broker, committed_group, mode, want):
    topic, group, middle = committed_group
    if mode == "datetime":
        mode = ["--to-datetime", datetime.fromtimestamp(middle / 1000, timezone.utc).isoformat()]
    elif mode == "timestamp":
        mode = ["--to-timestamp", str(middle)]
    elif mode == "duration":
        mode = ["--by-duration", f"{int(time.time() * 1000) - middle}ms"]
    plan = cli.json("group", "reset-offsets", group, "--topic", topic, *mode, "--dry-run")
    assert plan["dry_run"] is True
    assert {r["partition"]: r["target"] for r in plan["plan"]} == want
    assert {r["partition"]: r["current"] for r in plan["plan"]} == {0: 4, 1: 6}
    # The dry run changed nothing.
    assert {o["partition"]: o["committed"] for o in cli.json("group", "describe", group)["offsets"]} == {0: 4, 1: 6}

    done = cli.json("group", "reset-offsets", group, "--topic", topic, *mode)
    assert done["dry_run"] is False and done["reset"] == 2
    got = {o["partition"]: o["committed"] for o in cli.json("group", "describe", group)["offsets"]}
    assert got == want
    readable = {p: o for p, o in want.items() if o < 10}
    if readable:
        assert first_offsets(broker.bootstrap, group, topic, len(readable)) == readable


def test_reset_some_partitions_and_all_topics(cli, broker, committed_group):
    topic, group, _ = committed_group
    cli.run("group", "reset-offsets", group, "--topic", f"{topic}:1", "--to-earliest")
    assert {o["partition"]: o["committed"] for o in cli.json("group", "describe", group)["offsets"]} == {0: 4, 1: 0}
    cli.run("group", "reset-offsets", group, "--all-topics", "--to-offset", "2")
    assert first_offsets(broker.bootstrap, group, topic, 2) == {0: 2, 1: 2}


def test_reset_and_delete_refuse_a_group_with_live_members(cli, broker, committed_group):
    topic, group, _ = committed_group
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False})
    c.subscribe([topic])
    deadline = time.monotonic() + DEADLINE_S
    while not c.assignment():
        assert time.monotonic() < deadline
        c.poll(0.2)
    try:
        d = cli.json("group", "describe", group)
        assert d["state"] == "Stable" and len(d["members"]) == 1
        assigned = {(a["topic"], a["partition"]) for a in d["members"][0]["assignment"]}
        assert assigned == {(topic, 0), (topic, 1)}
        refused = cli.run("group", "reset-offsets", group, "--topic", topic, "--to-earliest",
                          check=False, json_out=False)
        assert refused.returncode == 1 and "NON_EMPTY_GROUP" in refused.stderr, refused.stderr
        assert "stop its consumers" in refused.stderr
        # The plan is still shown.
        assert cli.run("group", "reset-offsets", group, "--topic", topic, "--to-earliest", "--dry-run").returncode == 0
        busy = cli.run("group", "delete", group, check=False, json_out=False)
        assert busy.returncode == 1 and "NON_EMPTY_GROUP" in busy.stderr, busy.stderr
    finally:
        c.close()
    cli.run("group", "delete", group)
    assert group not in {g["group"] for g in cli.json("group", "list")["groups"]}


# --- bad input -------------------------------------------------------------------------------------

def test_bad_input_gives_a_clear_error_and_the_documented_exit_code(cli, broker, sluice_bin):
    topic = unique("bad")
    cli.run("topic", "create", topic)

    missing = cli.run("consume", "no-such-topic", check=False, json_out=False)
    assert missing.returncode == 4 and "UNKNOWN_TOPIC_OR_PARTITION (3)" in missing.stderr, missing.stderr

    spec = cli.run("consume", topic, "--from", "soon", check=False, json_out=False)
    assert spec.returncode == 2 and 'bad start "soon"' in spec.stderr, spec.stderr

    reset = cli.run("group", "reset-offsets", "g", "--topic", topic, "--by-duration", "yesterday",
                    check=False, json_out=False)
    assert reset.returncode == 2 and "bad duration" in reset.stderr, reset.stderr

    no_mode = cli.run("group", "reset-offsets", "g", "--topic", topic, check=False, json_out=False)
    assert no_mode.returncode == 2, no_mode.stderr  # clap: one of the --to-* is required

    bad_part = cli.run("produce", topic, "-p", "7", "-v", "x", check=False, json_out=False)
    assert bad_part.returncode == 4 and "partition" in bad_part.stderr, bad_part.stderr

    no_group = cli.run("group", "describe", unique("nobody"), check=False, json_out=False)
    assert no_group.returncode == 4 and "GROUP_ID_NOT_FOUND" in no_group.stderr, no_group.stderr

    # Broker down: nothing listens on this port.
    (port,) = free_ports(1)
    down = cli.run("topic", "list", brokers=f"127.0.0.1:{port}", check=False, json_out=False, timeout=30)
    assert down.returncode == 3, down
    assert f"cannot reach broker 127.0.0.1:{port}" in down.stderr and "--brokers" in down.stderr, down.stderr

    # With --output json the error is a JSON object on stderr.
    err = cli.run("topic", "describe", "no-such-topic", check=False)
    doc = json.loads(err.stderr)
    assert doc["exit_code"] == 4 and doc["error_code"] == 3 and doc["error_name"] == "UNKNOWN_TOPIC_OR_PARTITION"


def test_help_lists_the_exit_codes_scripts_can_rely_on(sluice_bin):
    out = subprocess.run([sluice_bin, "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "Exit codes of the admin commands" in out.stdout
    lines = {line[:5] for line in out.stdout.splitlines() if line[:2] == "  " and line[2:3].isdigit()}
    assert lines == {f"  {c}  " for c in range(6)}, out.stdout


def read_pty(master: int) -> bytes:
    import os
    shown = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the other side is closed and everything was read
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    return shown


def test_a_long_consume_to_a_file_shows_progress_on_a_terminal_and_nowhere_else(cli, broker, sluice_bin, tmp_path):
    import os
    import pty
    import re
    topic, n = unique("progress"), 1_000_000
    cli.run("topic", "create", topic)
    cli.run("produce", topic, stdin="".join(f"r{i}\n" for i in range(n)), timeout=180)
    master, slave = pty.openpty()
    with open(tmp_path / "out.txt", "w") as f:
        p = subprocess.Popen([sluice_bin, "consume", topic, "--brokers", broker.bootstrap],
                             stdout=f, stderr=slave)
        os.close(slave)
        shown = read_pty(master)
        assert p.wait(timeout=180) == 0, shown[-500:]
    assert (tmp_path / "out.txt").read_text().count("\n") == n
    counts = [int(c) for c in re.findall(rb"\rconsumed from " + topic.encode() + rb": (\d+)", shown)]
    assert counts and counts == sorted(counts) and 0 < counts[-1] <= n, shown[:500]
    assert shown.endswith(b"\r\x1b[K"), "the progress line is cleared at the end"
    # Not a terminal: no progress text at all (the records go to stdout, stderr stays empty).
    piped = cli.run("consume", topic, "-c", "100000", json_out=False, timeout=120)
    assert piped.stderr == "" and piped.stdout.count("\n") == 100_000


def test_brokers_come_from_the_environment(broker, sluice_bin):
    import os
    env = dict(os.environ, SLUICE_BROKERS=broker.bootstrap)
    out = subprocess.run([sluice_bin, "topic", "list", "--output", "json"], env=env,
                         capture_output=True, text=True, timeout=DEADLINE_S)
    assert out.returncode == 0, out.stderr
    assert "topics" in json.loads(out.stdout)


# --- cluster, share groups, DLQ ----------------------------------------------------------------------

def test_cluster_info(cli, broker):
    info = cli.json("cluster", "info")
    apis = {a["name"]: (a["min_version"], a["max_version"]) for a in info["apis"]}
    assert apis["Produce"][1] >= 9 and "ShareGroupDescribe" in apis
    assert info["brokers"][0]["port"] == broker.port
    assert info["log_dirs"] and info["log_dirs"][0]["total_bytes"] > 0
    assert info["sluice"]["shards"] == broker.shards
    assert info["sluice"]["data_dir"].endswith("data")


def test_share_group_list_describe_reset(cli, broker):
    from test_share import consume, set_group_configs, share_consumer
    topic, group = unique("sq"), unique("sg")
    cli.run("topic", "create", topic)
    set_group_configs(broker.bootstrap, group, {"share.auto.offset.reset": "earliest"})
    cli.run("produce", topic, stdin="".join(f"s{i}\n" for i in range(6)))
    c = share_consumer(broker.bootstrap, group, topic)
    consume(c, 6)
    d = cli.json("share-group", "describe", group)
    assert d["state"].lower() == "stable" and len(d["members"]) == 1
    assert d["partitions"][0]["start_offset"] == 6 and d["partitions"][0]["end"] == 6
    assert d["partitions"][0]["acquired"] == 0  # from the admin API
    assert group in {g["group"] for g in cli.json("share-group", "list")["groups"]}
    busy = cli.run("share-group", "reset", group, "--topic", topic, "--to-earliest", check=False, json_out=False)
    assert busy.returncode == 1 and "NON_EMPTY_GROUP" in busy.stderr, busy.stderr
    c.close()
    plan = cli.json("share-group", "reset", group, "--topic", topic, "--to-offset", "2", "--dry-run")
    assert plan["plan"][0]["current"] == 6 and plan["plan"][0]["target"] == 2
    deadline = time.monotonic() + DEADLINE_S
    while True:  # the member leaves the group when the consumer closes
        out = cli.run("share-group", "reset", group, "--topic", topic, "--to-offset", "2", check=False)
        if out.returncode == 0:
            break
        assert time.monotonic() < deadline, out.stderr
        time.sleep(0.5)
    assert cli.json("share-group", "describe", group)["partitions"][0]["start_offset"] == 2
    c = share_consumer(broker.bootstrap, group, topic)
    again = consume(c, 4)
    c.close()
    assert sorted(o for o, _, _ in again) == [2, 3, 4, 5]
    # Delete: refused while a member is there, then the group and its state are gone.
    deadline = time.monotonic() + DEADLINE_S
    while True:
        out = cli.run("share-group", "delete", group, check=False, json_out=False)
        if out.returncode == 0:
            break
        assert out.returncode == 1 and "NON_EMPTY_GROUP" in out.stderr, out.stderr
        assert time.monotonic() < deadline, out.stderr
        time.sleep(0.5)
    assert group not in {g["group"] for g in cli.json("share-group", "list")["groups"]}
    gone = cli.run("share-group", "describe", group, check=False, json_out=False)
    assert gone.returncode == 4, (gone.returncode, gone.stderr)


def test_dlq_inspect_and_redrive(cli, broker):
    from test_share import consume, dlq_setup, read_topic, reject_bad_release_flaky, share_consumer
    topic, group, dlq = dlq_setup(broker)
    c = share_consumer(broker.bootstrap, group, topic)
    reject_bad_release_flaky(c, 2)
    read_topic(broker.bootstrap, dlq, 2)
    seen = cli.json("dlq", "inspect", dlq)
    assert seen["records"] == 2 and seen["by_source_topic"] == {topic: 2}
    assert seen["by_reason"] == {"REJECTED": 1, "DELIVERY_COUNT_LIMIT": 1}
    assert {(r["value"], r["source_offset"]) for r in seen["shown"]} == {("bad", 0), ("flaky", 1)}
    assert cli.json("dlq", "inspect", dlq, "--group", "other")["records"] == 0
    moved = cli.json("dlq", "redrive", "--dlq", dlq)
    assert moved["moved"] == 2 and moved["by_topic"] == {topic: 2}
    again = consume(c, 2)
    c.close()
    assert sorted(v for _, v, _ in again) == [b"bad", b"flaky"]
