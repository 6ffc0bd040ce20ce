"""The admin APIs tools call (issue 12, item 12), each driven by a real admin client:
kafka-python 3.0's KafkaAdminClient (its own protocol code, generated from Kafka's
JSON schemas) has a method for nearly all of them; where it has none (client quotas,
OffsetForLeaderEpoch) the test sends kafka-python's own request classes through the
admin client's connection manager. Client quotas are also checked end to end with
librdkafka, which reports the throttle time the broker answers.

Before this change every one of these requests was refused (the broker closed the
connection on an API it did not serve), so each test failed there.
"""

from __future__ import annotations

import random

import pytest
from kafka import KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import InvalidReplicationAssignmentError, NoReassignmentInProgressError
from kafka.protocol.admin import AlterClientQuotasRequest, DescribeClientQuotasRequest
from kafka.protocol.consumer import OffsetForLeaderEpochRequest

import rdkafka_io
from kafka_python_io import create_topic
from workload import Message

TOPIC_OPS = 3576  # READ WRITE CREATE DELETE ALTER DESCRIBE DESCRIBE_CONFIGS ALTER_CONFIGS


def admin_for(broker) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=15000)


def send(admin: KafkaAdminClient, request):
    """One request through kafka-python's own connection manager and codecs."""
    return admin._manager.run(admin._manager.send, request)


def produce(broker, topic: str, partition: int, count: int, size: int, **config) -> None:
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", **config)
    try:
        for i in range(count):
            producer.send(topic, value=bytes([i % 251]) * size, partition=partition)
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=5)


def test_describe_log_dirs_reports_the_size_of_every_partition(broker):
    """kafka-python's describe_log_dirs (DescribeLogDirs, what kafka-log-dirs.sh and
    consoles call): one log dir, the data directory, with each partition of both
    shards and its size on disk; only partition 1 holds records; a query for some
    partitions gets only those."""
    create_topic(broker.bootstrap, "sizes", 4)
    produce(broker, "sizes", 1, 50, 1000, enable_idempotence=False)
    admin = admin_for(broker)
    try:
        [answer] = admin.describe_log_dirs()
        [log_dir] = answer["log_dirs"]
        assert log_dir["error_code"] == 0
        assert log_dir["log_dir"] == str(broker.data_dir.resolve())
        assert log_dir["total_bytes"] > log_dir["usable_bytes"] > 0
        [topic] = [t for t in log_dir["topics"] if t["name"] == "sizes"]
        sizes = {p["partition_index"]: p["partition_size"] for p in topic["partitions"]}
        assert sorted(sizes) == [0, 1, 2, 3]
        assert sizes[1] >= 50 * 1000 and sizes[0] == sizes[2] == sizes[3] == 0, sizes

        [answer] = admin.describe_log_dirs({"sizes": [1, 3]})
        [topic] = answer["log_dirs"][0]["topics"]
        assert sorted(p["partition_index"] for p in topic["partitions"]) == [1, 3]
    finally:
        admin.close()


def test_describe_topic_partitions_pages_through_topics_with_a_cursor(broker):
    """kafka-python's describe_topic_partitions (KIP-966's DescribeTopicPartitions,
    the Java admin client's describeTopics): topics sorted by name, at most
    response_partition_limit partitions per answer and a cursor to the rest; broker
    1 leads every partition at epoch 0; an unknown topic gets its error; the topic's
    authorized operations are every topic operation (no authorizer)."""
    create_topic(broker.bootstrap, "pages-b", 2)
    create_topic(broker.bootstrap, "pages-a", 3)
    admin = admin_for(broker)
    try:
        seen, cursor, answers = [], None, 0
        while True:
            r = admin.describe_topic_partitions(["pages-b", "pages-a"],
                                                response_partition_limit=2, cursor=cursor)
            answers += 1
            for t in r["topics"]:
                assert t["error_code"] == 0 and t["topic_authorized_operations"] == TOPIC_OPS
                for p in t["partitions"]:
                    assert (p["leader_id"], p["leader_epoch"], p["replica_nodes"],
                            p["isr_nodes"]) == (1, 0, [1], [1])
                    seen.append((t["name"], p["partition_index"]))
            cursor = r["next_cursor"]
            if cursor is None:
                break
            assert answers < 10
        assert seen == [("pages-a", 0), ("pages-a", 1), ("pages-a", 2),
                        ("pages-b", 0), ("pages-b", 1)]
        assert answers == 3

        r = admin.describe_topic_partitions(["no-such-topic"])
        assert [t["error_code"] for t in r["topics"]] == [3]
    finally:
        admin.close()


