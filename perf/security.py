#!/usr/bin/env python3
"""What SASL_SSL costs against PLAINTEXT: 1 KiB produce and consume throughput and the
broker's CPU seconds per GB, over both listeners of one broker run.

    .venv/bin/python perf/security.py
    TOTAL=500000 ROUNDS=4 .venv/bin/python perf/security.py

One broker (2 shards, flush=never) with a PLAINTEXT and a SASL_SSL listener on 127.0.0.1
(certificates made with `openssl` in a temp dir; a SCRAM-SHA-512 user made with
AlterUserScramCredentials). confluent-kafka (librdkafka): TOTAL uncompressed records of
1 KiB produced (acks=1, linger 5 ms) into a fresh 2-partition topic, then consumed from
the beginning by a consumer without a group (assign), over one listener, then the other,
alternating the order over ROUNDS. Reports records/s, MB/s and broker CPU-s per GB of
each direction, and the SASL_SSL/PLAINTEXT throughput ratios (the issue's target: TLS
produce >= 0.6x plaintext).

Results go to stdout and perf/out/security.json.
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
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import (AdminClient, NewTopic, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialUpsertion)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "clients"))
from conftest import free_ports  # noqa: E402
from proc_util import cpu_seconds  # noqa: E402  (perf/ is on sys.path: the script's dir)

BIN = os.environ.get("SLUICE_BIN", str(ROOT / "target" / "release" / "sluice"))
TOTAL = int(os.environ.get("TOTAL", "200000"))
ROUNDS = int(os.environ.get("ROUNDS", "2"))
PARTITIONS = 2


def openssl(d: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)


def make_certs(d: Path) -> None:
    openssl(d, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout",
            "ca.key", "-out", "ca.pem", "-subj", "/CN=perf-ca")
    openssl(d, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
            "server.csr", "-subj", "/CN=127.0.0.1")
    (d / "ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl(d, "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "1", "-out", "server.pem", "-extfile", "ext")


def start(tmp: Path) -> tuple[subprocess.Popen, int, int]:
    port, sasl_port, admin = free_ports(3)
    log = open(tmp / "broker.log", "a")
    proc = subprocess.Popen(
        [BIN, "serve", "--data-dir", str(tmp / "data"), "--shards", "2", "--flush", "never",
         "--admin-addr", f"127.0.0.1:{admin}",
         "--listeners", f"PLAINTEXT://127.0.0.1:{port},SASL_SSL://127.0.0.1:{sasl_port}",
         "--tls-cert-file", str(tmp / "server.pem"), "--tls-key-file", str(tmp / "server.key")],
        stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"}).list_topics(timeout=1)
            return proc, port, sasl_port
        except Exception:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"broker did not start; see {tmp / 'broker.log'}")
            time.sleep(0.2)


def produce(conf: dict, topic: str, vals: list[bytes], pid: int) -> dict:
    p = Producer({**conf, "linger.ms": 5, "acks": 1, "queue.buffering.max.messages": 1_000_000})
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    for i in range(TOTAL):
        while True:
            try:
                p.produce(topic, value=vals[i % len(vals)])
                break
            except BufferError:
                p.poll(0.01)
    assert p.flush(300) == 0
    return result(time.perf_counter() - t0, cpu_seconds(pid) - cpu0)


def consume(conf: dict, topic: str, pid: int) -> dict:
    c = Consumer({**conf, "group.id": "perf", "enable.auto.commit": False,
                  "fetch.max.bytes": 8 << 20})
    c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    got, cpu0, t0 = 0, cpu_seconds(pid), time.perf_counter()
    deadline = time.monotonic() + 300
    while got < TOTAL and time.monotonic() < deadline:
        for m in c.consume(10_000, 1.0):
            assert m.error() is None, m.error()
            got += 1
    took, cpu = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
    c.close()
    assert got == TOTAL, f"consumed {got} of {TOTAL}"
    return result(took, cpu)


def result(took: float, cpu: float) -> dict:
    gb = TOTAL * 1024 / 1e9
    return {"rec_s": TOTAL / took, "mb_s": TOTAL * 1024 / took / 1e6, "broker_cpu_s": cpu,
            "cpu_s_per_gb": cpu / gb}


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="sluice-security-perf-"))
    make_certs(tmp)
    proc, port, sasl_port = start(tmp)
    plain = {"bootstrap.servers": f"127.0.0.1:{port}"}
    admin = AdminClient(plain)
    up = UserScramCredentialUpsertion("perf", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512,
                                                                  4096), b"perf-secret", None)
    for f in admin.alter_user_scram_credentials([up]).values():
        f.result(30)
    sasl_ssl = {"bootstrap.servers": f"127.0.0.1:{sasl_port}", "security.protocol": "SASL_SSL",
                "ssl.ca.location": str(tmp / "ca.pem"), "sasl.mechanism": "SCRAM-SHA-512",
                "sasl.username": "perf", "sasl.password": "perf-secret"}
    rng = random.Random(7)
    vals = [rng.randbytes(1024) for _ in range(5000)]
    runs = {"plaintext": [], "sasl_ssl": []}
    try:
        for r in range(ROUNDS):
            order = ["plaintext", "sasl_ssl"] if r % 2 == 0 else ["sasl_ssl", "plaintext"]
            for kind in order:
                conf = plain if kind == "plaintext" else sasl_ssl
                topic = f"{kind}-{r}"
                for f in admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values():
                    f.result(30)
                runs[kind].append({"produce": produce(conf, topic, vals, proc.pid),
                                   "consume": consume(conf, topic, proc.pid)})
                for f in admin.delete_topics([topic]).values():
                    f.result(30)
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)

    def mean(kind: str, way: str, key: str) -> float:
        xs = [x[way][key] for x in runs[kind]]
        return sum(xs) / len(xs)

    summary = {kind: {way: {k: round(mean(kind, way, k), 1) for k in
                            ("rec_s", "mb_s", "cpu_s_per_gb")} for way in ("produce", "consume")}
               for kind in runs}
    ratios = {way: round(summary["sasl_ssl"][way]["rec_s"] / summary["plaintext"][way]["rec_s"], 3)
              for way in ("produce", "consume")}
    out = {"records": TOTAL, "record_bytes": 1024, "rounds": ROUNDS, "runs": runs,
           "summary": summary, "sasl_ssl_over_plaintext": ratios}
    print(json.dumps(out, indent=2))
    (ROOT / "perf" / "out").mkdir(exist_ok=True)
    (ROOT / "perf" / "out" / "security.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
