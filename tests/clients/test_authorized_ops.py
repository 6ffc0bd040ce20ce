"""The authorized operations admin clients ask for (issue 12, item 11), with
confluent-kafka's AdminClient (librdkafka 2.16): Metadata and DescribeCluster with
include_authorized_operations (librdkafka asks for the cluster's through Metadata
v10), DescribeGroups v5 for a classic group and ConsumerGroupDescribe v0 for a KIP-848
one; DescribeCluster v1 with kafka-python's request class. (kafka-python 3.0's describe_groups
drops its include_authorized_operations argument, so it is not used.)

Before the change every authorized-operations field was left "not requested"
(INT32_MIN), which confluent-kafka reports as None.
"""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient
from kafka.admin import KafkaAdminClient
from kafka.protocol.admin import DescribeClusterRequest

from kafka_python_io import create_topic

TOPIC_OPS = {"READ", "WRITE", "CREATE", "DELETE", "ALTER", "DESCRIBE", "DESCRIBE_CONFIGS",
             "ALTER_CONFIGS"}
CLUSTER_OPS = {"CREATE", "CLUSTER_ACTION", "DESCRIBE_CONFIGS", "ALTER_CONFIGS",
               "IDEMPOTENT_WRITE", "ALTER", "DESCRIBE"}
GROUP_OPS = {"READ", "DESCRIBE", "DELETE"}


def names(ops) -> set[str]:
    assert ops is not None, "authorized operations were not filled in"
    return {op.name for op in ops}


def wait_for_group(admin: AdminClient, group: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while True:
        d = admin.describe_consumer_groups([group], include_authorized_operations=True,
                                           request_timeout=10)[group].result()
        if d.members or time.monotonic() > deadline:
            return d
        time.sleep(0.2)


def test_authorized_operations_are_every_operation_without_an_authorizer(broker):
    """confluent-kafka asks for authorized operations in describe_topics (Metadata
    include_topic_authorized_operations), describe_cluster (DescribeCluster or
    Metadata) and describe_consumer_groups (DescribeGroups for a classic group,
    ConsumerGroupDescribe for a KIP-848 one). Without an authorizer Kafka answers every operation the resource type has."""
    create_topic(broker.bootstrap, "ops", 1)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    [t] = admin.describe_topics(
        TopicCollection(["ops"]),
        include_authorized_operations=True, request_timeout=15).values()
    assert names(t.result().authorized_operations) == TOPIC_OPS
    c = admin.describe_cluster(include_authorized_operations=True, request_timeout=15).result()
    assert names(c.authorized_operations) == CLUSTER_OPS
    # librdkafka asks through Metadata v10; DescribeCluster itself through kafka-python's
    # request class (its describe_cluster() also uses Metadata).
    kp = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=15000)
    try:
        # kafka-python decodes the bit field into the set of operation codes.
        r = kp._manager.run(kp._manager.send, DescribeClusterRequest(
            include_cluster_authorized_operations=True))
        assert r.authorized_operations == {5, 7, 8, 9, 10, 11, 12}
        r = kp._manager.run(kp._manager.send, DescribeClusterRequest(
            include_cluster_authorized_operations=False))
        assert r.authorized_operations is None  # INT32_MIN: not requested
    finally:
        kp.close()

    consumers = []
    try:
        for group, protocol in (("ops-classic", "classic"), ("ops-848", "consumer")):
            consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                                 "group.protocol": protocol, "auto.offset.reset": "earliest"})
            consumer.subscribe(["ops"])
            consumers.append(consumer)
            deadline = time.monotonic() + 30
            while not consumer.assignment() and time.monotonic() < deadline:
                consumer.poll(0.2)
            d = wait_for_group(admin, group)
            assert d.members, f"{group} has no member"
            assert names(d.authorized_operations) == GROUP_OPS, group
    finally:
        for consumer in consumers:
            try:
                consumer.close()
            except KafkaException:
                pass
