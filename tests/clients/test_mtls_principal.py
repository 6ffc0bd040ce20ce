"""Mutual TLS principals and certificate reload (issue 17, items 2 and 4).

On an SSL listener with a client CA, a client's principal is `User:` + the subject of
its certificate in RFC 2253 form (`CN=alice,OU=eng,O=Example,C=US`), mapped by
`--ssl-principal-mapping-rules` as Kafka's `ssl.principal.mapping.rules` maps it. The
tests grant ACLs to those principals and check, with confluent-kafka, kcat and
kafka-python, that exactly they are let in. A name no rule maps is refused.

Certificates are replaced on disk while the broker runs: the next handshakes get the
new ones (found by the watch, or at SIGHUP), open connections go on, and files that
do not load leave the previous certificates in use.

Before this change every mTLS client was User:ANONYMOUS and certificates were read once.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AclOperation, AdminClient, ResourceType

import rdkafka_io
from conftest import BrokerError, free_ports
from test_acl import allow, consume_error, create_acls, produce_error, visible_topics
from test_security import _make_ca, _openssl, start_secure

T = 15
# IA5String (0x16) of 17 bytes, "carol@example.com", as Java's X500Principal writes it.
CAROL_DN = "User:1.2.840.113549.1.9.1=#1611" + b"carol@example.com".hex() + ",CN=carol"


def _make_client(d: Path, name: str, subject: str, days: int = 2) -> None:
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
             "-out", f"{name}.csr", "-subj", subject, cwd=d)
    # An extension makes it an X.509 v3 certificate (webpki refuses v1).
    (d / "client.ext").write_text("basicConstraints=CA:FALSE\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", str(days), "-out", f"{name}.pem", "-extfile", "client.ext",
             cwd=d)


def _make_server(d: Path, name: str) -> None:
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
             "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", "-extfile", "san.ext",
             cwd=d)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    _make_ca(d, "ca")
    _make_server(d, "server")
    _make_server(d, "server-renewed")
    # The subject is written most significant first; RFC 2253 names it the other way.
    _make_client(d, "alice", "/C=US/O=Example/OU=eng/CN=alice")
    _make_client(d, "bob", "/C=US/O=Example/OU=ops/CN=bob, the \"admin\"")
    # emailAddress has no RFC 2253 keyword: it is written as its OID and its DER in hex.
    _make_client(d, "carol", "/CN=carol/emailAddress=carol@example.com")
    # Valid for no time at all: expired a second later.
    _make_client(d, "lapsed", "/CN=lapsed", days=0)
    return d


def mtls(pki: Path, port: int, who: str) -> dict:
    return {"bootstrap.servers": f"127.0.0.1:{port}", "security.protocol": "SSL",
            "ssl.ca.location": str(pki / "ca.pem"),
            "ssl.certificate.location": str(pki / f"{who}.pem"),
            "ssl.key.location": str(pki / f"{who}.key")}


def start_mtls(broker_factory, pki: Path, *extra: str):
    return start_secure(broker_factory, pki, mtls=True, extra=(
        "--authorizer", "true", "--super-users", "User:ANONYMOUS", *extra))


def kcat(pki: Path, port: int, who: str) -> list[str]:
    return ["kcat", "-b", f"127.0.0.1:{port}", "-X", "security.protocol=SSL",
            "-X", f"ssl.ca.location={pki / 'ca.pem'}",
            "-X", f"ssl.certificate.location={pki / f'{who}.pem'}",
            "-X", f"ssl.key.location={pki / f'{who}.key'}"]


def test_the_certificate_subject_is_the_principal_acls_name(broker_factory, pki):
    b = start_mtls(broker_factory, pki)
    for t in ("orders", "secret"):
        rdkafka_io.create_topic(b.bootstrap, t, 2)
        assert produce_error({"bootstrap.servers": b.bootstrap}, t) is None
    alice_dn = "User:CN=alice,OU=eng,O=Example,C=US"
    # The comma and the quotes of bob's common name are escaped, as Java escapes them.
    bob_dn = 'User:CN=bob\\, the \\"admin\\",OU=ops,O=Example,C=US'
    create_acls(b.bootstrap, [
        allow(ResourceType.TOPIC, "orders", alice_dn, AclOperation.READ),
        allow(ResourceType.GROUP, "*", alice_dn, AclOperation.READ),
        allow(ResourceType.TOPIC, "secret", bob_dn, AclOperation.WRITE),
        allow(ResourceType.TOPIC, "secret", CAROL_DN, AclOperation.WRITE),
    ])
    alice, bob = mtls(pki, b.ssl_port, "alice"), mtls(pki, b.ssl_port, "bob")
    assert visible_topics(alice) == {"orders"}
    assert visible_topics(bob) == {"secret"}
    assert consume_error(alice, "orders", "g-alice") is None
    err = produce_error(alice, "orders")
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err
    assert produce_error(bob, "secret") is None
    assert produce_error(mtls(pki, b.ssl_port, "carol"), "secret") is None

    # kcat (librdkafka's CLI) as alice: reads orders, may not write to it or read secret.
    out = subprocess.run(kcat(pki, b.ssl_port, "alice") + [
        "-C", "-t", "orders", "-o", "beginning", "-e", "-q", "-G", "g-kcat", "orders"],
        capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [b"v"], out.stdout
    r = subprocess.run(kcat(pki, b.ssl_port, "alice") + ["-P", "-t", "orders"],
                       input=b"nope\n", capture_output=True, timeout=60)
    assert r.returncode != 0 and b"authorization failed" in r.stderr.lower(), r.stderr
    r = subprocess.run(kcat(pki, b.ssl_port, "alice") + [
        "-C", "-t", "secret", "-o", "beginning", "-e", "-q"], capture_output=True, timeout=60)
    assert r.returncode != 0 and b"authorization failed" in r.stderr.lower(), r.stderr

    # kafka-python, a second TLS client: the same principal, the same answer.
    from kafka import KafkaConsumer
    c = KafkaConsumer("orders", bootstrap_servers=f"127.0.0.1:{b.ssl_port}",
                      security_protocol="SSL", ssl_cafile=str(pki / "ca.pem"),
                      ssl_certfile=str(pki / "alice.pem"), ssl_keyfile=str(pki / "alice.key"),
                      auto_offset_reset="earliest", consumer_timeout_ms=10_000, group_id=None)
    assert [m.value for m in c] == [b"v"]
    c.close()
    from kafka import KafkaProducer
    p = KafkaProducer(bootstrap_servers=f"127.0.0.1:{b.ssl_port}", security_protocol="SSL",
                      ssl_cafile=str(pki / "ca.pem"), ssl_certfile=str(pki / "bob.pem"),
                      ssl_keyfile=str(pki / "bob.key"))
    p.send("secret", b"from kafka-python").get(timeout=T)
    p.close()


def test_mapping_rules_shorten_the_name_and_a_name_no_rule_maps_is_refused(
        broker_factory, pki):
    b = start_mtls(broker_factory, pki, "--ssl-principal-mapping-rules",
                   "RULE:^CN=([^,]*),OU=eng,.*$/$1/U")
    rdkafka_io.create_topic(b.bootstrap, "orders", 1)
    create_acls(b.bootstrap, [allow(ResourceType.TOPIC, "orders", "User:ALICE",
                                    AclOperation.WRITE)])
    assert produce_error(mtls(pki, b.ssl_port, "alice"), "orders") is None
    # bob is in OU=ops: no rule maps him, so his connections are closed.
    r = subprocess.run(kcat(pki, b.ssl_port, "bob") + ["-L", "-m", "5"],
                       capture_output=True, timeout=60)
    assert r.returncode != 0, r.stdout
    assert "no ssl_principal_mapping_rules rule applies" in b.log_tail(200)


def test_an_expired_client_certificate_is_refused(broker_factory, pki):
    b = start_mtls(broker_factory, pki)
    time.sleep(1.1)  # the lapsed certificate's one second is over
    r = subprocess.run(kcat(pki, b.ssl_port, "lapsed") + ["-L", "-m", "5"],
                       capture_output=True, timeout=60)
    assert r.returncode != 0, r.stdout
    assert "invalid peer certificate: certificate expired" in b.log_tail(200)
    r = subprocess.run(kcat(pki, b.ssl_port, "alice") + ["-L", "-m", "5"],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_bad_mapping_rules_are_refused_at_start(broker_factory):
    b = broker_factory(start=False)
    b.extra_args = ("--ssl-principal-mapping-rules", "RULE:CN=(.*)")
    with pytest.raises(BrokerError, match="ssl_principal_mapping_rules: invalid rule"):
        b.start(timeout=10)
    b.proc = None  # it was meant to exit


def served_subject(port: int, pki: Path) -> str:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            return dict(x[0] for x in s.getpeercert()["subject"])["commonName"]


def replace(pki: Path, live: Path, name: str) -> None:
    """Put certificate `name` in place of the served one, as a renewal does (rename)."""
    for ext in ("pem", "key"):
        tmp = live / f"server.{ext}.new"
        tmp.write_bytes((pki / f"{name}.{ext}").read_bytes())
        os.replace(tmp, live / f"server.{ext}")


def wait_for_subject(port: int, pki: Path, want: str) -> None:
    deadline = time.monotonic() + T
    while (got := served_subject(port, pki)) != want:
        assert time.monotonic() < deadline, f"still serving {got}, not {want}"
        time.sleep(0.2)


def start_reloading(broker_factory, pki: Path, live: Path, *extra: str):
    live.mkdir()
    replace(pki, live, "server")
    b = broker_factory(start=False)
    port = free_port_beside(b)
    b.extra_args = ("--listeners", f"PLAINTEXT://127.0.0.1:{b.port},SSL://127.0.0.1:{port}",
                    "--tls-cert-file", str(live / "server.pem"),
                    "--tls-key-file", str(live / "server.key"), *extra)
    b.start()
    b.ssl_port = port
    return b


def free_port_beside(b) -> int:
    while True:
        (port,) = free_ports(1)
        if port not in (b.port, b.admin_port):
            return port


def test_renewed_certificates_are_served_without_a_restart(broker_factory, pki, tmp_path):
    b = start_reloading(broker_factory, pki, tmp_path / "live", "--tls-reload-interval-ms", "300")
    assert served_subject(b.ssl_port, pki) == "server"
    conf = {"bootstrap.servers": f"127.0.0.1:{b.ssl_port}", "security.protocol": "SSL",
            "ssl.ca.location": str(pki / "ca.pem")}
    p = Producer(conf)
    p.produce("renewal", b"before")
    assert p.flush(T) == 0

    replace(pki, tmp_path / "live", "server-renewed")
    wait_for_subject(b.ssl_port, pki, "server-renewed")
    # The producer's connection was made before the renewal and goes on.
    p.produce("renewal", b"after")
    assert p.flush(T) == 0

    # A key that does not match the certificate does not load: the renewed one stays.
    (tmp_path / "live" / "server.key").write_bytes((pki / "server.key").read_bytes())
    deadline = time.monotonic() + T
    while "do not load" not in b.log_tail(50):
        assert time.monotonic() < deadline, "the bad key was never tried"
        time.sleep(0.2)
    assert served_subject(b.ssl_port, pki) == "server-renewed"
    assert produce_error(conf, "renewal") is None


def test_sighup_loads_changed_certificates_at_once(broker_factory, pki, tmp_path):
    b = start_reloading(broker_factory, pki, tmp_path / "live", "--tls-reload-interval-ms", "0")
    replace(pki, tmp_path / "live", "server-renewed")
    time.sleep(0.5)
    assert served_subject(b.ssl_port, pki) == "server", "no watch: nothing changes by itself"
    b.proc.send_signal(signal.SIGHUP)
    wait_for_subject(b.ssl_port, pki, "server-renewed")
    assert b.is_running(), "SIGHUP does not stop the broker"
