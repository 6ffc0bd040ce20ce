#!/usr/bin/env python3
"""Writes sluice-dashboard.json (Grafana, over the Prometheus metrics of Sluice's admin
endpoint). Edit the panels here and run it again: `python3 deploy/grafana/make_dashboard.py`.
tests/clients/test_console.py checks every metric it names exists on a real broker."""

import json
import pathlib

panels = []
Q99, Q50 = 'quantile="0.99"', 'quantile="0.5"'
J = '{job=~"$job"}'
DS = {"type": "prometheus", "uid": "${datasource}"}


def j(extra: str = "") -> str:
    return '{job=~"$job"%s}' % ("," + extra if extra else "")


def panel(title, exprs, unit="short", w=12, kind="timeseries"):
    row_y = max((p["gridPos"]["y"] for p in panels), default=0)
    used = sum(p["gridPos"]["w"] for p in panels if p["gridPos"]["y"] == row_y)
    x, y = (used, row_y) if used + w <= 24 else (0, row_y + 8)
    options = ({"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}}
               if kind == "timeseries" else {"reduceOptions": {"calcs": ["lastNotNull"]}})
    panels.append({
        "id": len(panels) + 1, "type": kind, "title": title, "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": 8},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": options,
        "targets": [{"refId": chr(65 + i), "expr": e, "legendFormat": legend, "datasource": DS}
                    for i, (e, legend) in enumerate(exprs)],
    })


panel("Partitions", [(f"count(sluice_partition_high_watermark{J})", "partitions")], kind="stat", w=6)
panel("Connections", [(f"sum(sluice_connections{J})", "connections")], kind="stat", w=6)
panel("Data on disk", [(f"sum(sluice_partition_size_bytes{J})", "bytes")], unit="bytes", kind="stat", w=6)
panel("Total consumer lag", [(f"sum(sluice_group_lag{J})", "lag")], kind="stat", w=6)
panel("Produced records/s", [(f"sum(rate(sluice_produced_records_total{J}[1m]))", "all"),
                             (f"sum by (shard) (rate(sluice_produced_records_total{J}[1m]))", "shard {{shard}}")], unit="ops")
panel("Produced and fetched bytes/s", [(f"sum(rate(sluice_produced_bytes_total{J}[1m]))", "produced"),
                                       (f"sum(rate(sluice_fetched_bytes_total{J}[1m]))", "fetched"),
                                       (f"sum(rate(sluice_fetch_sendfile_bytes_total{J}[1m]))", "fetched by sendfile (zero copy)")], unit="Bps")
panel("Records/s by topic", [(f"sum by (topic) (rate(sluice_partition_high_watermark{J}[1m]))", "{{topic}}")], unit="ops")
panel("Consumer lag by group", [(f"sum by (group) (sluice_group_lag{J})", "{{group}}")])
panel("Request latency p99 by API", [(f"max by (api) (sluice_request_latency_seconds{j(Q99)})", "{{api}}")], unit="s")
panel("Requests/s by API", [(f"sum by (api) (rate(sluice_request_latency_seconds_count{J}[1m]))", "{{api}}")], unit="reqps")
panel("fdatasync latency", [(f"sluice_fsync_latency_seconds{j(Q99)}", "segments p99"),
                            (f"sluice_fsync_latency_seconds{j(Q50)}", "segments p50"),
                            (f"sluice_journal_fsync_latency_seconds{j(Q99)}", "journals p99")], unit="s")
panel("Time queued before a handler", [(f"sluice_request_queued_seconds{j(Q99)}", "p99"),
                                       (f"sluice_request_queued_seconds{j(Q50)}", "p50")], unit="s")
panel("Partition size by topic", [(f"sum by (topic) (sluice_partition_size_bytes{J})", "{{topic}}")], unit="bytes")
panel("Connections by shard", [(f"sluice_connections{J}", "shard {{shard}}"),
                               (f"sum(rate(sluice_connections_refused_total{J}[5m]))", "refused/s")])
panel("Share groups: records available and acquired", [(f"sum by (group) (sluice_share_records_available{J})", "{{group}} available"),
                                                       (f"sum by (group) (sluice_share_records_acquired{J})", "{{group}} acquired")])
panel("Share groups: archived, delivery-limit hits, DLQ writes /s", [
    (f"sum by (group) (rate(sluice_share_records_archived_total{J}[1m]))", "{{group}} archived"),
    (f"sum by (group) (rate(sluice_share_delivery_limit_hits_total{J}[5m]))", "{{group}} delivery limit"),
    (f"sum(rate(sluice_share_dlq_writes_total{J}[5m]))", "DLQ writes"),
    (f"sum(rate(sluice_share_dlq_write_failures_total{J}[5m]))", "DLQ write failures")])
panel("Back-pressure and errors", [(f"sum(rate(sluice_produce_credit_waits_total{J}[1m]))", "produce credit waits/s"),
                                   (f"sum(rate(sluice_fetch_budget_deferrals_total{J}[1m]))", "fetch budget deferrals/s"),
                                   (f"sum(rate(sluice_protocol_errors_total{J}[1m]))", "protocol errors/s"),
                                   (f"sum(rate(sluice_log_lines_suppressed_total{J}[5m]))", "log lines suppressed/s")])
panel("Cross-shard messages /s", [(f"sum by (message) (rate(sluice_mesh_calls_total{J}[1m]))", "{{message}}")], unit="ops")

dashboard = {
    "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource",
                  "pluginId": "prometheus", "pluginName": "Prometheus"}],
    "title": "Sluice", "uid": "sluice-broker", "tags": ["sluice", "kafka"], "timezone": "browser",
    "schemaVersion": 39, "version": 1, "refresh": "10s", "time": {"from": "now-1h", "to": "now"},
    "description": "Sluice broker metrics from the admin endpoint's /metrics (deploy/grafana/prometheus.yml scrapes it).",
    "templating": {"list": [
        {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus", "current": {}},
        {"name": "job", "type": "query", "label": "job", "datasource": DS,
         "query": {"query": "label_values(sluice_connections, job)", "refId": "job"},
         "definition": "label_values(sluice_connections, job)", "includeAll": True, "multi": True,
         "allValue": ".*", "refresh": 2, "current": {"text": "All", "value": "$__all"}},
    ]},
    "panels": panels,
}
out = pathlib.Path(__file__).with_name("sluice-dashboard.json")
out.write_text(json.dumps(dashboard, indent=2) + "\n")
print(f"wrote {out} ({len(panels)} panels)")
