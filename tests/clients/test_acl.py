"""ACLs (issue 17, item 4): the authorizer checks every request of a SASL principal.

The broker runs with `--authorizer true`; its PLAINTEXT listener (User:ANONYMOUS) is the
operator's and a super user, as a loopback-only admin port would be. alice and bob
authenticate with SCRAM-SHA-512 on the SASL_PLAINTEXT listener. ACLs are made with
confluent-kafka's admin client (librdkafka) and with kafka-python's (a second
implementation of CreateAcls/DescribeAcls/DeleteAcls); produce, consume, metadata,
groups and transactions are then tried as each user.

Before this change CreateAcls was not served (the connection closed), Metadata listed
every topic to everyone and every API answered every principal.
"""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation,
                                   AclPermissionType, AdminClient, ResourcePatternType,
                                   ResourceType)

import rdkafka_io
from test_security import add_user, certs, sasl_conf, start_sasl  # noqa: F401 (fixture)

ALICE, BOB = ("alice", "alice-secret"), ("bob", "bob-secret")
T = 15


def start_authorized(broker_factory, certs, *extra: str):
    return start_sasl(broker_factory, certs, extra=(
        "--authorizer", "true", "--super-users", "User:ANONYMOUS;User:root", *extra))


def as_user(b, certs, user) -> dict:
    return sasl_conf(certs, b.sasl_port, "SCRAM-SHA-512", *user, tls=False)


def allow(resource, name, principal, operation, pattern=ResourcePatternType.LITERAL,
          permission=AclPermissionType.ALLOW) -> AclBinding:
    return AclBinding(resource, name, pattern, principal, "*", operation, permission)


def create_acls(bootstrap, bindings):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_acls(bindings, request_timeout=T).values():
        f.result(timeout=T)


def produce_error(conf: dict, topic: str):
    """The delivery error of one record (None when it was written)."""
    got = []
    p = Producer({**conf, "message.timeout.ms": 10_000})
    p.produce(topic, b"v", on_delivery=lambda err, msg: got.append(err))
    p.flush(T)
    assert got, "no delivery report"
    return got[0]


