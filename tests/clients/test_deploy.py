"""The pieces a deployment uses, against the real binary: `--log-format json` (one JSON
object a line), a default start without warnings (the open-files limit: max_connections
is fitted to it when left at its default), the Grafana dashboard naming only metrics the
broker serves, and the systemd unit's limits.
"""

from __future__ import annotations

import json
import re
import resource
from pathlib import Path

from confluent_kafka import Producer

import rdkafka_io

REPO = Path(__file__).resolve().parents[2]


def log_lines(broker) -> list[str]:
    return [l for l in broker.log_path.read_text(errors="replace").splitlines()
            if l and not l.startswith("=====")]


def test_log_format_json_writes_one_object_a_line(broker_factory):
    b = broker_factory(extra_args=("--log-format", "json"))
    rdkafka_io.create_topic(b.bootstrap, "json-logs", 1)
    b.stop()
    lines = log_lines(b)
    assert lines, "no log lines"
    docs = [json.loads(l) for l in lines]  # every line is JSON
    start = next(d for d in docs if d.get("message") == "starting sluice")
    assert start["level"] == "INFO" and start["target"].startswith("sluice")
    assert start["shards"] == 2 and isinstance(start["topics"], int)
    assert all(d["ts"].endswith("Z") for d in docs)
    assert any("shutting down" in d.get("message", "") or d.get("message") == "sluice stopped" for d in docs)


def test_a_default_start_has_no_warning(broker_factory):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    b = broker_factory()
    p = Producer({"bootstrap.servers": b.bootstrap})
    p.produce("warn-check", b"x")
    assert p.flush(20) == 0
    warnings = [l for l in log_lines(b) if " WARN " in l or " ERROR " in l]
    assert warnings == [], warnings
    fitted = [l for l in log_lines(b) if "fitted to the open-files limit" in l]
    wanted = 10_000 * 2 * 2 + 1024
    # Fitted (one info line) exactly when even the hard limit is below what 10000 needs.
    assert bool(fitted) == (hard < wanted), (hard, fitted)


def test_an_explicit_max_connections_over_the_limit_still_warns(broker_factory):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    too_many = hard  # 2 descriptors each: always over the limit
    b = broker_factory(extra_args=("--max-connections", str(too_many)))
    assert any("open-files limit is below" in l for l in log_lines(b))


def test_the_grafana_dashboard_uses_only_metrics_the_broker_serves(broker):
    dash = json.loads((REPO / "deploy/grafana/sluice-dashboard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert len(exprs) >= 15
    used = {m for e in exprs for m in re.findall(r"\bsluice_[a-z0-9_]+", e)}
    # Every metric has its # TYPE line even with no series yet (an empty broker);
    # a summary also has its _count.
    served = set()
    for line in broker.metrics_text().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            served.add(name)
            if kind == "summary":
                served.add(name + "_count")
    missing = sorted(m for m in used if m not in served)
    assert missing == [], missing
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))


def test_the_systemd_unit_has_the_limits_the_defaults_need():
    unit = (REPO / "deploy/sluice.service").read_text()
    limit = int(re.search(r"^LimitNOFILE=(\d+)$", unit, re.M).group(1))
    assert limit >= 2 * 10_000 * 48 + 1024
    assert re.search(r"^ExecStart=/usr/local/bin/sluice serve --config /etc/sluice/sluice.toml", unit, re.M)
    assert re.search(r"^LimitMEMLOCK=", unit, re.M)