def test_offset_for_leader_epoch_ends_epoch_zero_at_the_log_end(broker):
    """OffsetForLeaderEpoch (KIP-320), sent with kafka-python's own request class:
    epoch 0, the only one, ends at the log end offset; a newer epoch is unknown
    (-1, -1); a client that believes in a newer current epoch is told
    UNKNOWN_LEADER_EPOCH; an unknown partition UNKNOWN_TOPIC_OR_PARTITION."""
    create_topic(broker.bootstrap, "epochs", 2)
    produce(broker, "epochs", 0, 7, 10, enable_idempotence=False)
    admin = admin_for(broker)
    try:
        T, P = OffsetForLeaderEpochRequest.OffsetForLeaderTopic, \
            OffsetForLeaderEpochRequest.OffsetForLeaderTopic.OffsetForLeaderPartition
        request = OffsetForLeaderEpochRequest(replica_id=-1, topics=[T(topic="epochs", partitions=[
            P(partition=0, current_leader_epoch=0, leader_epoch=0),
            P(partition=1, current_leader_epoch=-1, leader_epoch=0),
            P(partition=0, current_leader_epoch=0, leader_epoch=3),
            P(partition=0, current_leader_epoch=5, leader_epoch=0),
            P(partition=9, current_leader_epoch=0, leader_epoch=0),
        ])])
        response = send(admin, request)
        got = [(p.error_code, p.leader_epoch, p.end_offset)
               for p in response.topics[0].partitions]
        assert got == [(0, 0, 7), (0, 0, 0), (0, -1, -1), (75, -1, -1), (3, -1, -1)]
    finally:
        admin.close()


def test_producers_and_transactions_are_described_while_open_and_after_commit(broker):
    """KIP-664 with kafka-python's describe_producers, list_transactions and
    describe_transactions (kafka-transactions.sh's calls): an open transaction is
    Ongoing with its partition and start time, its producer shows the transaction's
    first offset on the partition; after the commit it is CompleteCommit and the
    producer has no open transaction; filters by state and producer id work."""
    create_topic(broker.bootstrap, "txn-views", 2)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id="views-1")
    admin = admin_for(broker)
    tp = TopicPartition("txn-views", 1)
    try:
        producer.init_transactions()
        producer.begin_transaction()
        producer.send("txn-views", value=b"x", partition=1).get(timeout=30)
        producer.flush()

        [listing] = [t for ts in admin.list_transactions().values() for t in ts]
        assert listing.transactional_id == "views-1"
        assert str(listing.state.value) == "Ongoing"
        pid = listing.producer_id
        d = admin.describe_transactions(["views-1"])["views-1"]
        assert (d.producer_id, str(d.state.value), d.topic_partitions) == (pid, "Ongoing", {tp})
        assert d.transaction_start_time_ms > 0
        [p] = admin.describe_producers([tp])[tp].active_producers
        assert (p.producer_id, p.last_sequence, p.current_transaction_start_offset) == (pid, 0, 0)

        producer.commit_transaction()
        d = admin.describe_transactions(["views-1"])["views-1"]
        assert str(d.state.value) == "CompleteCommit"
        [p] = admin.describe_producers([tp])[tp].active_producers
        assert p.current_transaction_start_offset == -1
        assert [t for ts in admin.list_transactions(state_filters=["Ongoing"]).values()
                for t in ts] == []
        assert [t.transactional_id for ts in admin.list_transactions(
            producer_id_filters=[pid]).values() for t in ts] == ["views-1"]
        assert admin.describe_producers([TopicPartition("txn-views", 0)])[
            TopicPartition("txn-views", 0)].active_producers == []
    finally:
        producer.close(timeout=5)
        admin.close()


def test_leader_election_and_reassignment_on_the_one_broker(broker):
    """kafka-python's elect_leaders, list_partition_reassignments and
    alter_partition_reassignments: electing is never needed (ELECTION_NOT_NEEDED,
    which the client takes as success); nothing is being reassigned; reassigning
    to broker 1 succeeds, to any other broker is INVALID_REPLICA_ASSIGNMENT, and a
    cancel finds NO_REASSIGNMENT_IN_PROGRESS."""
    create_topic(broker.bootstrap, "leaders", 2)
    admin = admin_for(broker)
    try:
        r = admin.elect_leaders(0, {"leaders": [0, 1]})
        codes = [p.error_code for t in r.replica_election_results for p in t.partition_result]
        assert codes == [84, 84]
        r = admin.elect_leaders(0, {"nope": [0]}, raise_errors=False)
        assert [p.error_code for t in r.replica_election_results
                for p in t.partition_result] == [3]

        assert admin.list_partition_reassignments() == {}
        t0, t1 = TopicPartition("leaders", 0), TopicPartition("leaders", 1)
        assert admin.alter_partition_reassignments({t0: [1]}) == {t0: None}
        got = admin.alter_partition_reassignments({t0: [2], t1: None})
        assert got == {t0: InvalidReplicationAssignmentError, t1: NoReassignmentInProgressError}
        assert admin.list_partition_reassignments({"leaders": [0, 1]}) == {}
    finally:
        admin.close()


def quota_entity(client_id):
    E = AlterClientQuotasRequest.EntryData.EntityData
    return [E(entity_type="client-id", entity_name=client_id)]


