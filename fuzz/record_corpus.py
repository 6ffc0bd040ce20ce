#!/usr/bin/env python3
"""Seeds for the fuzz targets, recorded from real clients against the real broker.

A proxy in front of `sluice serve` (which advertises the proxy's port, so every
connection goes through it) keeps each request frame that confluent-kafka (librdkafka),
kafka-python and kcat send while they produce in every codec, idempotently and in
transactions, consume in groups and in a share group, commit offsets and call the admin
APIs. After a clean stop the broker's own files become seeds too: the record batches of
its segments, its state files and its partition directories.

    .venv/bin/python fuzz/record_corpus.py [--bin target/release/sluice]

Writes fuzz/corpus/<target>/<sha1> (up to PER_KIND frames per API key and version).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
PER_KIND = 4
MAX_FRAME = 60_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def save(target: str, data: bytes) -> None:
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


class Proxy(threading.Thread):
    """Forwards 127.0.0.1:listen to 127.0.0.1:upstream, keeping request frames."""

    def __init__(self, listen: int, upstream: int):
        super().__init__(daemon=True)
        self.upstream = upstream
        self.server = socket.create_server(("127.0.0.1", listen))
        self.kinds: Counter = Counter()
        self.lock = threading.Lock()

    def run(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            broker = socket.create_connection(("127.0.0.1", self.upstream))
            threading.Thread(target=self.requests, args=(client, broker), daemon=True).start()
            threading.Thread(target=pipe, args=(broker, client), daemon=True).start()

    def requests(self, src: socket.socket, dst: socket.socket) -> None:
        buf = b""
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
                buf += chunk
                while len(buf) >= 4 and len(buf) >= 4 + struct.unpack(">i", buf[:4])[0]:
                    n = struct.unpack(">i", buf[:4])[0]
                    self.keep(buf[4:4 + n])
                    buf = buf[4 + n:]
        except OSError:
            pass
        finally:
            dst.close()

    def keep(self, frame: bytes) -> None:
        if len(frame) < 4 or len(frame) > MAX_FRAME:
            return
        kind = frame[:4]   # api key and version
        with self.lock:
            if self.kinds[kind] >= PER_KIND:
                return
            self.kinds[kind] += 1
        save("request", frame)


def pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while chunk := src.recv(65536):
            dst.sendall(chunk)
    except OSError:
        pass
    finally:
        dst.close()


def workload(bootstrap: str) -> None:
    sys.path.insert(0, str(ROOT / "tests" / "clients"))
    from confluent_kafka import Consumer, Producer, ShareConsumer, TopicPartition
    from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry,
                                       ConfigResource, NewPartitions, NewTopic,
                                       ResourceType)
    import kafka

    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = [NewTopic("seed", 3, 1), NewTopic("seed-zstd", 1, 1,
                                                config={"compression.type": "zstd"})]
    for f in admin.create_topics(topics).values():
        f.result(20)
    for codec in ("none", "gzip", "snappy", "lz4", "zstd"):
        p = Producer({"bootstrap.servers": bootstrap, "compression.type": codec,
                      "enable.idempotence": codec != "none", "linger.ms": 5})
        for i in range(50):
            p.produce("seed", key=b"k%d" % (i % 7), value=b"v-%s-%d" % (codec.encode(), i) * 3,
                      headers=[("h", b"x")])
        p.produce("seed-zstd", value=b"z" * 100)
        p.flush(20)
    tp = Producer({"bootstrap.servers": bootstrap, "transactional.id": "seed-txn"})
    tp.init_transactions(20)
    for commit in (True, False):
        tp.begin_transaction()
        tp.produce("seed", value=b"txn", partition=0)
        if commit:
            c = Consumer({"bootstrap.servers": bootstrap, "group.id": "seed-g"})
            tp.send_offsets_to_transaction([TopicPartition("seed", 0, 1)],
                                           c.consumer_group_metadata(), 20)
            c.close()
            tp.commit_transaction(20)
        else:
            tp.abort_transaction(20)
    for protocol in ("classic", "consumer"):
        conf = {"bootstrap.servers": bootstrap, "group.id": f"seed-{protocol}",
                "auto.offset.reset": "earliest", "group.protocol": protocol}
        c = Consumer(conf)
        c.subscribe(["seed"])
        deadline = time.time() + 15
        got = 0
        while got < 100 and time.time() < deadline:
            m = c.poll(0.5)
            got += m is not None and m.error() is None
        c.commit(asynchronous=False)
        c.close()
    res = ConfigResource(ResourceType.GROUP, "seed-share", incremental_configs=[
        ConfigEntry("share.auto.offset.reset", "earliest",
                    incremental_operation=AlterConfigOpType.SET)])
    for f in admin.incremental_alter_configs([res]).values():
        f.result(20)
    sc = ShareConsumer({"bootstrap.servers": bootstrap, "group.id": "seed-share",
                        "share.acknowledgement.mode": "explicit"})
    sc.subscribe(["seed"])
    deadline = time.time() + 15
    while time.time() < deadline:
        msgs = sc.poll(0.5)
        for m in msgs:
            sc.acknowledge(m)
        if msgs:
            sc.commit_sync(10)
            break
    sc.close()
    for f in admin.create_partitions([NewPartitions("seed", 4)]).values():
        f.result(20)
    r = ConfigResource(ConfigResource.Type.TOPIC, "seed")
    admin.describe_configs([r])[r].result(20)
    admin.list_consumer_groups().result(20)
    admin.describe_consumer_groups(["seed-classic"])["seed-classic"].result(20)
    for f in admin.delete_topics(["seed-zstd"]).values():
        f.result(20)
    kp = kafka.KafkaProducer(bootstrap_servers=bootstrap, compression_type="gzip")
    kp.send("seed", b"kafka-python").get(20)
    kp.close()
    kc = kafka.KafkaConsumer("seed", bootstrap_servers=bootstrap, group_id="seed-kp",
                             auto_offset_reset="earliest", consumer_timeout_ms=3000)
    for _ in kc:
        pass
    kc.commit()
    kc.close()
    ka = kafka.KafkaAdminClient(bootstrap_servers=bootstrap)
    ka.describe_cluster()
    ka.list_topics()
    ka.close()
    if shutil.which("kcat"):
        subprocess.run(["kcat", "-b", bootstrap, "-L"], capture_output=True, timeout=20)
        subprocess.run(["kcat", "-b", bootstrap, "-C", "-t", "seed", "-e", "-o", "beginning"],
                       capture_output=True, timeout=20)


def split_batches(log: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos + 12 <= len(log):
        n = struct.unpack(">i", log[pos + 8:pos + 12])[0]
        if n <= 0 or pos + 12 + n > len(log):
            break
        out.append(log[pos:pos + 12 + n])
        pos += 12 + n
    return out


def part(b: bytes) -> bytes:
    b = b[:65535]
    return struct.pack("<H", len(b)) + b


def seed_files(data: Path) -> None:
    """Segments, state files and partition directories of the stopped broker."""
    selectors = {"registry": 0, "quotas": 1, "producer-ids": 2}
    journals = {"groups": 4, "txn": 5, "share": 6, "share-groups": 7}
    for path in sorted(data.rglob("*")):
        if not path.is_file():
            continue
        raw = path.read_bytes()
        rel = path.relative_to(data)
        if path.suffix == ".log" and rel.parts[0] in journals:
            for fix in (0, 1):
                save("state_file", bytes([journals[rel.parts[0]], fix]) + raw)
        elif path.name in selectors or path.stem in selectors:
            save("state_file", bytes([selectors.get(path.name, selectors.get(path.stem)), 0]) + raw)
            save("state_file", bytes([selectors.get(path.name, selectors.get(path.stem)), 1]) + raw[24:])
        elif path.suffix == ".log" and path.stem.isdigit():
            batches = split_batches(raw)
            for b in batches[:20]:
                save("record_batch", b)
            d = path.parent
            seg = b"".join(batches)[:65535]
            seg = b"".join(split_batches(seg))
            files = [seg] + [(d / f"{path.stem}{ext}").read_bytes()
                             if (d / f"{path.stem}{ext}").exists() else b""
                             for ext in (".index", ".timeindex")]
            for extra in ("recovery-checkpoint", "producer-state-v2"):
                files.append((d / extra).read_bytes() if (d / extra).exists() else b"")
            save("partition_dir", b"".join(part(f) for f in files))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=str(ROOT / "target" / "release" / "sluice"))
    args = ap.parse_args()
    data = Path(tempfile.mkdtemp(prefix="sluice-seed-"))
    port, proxy_port, admin = free_port(), free_port(), free_port()
    proxy = Proxy(proxy_port, port)
    proxy.start()
    broker = subprocess.Popen(
        [args.bin, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data),
         "--advertised-listener", f"127.0.0.1:{proxy_port}", "--shards", "2",
         "--admin-addr", f"127.0.0.1:{admin}", "--flush", "always",
         "--segment-bytes", "16384"],
        stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 20
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            assert time.time() < deadline, "broker did not start"
            time.sleep(0.1)
        workload(f"127.0.0.1:{proxy_port}")
    finally:
        broker.terminate()
        broker.wait(30)
    seed_files(data)
    shutil.rmtree(data)
    for t in sorted(CORPUS.iterdir()):
        print(f"{t.name}: {len(list(t.iterdir()))} inputs")
    print(f"request kinds (api key, version): {len(proxy.kinds)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