def consume_error(conf: dict, topic: str, group: str):
    """What a group consumer of `topic` gets first: a record (None) or the error."""
    c = Consumer({**conf, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + T
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error() is None:
                return None
            if m.error().code() != KafkaError._PARTITION_EOF:
                return m.error()
        raise AssertionError(f"neither a record nor an error from {topic} within {T} s")
    finally:
        c.close()


def visible_topics(conf: dict) -> set[str]:
    md = AdminClient(conf).list_topics(timeout=T)
    return {t for t in md.topics if not t.startswith("__")}


def test_acls_decide_who_may_write_read_and_see_what(broker_factory, certs):
    b = start_authorized(broker_factory, certs)
    for u in (ALICE, BOB):
        add_user(b.bootstrap, *u)
    for t in ("orders", "payments-in", "secret"):
        rdkafka_io.create_topic(b.bootstrap, t, 2)
        assert produce_error({"bootstrap.servers": b.bootstrap}, t) is None
    create_acls(b.bootstrap, [
        allow(ResourceType.TOPIC, "orders", "User:alice", AclOperation.READ),
        allow(ResourceType.TOPIC, "payments-", "User:alice", AclOperation.WRITE,
              ResourcePatternType.PREFIXED),
        allow(ResourceType.GROUP, "alice-", "User:alice", AclOperation.READ,
              ResourcePatternType.PREFIXED),
        allow(ResourceType.TOPIC, "*", "User:bob", AclOperation.ALL),
        allow(ResourceType.GROUP, "*", "User:bob", AclOperation.ALL),
        allow(ResourceType.TOPIC, "secret", "User:bob", AclOperation.READ,
              permission=AclPermissionType.DENY),
    ])
    alice, bob = as_user(b, certs, ALICE), as_user(b, certs, BOB)

    # Metadata shows a principal only what it may DESCRIBE (READ and WRITE imply it).
    assert visible_topics(alice) == {"orders", "payments-in"}
    assert visible_topics(bob) == {"orders", "payments-in", "secret"}
    anonymous_view = visible_topics({"bootstrap.servers": b.bootstrap})
    assert {"orders", "payments-in", "secret"} <= anonymous_view, "a super user sees all"

    assert produce_error(alice, "payments-in") is None
    err = produce_error(alice, "orders")
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err
    assert consume_error(alice, "orders", "alice-readers") is None
    err = consume_error(alice, "orders", "other-readers")
    assert err is not None and err.code() == KafkaError.GROUP_AUTHORIZATION_FAILED, err
    # A DENY wins over bob's ALL on every topic, for that operation only.
    assert consume_error(bob, "orders", "bob-readers") is None
    err = consume_error(bob, "secret", "bob-secret-readers")
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err
    assert produce_error(bob, "secret") is None

    # Authorized operations (KIP-430) are the principal's own.
    alice_admin = AdminClient(alice)
    d = alice_admin.describe_topics(
        _topic_collection(["orders"]), include_authorized_operations=True)
    ops = d["orders"].result(timeout=T).authorized_operations
    assert set(ops) == {AclOperation.READ, AclOperation.DESCRIBE}, ops

    # Only the cluster's ALTER may change ACLs; the answer is the protocol's code.
    denied = alice_admin.create_acls(
        [allow(ResourceType.TOPIC, "secret", "User:alice", AclOperation.READ)],
        request_timeout=T)
    for f in denied.values():
        with pytest.raises(KafkaException) as e:
            f.result(timeout=T)
        assert e.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED


def _topic_collection(names):
    from confluent_kafka import TopicCollection
    return TopicCollection(names)


def test_a_transactional_id_needs_its_own_acl_and_an_idempotent_producer_a_topic_write(
        broker_factory, certs):
    b = start_authorized(broker_factory, certs)
    add_user(b.bootstrap, *ALICE)
    rdkafka_io.create_topic(b.bootstrap, "ledger", 1)
    create_acls(b.bootstrap, [
        allow(ResourceType.TOPIC, "ledger", "User:alice", AclOperation.WRITE),
        allow(ResourceType.TRANSACTIONAL_ID, "alice-tx", "User:alice", AclOperation.WRITE),
    ])
    alice = as_user(b, certs, ALICE)
    # Idempotence needs WRITE on some topic (KIP-679): alice has it.
    assert produce_error({**alice, "enable.idempotence": True}, "ledger") is None
    p = Producer({**alice, "transactional.id": "alice-tx"})
    p.init_transactions(T)
    p.begin_transaction()
    p.produce("ledger", b"in a transaction")
    p.commit_transaction(T)
    other = Producer({**alice, "transactional.id": "not-alices"})
    with pytest.raises(KafkaException) as e:
        other.init_transactions(T)
    assert e.value.args[0].code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED


def test_acls_are_described_deleted_at_once_on_every_shard_and_survive_a_restart(
        broker_factory, certs):
    """kafka-python creates and deletes, confluent-kafka describes: two implementations
    of the ACL requests against one broker."""
    from kafka.admin import ACL, ACLFilter, ACLOperation, ACLPermissionType
    from kafka.admin import ACLResourcePatternType as KpPattern
    from kafka.admin import KafkaAdminClient, ResourcePattern, ResourcePatternFilter
    from kafka.admin import ResourceType as KpResource
    b = start_authorized(broker_factory, certs)
    add_user(b.bootstrap, *ALICE)
    topics = [f"feed-{i}" for i in range(4)]  # partitions spread over both shards
    for t in topics:
        rdkafka_io.create_topic(b.bootstrap, t, 2)
    kp = KafkaAdminClient(bootstrap_servers=b.bootstrap, request_timeout_ms=T * 1000)
    kp.list_topics()  # kafka-python answers NodeNotReadyError until it has metadata
    acl = ACL("User:alice", "*", ACLOperation.WRITE, ACLPermissionType.ALLOW,
              ResourcePattern(KpResource.TOPIC, "feed-", KpPattern.PREFIXED))
    result = kp.create_acls([acl])
    assert not result["failed"], result
    alice = as_user(b, certs, ALICE)
    for t in topics:
        assert produce_error(alice, t) is None, t

    def described():
        f = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                             AclOperation.ANY, AclPermissionType.ANY)
        admin = AdminClient({"bootstrap.servers": b.bootstrap})
        return [(a.restype, a.name, a.resource_pattern_type, a.principal, a.operation)
                for a in admin.describe_acls(f, request_timeout=T).result(timeout=T)]
    want = [(ResourceType.TOPIC, "feed-", ResourcePatternType.PREFIXED, "User:alice",
             AclOperation.WRITE)]
    assert described() == want
    b.restart(kill=True)
    assert described() == want, "the ACLs are durable"

    kp.close()
    kp = KafkaAdminClient(bootstrap_servers=b.bootstrap, request_timeout_ms=T * 1000)
    kp.list_topics()
    gone = kp.delete_acls([ACLFilter("User:alice", None, ACLOperation.ANY,
                                     ACLPermissionType.ANY,
                                     ResourcePatternFilter(KpResource.ANY, None, KpPattern.ANY))])
    kp.close()
    assert len(gone) == 1 and len(gone[0][1]) == 1, gone
    assert described() == []
    for t in topics:
        err = produce_error(alice, t)
        assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, t


def test_without_an_authorizer_acl_requests_are_refused_and_everything_is_open(broker_factory):
    b = broker_factory()
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    futures = admin.create_acls(
        [allow(ResourceType.TOPIC, "t", "User:alice", AclOperation.READ)], request_timeout=T)
    for f in futures.values():
        with pytest.raises(KafkaException) as e:
            f.result(timeout=T)
        assert e.value.args[0].code() == KafkaError.SECURITY_DISABLED
    topic = f"open-{uuid.uuid4().hex[:6]}"
    rdkafka_io.create_topic(b.bootstrap, topic, 1)
    d = admin.describe_topics(_topic_collection([topic]), include_authorized_operations=True)
    ops = set(d[topic].result(timeout=T).authorized_operations)
    assert AclOperation.DELETE in ops and AclOperation.ALTER_CONFIGS in ops, ops
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "g"})
    assert c.committed([TopicPartition(topic, 0)], timeout=T)[0].offset < 0
    c.close()