def alter_quota(admin, client_id, rate, *, key="producer_byte_rate", validate_only=False):
    O = AlterClientQuotasRequest.EntryData.OpData
    op = O(key=key, value=float(rate or 0), remove=rate is None)
    request = AlterClientQuotasRequest(
        entries=[AlterClientQuotasRequest.EntryData(entity=quota_entity(client_id), ops=[op])],
        validate_only=validate_only)
    [entry] = send(admin, request).entries
    return entry.error_code


def describe_quotas(admin, components=(), strict=False):
    C = DescribeClientQuotasRequest.ComponentData
    request = DescribeClientQuotasRequest(
        components=[C(entity_type=t, match_type=m, match=n) for t, m, n in components],
        strict=strict)
    r = send(admin, request)
    assert r.error_code == 0, r
    return sorted(((tuple((e.entity_type, e.entity_name) for e in entry.entity),
                    tuple((v.key, v.value) for v in entry.values))
                   for entry in r.entries), key=repr)


def test_client_quotas_are_set_described_kept_across_a_restart_and_enforced(broker):
    """DescribeClientQuotas / AlterClientQuotas with kafka-python's request classes
    over the byte-rate quota Sluice enforces: producer_byte_rate for a client id
    and for the default client id, described with exact, default and any-name
    filters, still there after a restart (saved on disk), removed again; keys and
    entities Sluice would not enforce are refused. Then librdkafka producing 12 MB
    as client id `slow` (quota 1 MB/s) is told to back off (throttle_cb), and the
    same as `fast` (no quota) is not."""
    admin = admin_for(broker)
    try:
        assert alter_quota(admin, "slow", 1_000_000) == 0
        assert alter_quota(admin, None, 50_000_000) == 0
        assert alter_quota(admin, "temp", 5, validate_only=True) == 0
        assert alter_quota(admin, "slow", 10, key="consumer_byte_rate") == 42
        assert alter_quota(admin, "slow", 0.5) == 42
        default = ((("client-id", None),), (("producer_byte_rate", 50_000_000.0),))
        slow = ((("client-id", "slow"),), (("producer_byte_rate", 1_000_000.0),))
        everything = sorted([default, slow], key=repr)
        assert describe_quotas(admin) == everything
        assert describe_quotas(admin, [("client-id", 0, "slow")]) == [slow]
        assert describe_quotas(admin, [("client-id", 1, None)]) == [default]
        assert describe_quotas(admin, [("client-id", 2, None)], strict=True) == [slow]
        assert describe_quotas(admin, [("user", 2, None)]) == []
    finally:
        admin.close()

    broker.restart()
    admin = admin_for(broker)
    try:
        assert describe_quotas(admin) == everything
        assert alter_quota(admin, None, None) == 0
        assert describe_quotas(admin) == [slow]
    finally:
        admin.close()

    rdkafka_io.create_topic(broker.bootstrap, "quota", 1)
    rng = random.Random(5)
    for client_id, throttled in (("slow", True), ("fast", False)):
        sent = [Message(i, b"k", i, rng.randbytes(1000)) for i in range(12_000)]
        throttles = []
        config = rdkafka_io.producer_config(broker.bootstrap, compression_type="none")
        config["client.id"] = client_id
        config["throttle_cb"] = lambda event: throttles.append(event.throttle_time)
        delivered = rdkafka_io.produce_all([config], [sent], "quota", timeout=120)
        assert len(delivered) == len(sent)
        assert (max(throttles, default=0) > 0) == throttled, (client_id, throttles)


def test_api_versions_reports_the_finalized_features(broker):
    """kafka-python's describe_features reads ApiVersions v3+'s feature fields
    (KIP-584): group.version 1 (KIP-848) and metadata.version are finalized;
    transaction.version is supported only at 0 (no KIP-890 part 2)."""
    admin = admin_for(broker)
    try:
        f = admin.describe_features()
        assert f["group.version"]["finalized"] == (1, 1)
        assert f["group.version"]["supported"] == (0, 1)
        assert f["metadata.version"]["finalized"][1] >= 7
        assert f["transaction.version"] == {"supported": (0, 0)}
    finally:
        admin.close()


@pytest.mark.parametrize("api", ["DescribeLogDirs", "DescribeTopicPartitions",
                                 "OffsetForLeaderEpoch", "DescribeProducers",
                                 "ListTransactions", "DescribeTransactions", "ElectLeaders",
                                 "ListPartitionReassignments", "AlterPartitionReassignments",
                                 "DescribeClientQuotas", "AlterClientQuotas"])
def test_every_admin_api_is_advertised(broker, api):
    """kafka-python's api_versions(): each of these APIs is in the ApiVersions table
    (clients only send what is advertised)."""
    admin = admin_for(broker)
    try:
        names = {k.name for k in admin.api_versions()}
        assert api in names, sorted(names)
    finally:
        admin.close()
