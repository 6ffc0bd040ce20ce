"""The web console at the admin endpoint (`/`, static files embedded in the binary) and
its JSON API (`/api/`), against the real binary: the API's numbers for a topic, a group
and a share group made here; then the pages in headless Chromium (Debian's `chromium` and
`chromium-driver`, driven over WebDriver by `webdriver.py`): every page loads with no
console errors, shows the topic and the group with the right numbers, and updates when
more records arrive, without a reload.

Screenshots of each page go to target/test-reports/console/; with
SLUICE_UPDATE_SCREENSHOTS=1 also to docs/console/ (the README shows those).
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

import rdkafka_io
import webdriver

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "target" / "test-reports" / "console"
DOC_SHOTS = REPO / "docs" / "console"
DEADLINE_S = 60


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def get(broker, path: str):
    with urllib.request.urlopen(f"http://{broker.admin_addr}{path}", timeout=10) as r:
        return r.status, r.headers.get("Content-Type"), r.read()


def api(broker, path: str = "/api/all") -> dict:
    status, kind, body = get(broker, path)
    assert status == 200 and kind == "application/json", (status, kind)
    return json.loads(body)


def produce(bootstrap: str, topic: str, n: int, partitions: int, start: int = 0) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 2})
    for i in range(start, start + n):
        p.produce(topic, key=f"k{i}".encode(), value=b"x" * 100, partition=i % partitions)
    assert p.flush(30) == 0


def commit(bootstrap: str, group: str, offsets: dict[tuple[str, int], int]) -> None:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False)
    c.close()


@pytest.fixture
def scene(broker):
    """A 3-partition topic with 30 records, a group 10 behind on each partition."""
    topic, group = unique("orders"), unique("billing")
    rdkafka_io.create_topic(broker.bootstrap, topic, 3)
    produce(broker.bootstrap, topic, 30, 3)
    commit(broker.bootstrap, group, {(topic, 0): 0, (topic, 1): 5, (topic, 2): 10})
    return topic, group


def test_the_api_reports_topics_groups_shards_and_history(broker, scene):
    topic, group = scene
    doc = api(broker)
    assert doc["broker"] == "sluice"
    t = next(x for x in doc["topics"] if x["topic"] == topic)
    assert t["partition_count"] == 3 and t["records"] == 30 and t["size_bytes"] > 0
    assert [p["high_watermark"] for p in t["partitions"]] == [10, 10, 10]
    assert t["fetched_bytes"] == 0, "nothing has fetched the topic yet"
    assert {p["shard"] for p in t["partitions"]} <= set(range(broker.shards))
    g = next(x for x in doc["groups"] if x["group"] == group)
    assert g["total_lag"] == 10 + 5 + 0
    assert [(p["partition"], p["committed"], p["lag"]) for p in g["partitions"]] == [(0, 0, 10), (1, 5, 5), (2, 10, 0)]
    assert len(doc["shards"]) == broker.shards
    assert sum(s["produced_records"] for s in doc["shards"]) == 30
    o = doc["overview"]
    assert o["shards"] == broker.shards and o["produced_records"] == 30 and o["topics"] >= 1
    assert o["history"][-1]["topics"][topic] == 30
    time.sleep(1.1)
    produce(broker.bootstrap, topic, 6, 3, start=30)
    again = api(broker, "/api/overview")
    assert again["history"][-1]["topics"][topic] == 36 and len(again["history"]) >= 2
    # A consumer reading the topic from the start: every partition's records are fetched
    # (at least once each: a batch may be fetched again after a retry).
    assert len(rdkafka_io.consume_all(broker.bootstrap, topic, 3, timeout=30)) == 36
    time.sleep(1.1)
    after = api(broker)
    t = next(x for x in after["topics"] if x["topic"] == topic)
    assert t["fetched_bytes"] >= t["size_bytes"] > 0, t
    assert all(p["fetched_bytes"] > 0 for p in t["partitions"])
    assert after["overview"]["history"][-1]["topics_fetched"][topic] == t["fetched_bytes"]
    for path in ("/api/topics", "/api/groups", "/api/shares", "/api/shards"):
        assert api(broker, path)["broker"] == "sluice"
    status, kind, body = get(broker, "/")
    assert status == 200 and kind.startswith("text/html") and b"/app.js" in body
    assert get(broker, "/app.js")[1].startswith("text/javascript")
    try:
        get(broker, "/api/nope")
        raise AssertionError("unknown API path answered")
    except urllib.error.HTTPError as e:
        assert e.code == 404
    req = urllib.request.Request(f"http://{broker.admin_addr}/api/all", data=b"{}", method="POST")
    try:
        urllib.request.urlopen(req, timeout=10)
        raise AssertionError("the console is read-only")
    except urllib.error.HTTPError as e:
        assert e.code == 405


@pytest.fixture
def browser(tmp_path):
    found = webdriver.find_browser()
    if not found:
        pytest.skip("chromium and chromium-driver are not installed (scripts/test.sh installs them)")
    b = webdriver.Browser(*found, log_path=tmp_path / "chromedriver.log")
    yield b
    b.close()


def shot(b: webdriver.Browser, name: str) -> None:
    b.screenshot(SHOTS / f"{name}.png")
    if os.environ.get("SLUICE_UPDATE_SCREENSHOTS") == "1":
        b.screenshot(DOC_SHOTS / f"{name}.png")


def errors(b: webdriver.Browser) -> list[dict]:
    return [e for e in b.console_log() if e.get("level") in ("SEVERE", "ERROR")]


def cell(b: webdriver.Browser, row: str, key: str) -> str | None:
    return b.text(f'{row} td[data-key="{key}"]')


def test_console_pages_show_the_topic_and_group_and_update_live(broker, scene, browser, sluice_bin):
    from test_share import consume, set_group_configs, share_consumer
    topic, group = scene
    base = f"http://{broker.admin_addr}/"
    # Some traffic while the page samples, so the graphs have a line.
    stop = threading.Event()

    def trickle():
        i = 100
        while not stop.is_set():
            produce(broker.bootstrap, topic + "-load", 50, 1, start=i)
            i += 50
            time.sleep(0.3)
    rdkafka_io.create_topic(broker.bootstrap, topic + "-load", 1)
    loader = threading.Thread(target=trickle, daemon=True)
    loader.start()
    try:
        browser.get(base)
        browser.wait_for("return document.querySelector('#card-topics') !== null", what="the overview")
        browser.wait_for("return /live/.test(document.querySelector('#status').textContent)", what="a poll")
        assert int(browser.text("#card-shards")) == broker.shards
        # A few polls: the graphs draw rates between samples (longer for the README's
        # screenshots, so the graphs have a shape).
        time.sleep(40 if os.environ.get("SLUICE_UPDATE_SCREENSHOTS") == "1" else 7)
        browser.wait_for("return document.querySelector('#card-produce-rate').textContent !== '–'",
                         what="a produce rate")
        shot(browser, "overview")
    finally:
        stop.set()
        loader.join(30)

    row = f'tr[data-topic="{topic}"]'
    browser.get(base + "#/topics")
    browser.wait_for(f"return document.querySelector('{row}') !== null", what="the topic row")
    assert cell(browser, row, "partitions") == "3"
    assert cell(browser, row, "records") == "30"
    shot(browser, "topics")

    browser.get(base + f"#/topics/{topic}")
    browser.wait_for("return document.querySelector('#partitions-table') !== null", what="partitions")
    assert browser.text("#topic-title") == topic
    ends = browser.js("return [...document.querySelectorAll('#partitions-table td[data-key=end]')].map(e => e.textContent)")
    assert ends == ["10", "10", "10"]
    assert browser.text(f'#topic-groups-table tr[data-group="{group}"] td.num') == "15"
    shot(browser, "topic")

    grow = f'tr[data-group="{group}"]'
    browser.get(base + "#/groups")
    browser.wait_for(f"return document.querySelector('{grow}') !== null", what="the group row")
    assert cell(browser, grow, "lag") == "15"
    assert cell(browser, grow, "partitions") == "3"
    shot(browser, "groups")

    # More records arrive: the page follows without a reload.
    produce(broker.bootstrap, topic, 15, 3, start=30)
    browser.wait_for(f"return document.querySelector('{grow} td[data-key=lag]').textContent === '30'",
                     what="the lag to grow to 30")
    browser.get(base + "#/topics")
    browser.wait_for(f"return document.querySelector('{row} td[data-key=records]')?.textContent === '45'",
                     what="45 records")
    browser.get(base + f"#/groups/{group}")
    browser.wait_for("return document.querySelector('#group-partitions-table') !== null", what="group page")
    lags = browser.js("return [...document.querySelectorAll('#group-partitions-table td[data-key=lag]')].map(e => e.textContent)")
    assert lags == ["15", "10", "5"]
    shot(browser, "group")

    # A share group with records in flight.
    sg = unique("workers")
    set_group_configs(broker.bootstrap, sg, {"share.auto.offset.reset": "earliest"})
    c = share_consumer(broker.bootstrap, sg, topic)
    consume(c, 20)
    srow = f'tr[data-share="{sg}/{topic}-0"]'
    browser.get(base + "#/shares")
    browser.wait_for(f"return document.querySelector('{srow}') !== null", what="the share partition row",
                     timeout=30)
    assert cell(browser, srow, "end") == "15"
    shot(browser, "shares")
    c.close()

    browser.get(base + "#/shards")
    browser.wait_for("return document.querySelectorAll('#shards-table tbody tr').length > 0", what="shards")
    assert browser.js("return document.querySelectorAll('#shards-table tbody tr').length") == broker.shards
    browser.wait_for("return document.querySelector('#requests-table tr[data-api=Produce]') !== null", what="latency")
    time.sleep(2.5)  # a second poll: request rates
    shot(browser, "shards")

    assert errors(browser) == [], "the console logged errors"
