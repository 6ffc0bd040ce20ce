#!/usr/bin/env python3
"""What the ACL authorizer costs: broker CPU per request with 1,000 ACLs against none.

    .venv/bin/python perf/acl.py
    TOTAL=500000 ROUNDS=4 .venv/bin/python perf/acl.py

Two brokers side by side (2 shards each, flush=never), each with a PLAINTEXT listener
(for setup) and a SASL_PLAINTEXT one where a SCRAM-SHA-512 user `perf` produces and
consumes: one without an authorizer, one with `--authorizer true` and 1,000 ACLs (500
literal topic ACLs, 300 prefixed ones, 198 group ACLs of other users, the prefixed
ALLOW ALL that lets `perf` at its topics and READ on its group, so every check walks
real index entries).
confluent-kafka (librdkafka): TOTAL uncompressed 1 KiB records produced (acks=1, linger
5 ms, small batches so requests are many) into a fresh 2-partition topic, then consumed
from the beginning (assign), on one broker then the other, the order alternating over
ROUNDS. Reports records/s and the broker's CPU µs per Produce / Fetch request and
per GB, and authorizer/none ratios of CPU per request (the issue's target: <= 1.05).

Results go to stdout and perf/out/acl.json.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient,
                                   NewTopic, ResourcePatternType, ResourceType,
                                   ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialUpsertion)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "clients"))
from conftest import free_ports  # noqa: E402
from proc_util import cpu_seconds  # noqa: E402  (perf/ is on sys.path: the script's dir)

BIN = os.environ.get("SLUICE_BIN", str(ROOT / "target" / "release" / "sluice"))
TOTAL = int(os.environ.get("TOTAL", "200000"))
ROUNDS = int(os.environ.get("ROUNDS", "2"))
PARTITIONS = 2


class Broker:
    def __init__(self, tmp: Path, name: str, extra: list[str]):
        self.port, self.sasl_port, self.admin_port = free_ports(3)
        d = tmp / name
        d.mkdir()
        self.log = d / "broker.log"
        self.proc = subprocess.Popen(
            [BIN, "serve", "--data-dir", str(d / "data"), "--shards", "2", "--flush", "never",
             "--admin-addr", f"127.0.0.1:{self.admin_port}", "--listeners",
             f"PLAINTEXT://127.0.0.1:{self.port},SASL_PLAINTEXT://127.0.0.1:{self.sasl_port}",
             *extra], stdout=open(self.log, "a"), stderr=subprocess.STDOUT)
        self.plain = {"bootstrap.servers": f"127.0.0.1:{self.port}"}
        self.user = {"bootstrap.servers": f"127.0.0.1:{self.sasl_port}",
                     "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
                     "sasl.username": "perf", "sasl.password": "perf-secret"}
        deadline = time.monotonic() + 30
        while True:
            try:
                AdminClient(self.plain).list_topics(timeout=1)
                break
            except Exception:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise SystemExit(f"broker did not start; see {self.log}")
                time.sleep(0.2)
        self.admin = AdminClient(self.plain)
        up = UserScramCredentialUpsertion(
            "perf", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), b"perf-secret")
        for f in self.admin.alter_user_scram_credentials([up]).values():
            f.result(30)

    def requests(self) -> dict[str, float]:
        url = f"http://127.0.0.1:{self.admin_port}/metrics"
        out: dict[str, float] = {}
        for line in urllib.request.urlopen(url, timeout=10).read().decode().splitlines():
            if line.startswith("sluice_request_latency_seconds_count{"):
                api = line.split('api="', 1)[1].split('"', 1)[0]
                out[api] = out.get(api, 0.0) + float(line.rsplit(" ", 1)[1])
        return out

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def thousand_acls() -> list[AclBinding]:
    allow, lit, pre = AclPermissionType.ALLOW, ResourcePatternType.LITERAL, \
        ResourcePatternType.PREFIXED
    acls = [AclBinding(ResourceType.TOPIC, "acl-", pre, "User:perf", "*", AclOperation.ALL,
                       allow),
            AclBinding(ResourceType.GROUP, "perf", lit, "User:perf", "*", AclOperation.READ,
                       allow)]
    acls += [AclBinding(ResourceType.TOPIC, f"orders-{i}", lit, f"User:team-{i % 50}", "*",
                        AclOperation.READ, allow) for i in range(500)]
    acls += [AclBinding(ResourceType.TOPIC, f"a{i}-", pre, f"User:team-{i % 50}", "*",
                        AclOperation.WRITE, allow) for i in range(300)]
    acls += [AclBinding(ResourceType.GROUP, f"group-{i}", lit, f"User:team-{i % 50}", "*",
                        AclOperation.READ, allow) for i in range(198)]
    return acls


def run(b: Broker, topic: str, vals: list[bytes]) -> dict:
    for f in b.admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values():
        f.result(30)
    req0, cpu0, t0 = b.requests(), cpu_seconds(b.proc.pid), time.perf_counter()
    p = Producer({**b.user, "linger.ms": 5, "acks": 1, "batch.size": 16384,
                  "queue.buffering.max.messages": 1_000_000})
    for i in range(TOTAL):
        while True:
            try:
                p.produce(topic, value=vals[i % len(vals)])
                break
            except BufferError:
                p.poll(0.01)
    assert p.flush(300) == 0
    req1, cpu1, t1 = b.requests(), cpu_seconds(b.proc.pid), time.perf_counter()
    c = Consumer({**b.user, "group.id": "perf", "enable.auto.commit": False,
                  "fetch.max.bytes": 1 << 20, "max.partition.fetch.bytes": 64 << 10})
    c.assign([TopicPartition(topic, q, 0) for q in range(PARTITIONS)])
    got, deadline = 0, time.monotonic() + 300
    while got < TOTAL and time.monotonic() < deadline:
        for m in c.consume(10_000, 1.0):
            assert m.error() is None, m.error()
            got += 1
    req2, cpu2, t2 = b.requests(), cpu_seconds(b.proc.pid), time.perf_counter()
    c.close()
    assert got == TOTAL, f"consumed {got} of {TOTAL}"
    for f in b.admin.delete_topics([topic]).values():
        f.result(30)
    gb = TOTAL * 1024 / 1e9

    def way(api, r0, r1, cpu, took):
        n = r1.get(api, 0) - r0.get(api, 0)
        return {"rec_s": TOTAL / took, "requests": n, "cpu_s_per_gb": cpu / gb,
                "cpu_us_per_request": 1e6 * cpu / n if n else None}
    return {"produce": way("Produce", req0, req1, cpu1 - cpu0, t1 - t0),
            "consume": way("Fetch", req1, req2, cpu2 - cpu1, t2 - t1)}


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="sluice-acl-perf-"))
    brokers = {}
    try:
        brokers["none"] = Broker(tmp, "none", [])
        brokers["acls"] = Broker(tmp, "acls", ["--authorizer", "true",
                                               "--super-users", "User:ANONYMOUS"])
        acls = thousand_acls()
        for f in brokers["acls"].admin.create_acls(acls, request_timeout=60).values():
            f.result(60)
        rng = random.Random(7)
        vals = [rng.randbytes(1024) for _ in range(5000)]
        runs = {k: [] for k in brokers}
        for r in range(ROUNDS):
            for kind in (["none", "acls"] if r % 2 == 0 else ["acls", "none"]):
                runs[kind].append(run(brokers[kind], f"acl-{kind}-{r}", vals))
    finally:
        for b in brokers.values():
            b.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    def mean(kind, w, key):
        xs = [x[w][key] for x in runs[kind] if x[w][key] is not None]
        return sum(xs) / len(xs)
    keys = ("rec_s", "requests", "cpu_s_per_gb", "cpu_us_per_request")
    summary = {k: {w: {key: round(mean(k, w, key), 2) for key in keys}
                   for w in ("produce", "consume")} for k in runs}
    ratio = {w: round(summary["acls"][w]["cpu_us_per_request"]
                      / summary["none"][w]["cpu_us_per_request"], 3)
             for w in ("produce", "consume")}
    out = {"records": TOTAL, "record_bytes": 1024, "rounds": ROUNDS, "acls": len(acls),
           "runs": runs, "summary": summary, "cpu_per_request_acls_over_none": ratio}
    print(json.dumps(out, indent=2))
    (ROOT / "perf" / "out").mkdir(exist_ok=True)
    (ROOT / "perf" / "out" / "acl.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
