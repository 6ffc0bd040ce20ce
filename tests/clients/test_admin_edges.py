"""Admin and data requests at their edges, with confluent-kafka and kafka-python:
CreatePartitions with a replica assignment no single node can honour, and requests
for a partition the topic does not have (with topic auto-creation on and off), and the
Metadata lookup that auto-creates a topic.
"""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic
from kafka import KafkaAdminClient
from kafka.protocol.metadata import MetadataRequest


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


# --- 13. A topic or partition that does not exist, with auto-creation on ----------------


def test_the_metadata_lookup_that_auto_creates_a_topic_answers_unknown_topic_as_kafka(broker):
    """rskafka's `test_non_existing_partition` asks for a partition client of a topic that
    does not exist, not willing to wait, and expects UNKNOWN_TOPIC_OR_PARTITION; with
    auto-creation on it failed here because the Metadata lookup that created the topic
    already showed it. Kafka (KRaft) answers that lookup with UNKNOWN_TOPIC_OR_PARTITION
    and shows the topic from the next one. librdkafka's producer asks the same way
    (allow_auto_topic_creation): its first lookup gets the error, the next the topic,
    and its records land; a partition beyond the topic's count is refused."""
    # The first lookup as one Metadata request of its own (kafka-python's request class):
    # librdkafka may send a lookup twice on a loaded machine, and the second shows the topic.
    kp = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=15000)
    try:
        first = kp._manager.run(kp._manager.send, MetadataRequest(
            topics=[MetadataRequest.MetadataRequestTopic(name="born-on-lookup")],
            allow_auto_topic_creation=True)).topics
    finally:
        kp.close()
    assert [(t.name, t.error_code, len(t.partitions)) for t in first] == \
        [("born-on-lookup", KafkaError.UNKNOWN_TOPIC_OR_PART, 0)]
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    second = producer.list_topics("born-on-lookup", timeout=10).topics["born-on-lookup"]
    assert second.error is None and list(second.partitions) == [0]
    acked = []
    producer.produce("born-on-lookup", value=b"here", partition=0,
                     on_delivery=lambda err, m: acked.append((err, m.offset())))
    with pytest.raises(KafkaException) as refused:
        producer.produce("born-on-lookup", value=b"nowhere", partition=5)
    assert refused.value.args[0].code() == KafkaError._UNKNOWN_PARTITION
    assert producer.flush(30) == 0
    assert acked == [(None, 0)]