def test_sluice_user_and_acl_commands_manage_who_may_do_what(broker_factory, certs, sluice_bin):
    """`sluice user` sets and deletes SCRAM credentials (salted on the client side) and
    `sluice acl` creates, lists and deletes ACLs; the users and ACLs they make work for
    a real client (confluent-kafka) at once."""
    from test_cli import Cli
    b = start_authorized(broker_factory, certs)
    cli = Cli(sluice_bin, b)
    cli.run("user", "create", "carol", "--password", "carol-secret",
            "--mechanism", "SCRAM-SHA-512", "--iterations", "4096")
    cli.run("user", "create", "carol", "--password", "carol-256", "--mechanism", "SCRAM-SHA-256")
    users = cli.json("user", "list")["users"]
    assert [(u["user"], sorted(c["mechanism"] for c in u["credentials"])) for u in users] == [
        ("carol", ["SCRAM-SHA-256", "SCRAM-SHA-512"])]
    rdkafka_io.create_topic(b.bootstrap, "carols", 1)
    carol = as_user(b, certs, ("carol", "carol-secret"))
    err = produce_error(carol, "carols")
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err

    made = cli.json("acl", "create", "--topic", "carol", "--prefixed", "--principal",
                    "User:carol", "--operation", "write,describe")["created"]
    assert sorted(a["operation"] for a in made) == ["DESCRIBE", "WRITE"]
    assert produce_error(carol, "carols") is None
    listed = cli.json("acl", "list", "--principal", "User:carol")["acls"]
    assert {(a["resource_type"], a["name"], a["pattern"], a["operation"], a["permission"])
            for a in listed} == {("TOPIC", "carol", "PREFIXED", "WRITE", "ALLOW"),
                                 ("TOPIC", "carol", "PREFIXED", "DESCRIBE", "ALLOW")}
    # `acl list --topic NAME` shows every ACL whose pattern covers the topic.
    covering = cli.json("acl", "list", "--topic", "carols")["acls"]
    assert len(covering) == 2
    gone = cli.json("acl", "delete", "--topic", "carol", "--prefixed",
                    "--operation", "write")["deleted"]
    assert [a["operation"] for a in gone] == ["WRITE"]
    err = produce_error(carol, "carols")
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err

    # A principal without the cluster's ALTER gets the Kafka error and exit code.
    bad = cli.run("acl", "create", "--cluster", "--principal", "User:x", "--operation",
                  "nonsense", check=False)
    assert bad.returncode != 0 and "unknown operation" in bad.stderr
    cli.run("user", "delete", "carol")
    assert cli.json("user", "list")["users"] == []


