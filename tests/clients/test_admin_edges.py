"""Admin and data requests at their edges, with confluent-kafka and kafka-python:
CreatePartitions with a replica assignment no single node can honour, and requests
for a partition the topic does not have (with topic auto-creation on and off).
"""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic


def create_topic(admin: AdminClient, topic: str, partitions: int) -> None:
    for f in admin.create_topics([NewTopic(topic, num_partitions=partitions,
                                           replication_factor=1)]).values():
        f.result(timeout=15)


def partition_count(admin: AdminClient, topic: str) -> int:
    return len(admin.list_topics(topic, timeout=10).topics[topic].partitions)


# --- 8. CreatePartitions validates its replica assignment ----------------------------


def test_create_partitions_refuses_an_assignment_naming_a_broker_that_does_not_exist(broker):
    """CreatePartitions of one more partition on broker 10 (the only broker is 1) is
    refused with INVALID_REPLICA_ASSIGNMENT, as Kafka refuses it, and the topic keeps
    its partition count; an assignment on broker 1 is accepted, and one with fewer
    assignments than new partitions is refused."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    create_topic(admin, "grow", 1)
    fut = admin.create_partitions([NewPartitions("grow", 2, replica_assignment=[[10]])])["grow"]
    with pytest.raises(KafkaException) as refused:
        fut.result(timeout=15)
    assert refused.value.args[0].code() == KafkaError.INVALID_REPLICA_ASSIGNMENT
    assert partition_count(admin, "grow") == 1
    fut = admin.create_partitions([NewPartitions("grow", 3, replica_assignment=[[1]])])["grow"]
    with pytest.raises(KafkaException) as short:
        fut.result(timeout=15)
    assert short.value.args[0].code() == KafkaError.INVALID_REPLICA_ASSIGNMENT
    admin.create_partitions([NewPartitions("grow", 3, replica_assignment=[[1], [1]])])[
        "grow"].result(timeout=15)
    assert partition_count(admin, "grow") == 3