def test_quotas_by_user_throttle_that_user_whatever_its_client_id(broker_factory, certs):
    """Issue 17, item 5: AlterClientQuotas (kafka-python's request classes) sets
    producer_byte_rate for a user and for a user's client id; DescribeClientQuotas
    filters by user. alice (user quota, 1 MB/s) is throttled under any client id; bob is
    throttled only as the client id his quota names (Kafka's precedence: user + client
    id before user before client id)."""
    import random

    from kafka.protocol.admin import AlterClientQuotasRequest

    from test_admin_apis import admin_for, describe_quotas, send
    from workload import Message
    b = start_sasl(broker_factory, certs)
    for u in (ALICE, BOB):
        add_user(b.bootstrap, *u)
    E = AlterClientQuotasRequest.EntryData
    admin = admin_for(b)
    try:
        def set_rate(entity, rate):
            op = E.OpData(key="producer_byte_rate", value=float(rate), remove=False)
            parts = [E.EntityData(entity_type=t, entity_name=n) for t, n in entity]
            req = AlterClientQuotasRequest(entries=[E(entity=parts, ops=[op])],
                                           validate_only=False)
            [entry] = send(admin, req).entries
            return entry.error_code
        assert set_rate([("user", "alice")], 1_000_000) == 0
        assert set_rate([("user", "bob"), ("client-id", "slowbob")], 1_000_000) == 0
        assert set_rate([("ip", "127.0.0.1")], 1_000_000) == 42, "ip quotas are refused"
        alice_q = ((("user", "alice"),), (("producer_byte_rate", 1_000_000.0),))
        bob_q = ((("user", "bob"), ("client-id", "slowbob")),
                 (("producer_byte_rate", 1_000_000.0),))
        assert describe_quotas(admin, [("user", 0, "alice")]) == [alice_q]
        assert describe_quotas(admin, [("user", 2, None)]) == sorted([alice_q, bob_q], key=repr)
        assert describe_quotas(admin, [("user", 2, None)], strict=True) == [alice_q]
        assert describe_quotas(admin, [("client-id", 0, "slowbob")]) == [bob_q]
    finally:
        admin.close()
    rdkafka_io.create_topic(b.bootstrap, "quota-by-user", 1)
    rng = random.Random(5)
    for user, client_id, throttled in ((ALICE, "any-client", True), (BOB, "fastbob", False),
                                       (BOB, "slowbob", True)):
        sent = [Message(i, b"k", i, rng.randbytes(1000)) for i in range(12_000)]
        throttles = []
        config = {**rdkafka_io.producer_config(b.bootstrap, compression_type="none"),
                  **as_user(b, certs, user), "client.id": client_id,
                  "throttle_cb": lambda event: throttles.append(event.throttle_time)}
        delivered = rdkafka_io.produce_all([config], [sent], "quota-by-user", timeout=120)
        assert len(delivered) == len(sent)
        assert (max(throttles, default=0) > 0) == throttled, (user[0], client_id, throttles)
