"""Security: listeners with their own protocols, TLS (and mutual TLS), with real clients.

Certificates are made here with `openssl` for every test module run: a CA, a server
certificate for 127.0.0.1 / localhost, a client certificate from that CA, and one from
a CA the broker does not trust. Nothing private is committed.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from conftest import free_ports

TIMEOUT_S = 30


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _make_ca(d: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-keyout", f"{name}.key", "-out", f"{name}.pem", "-subj", f"/CN={name}", cwd=d)


def _make_signed(d: Path, name: str, ca: str, san: str | None) -> None:
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
             "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
    ext = d / f"{name}.ext"
    lines = ["basicConstraints=CA:FALSE"]
    if san:
        lines.append(f"subjectAltName={san}")
    ext.write_text("\n".join(lines) + "\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", "-extfile", ext.name, cwd=d)


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("certs")
    _make_ca(d, "ca")
    _make_signed(d, "server", "ca", "IP:127.0.0.1,DNS:localhost")
    _make_signed(d, "client", "ca", None)
    _make_ca(d, "rogue")
    _make_signed(d, "intruder", "rogue", None)
    return d


def start_secure(broker_factory, certs: Path, *, mtls: bool = False, extra: tuple = ()):
    """A broker with PLAINTEXT on its usual port and SSL on a second one."""
    b = broker_factory(start=False)
    (ssl_port,) = free_ports(1)
    while ssl_port in (b.port, b.admin_port):
        (ssl_port,) = free_ports(1)
    args = [
        "--listeners", f"PLAINTEXT://127.0.0.1:{b.port},SSL://127.0.0.1:{ssl_port}",
        "--tls-cert-file", str(certs / "server.pem"),
        "--tls-key-file", str(certs / "server.key"),
        "--tls-handshake-timeout-ms", "1500",
    ]
    if mtls:
        args += ["--tls-client-ca-file", str(certs / "ca.pem")]
    b.extra_args = tuple(args) + tuple(extra)
    b.start()
    b.ssl_port = ssl_port
    return b


def ssl_conf(certs: Path, port: int, client: str | None = None) -> dict:
    conf = {
        "bootstrap.servers": f"127.0.0.1:{port}",
        "security.protocol": "SSL",
        "ssl.ca.location": str(certs / "ca.pem"),
    }
    if client:
        conf["ssl.certificate.location"] = str(certs / f"{client}.pem")
        conf["ssl.key.location"] = str(certs / f"{client}.key")
    return conf


def confluent_roundtrip(conf: dict, topic: str, n: int = 50) -> list[bytes]:
    p = Producer({**conf, "linger.ms": 5})
    for i in range(n):
        p.produce(topic, value=b"v%d" % i + b"x" * 1000)
    assert p.flush(TIMEOUT_S) == 0, "produce over TLS did not finish"
    c = Consumer({**conf, "group.id": "g-" + uuid.uuid4().hex[:8],
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    got: list[bytes] = []
    deadline = time.monotonic() + TIMEOUT_S
    while len(got) < n and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        assert m.error() is None, m.error()
        got.append(m.value())
    c.close()
    return got


def test_confluent_produces_and_consumes_over_tls_and_metadata_names_the_tls_listener(
        broker_factory, certs):
    b = start_secure(broker_factory, certs)
    conf = ssl_conf(certs, b.ssl_port)
    got = confluent_roundtrip(conf, "tls-topic")
    assert [g[:3] for g in got[:3]] == [b"v0x", b"v1x", b"v2x"]
    assert len(got) == 50
    md = AdminClient(conf).list_topics(timeout=10)
    # Clients that came in on the SSL listener are told its address, not the plaintext one.
    assert [(x.host, x.port) for x in md.brokers.values()] == [("127.0.0.1", b.ssl_port)]
    md = AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(timeout=10)
    assert [(x.port) for x in md.brokers.values()] == [b.port]


def test_kafka_python_and_kcat_over_tls(broker_factory, certs):
    from kafka import KafkaConsumer, KafkaProducer

    b = start_secure(broker_factory, certs)
    kw = dict(bootstrap_servers=f"127.0.0.1:{b.ssl_port}", security_protocol="SSL",
              ssl_cafile=str(certs / "ca.pem"))
    p = KafkaProducer(**kw)
    for i in range(20):
        p.send("kp-tls", b"kp%d" % i)
    p.flush(TIMEOUT_S)
    p.close()
    c = KafkaConsumer("kp-tls", auto_offset_reset="earliest", consumer_timeout_ms=10000,
                      group_id=None, **kw)
    values = [m.value for m in c]
    c.close()
    assert values == [b"kp%d" % i for i in range(20)]

    kcat = ["kcat", "-b", f"127.0.0.1:{b.ssl_port}", "-X", "security.protocol=SSL",
            "-X", f"ssl.ca.location={certs / 'ca.pem'}"]
    subprocess.run(kcat + ["-P", "-t", "kcat-tls"], input=b"a\nb\nc\n", check=True, timeout=30)
    out = subprocess.run(kcat + ["-C", "-t", "kcat-tls", "-o", "beginning", "-e", "-q"],
                         capture_output=True, check=True, timeout=30).stdout
    assert out.split() == [b"a", b"b", b"c"]


def test_a_client_that_does_not_trust_the_server_fails(broker_factory, certs):
    b = start_secure(broker_factory, certs)
    conf = ssl_conf(certs, b.ssl_port)
    conf["ssl.ca.location"] = str(certs / "rogue.pem")
    with pytest.raises(KafkaException):
        AdminClient(conf).list_topics(timeout=5)


def test_mutual_tls_needs_a_certificate_from_the_ca(broker_factory, certs):
    b = start_secure(broker_factory, certs, mtls=True)
    got = confluent_roundtrip(ssl_conf(certs, b.ssl_port, "client"), "mtls-topic", 10)
    assert len(got) == 10
    for bad in (None, "intruder"):
        with pytest.raises(KafkaException):
            AdminClient(ssl_conf(certs, b.ssl_port, bad)).list_topics(timeout=5)
    kcat = ["kcat", "-b", f"127.0.0.1:{b.ssl_port}", "-X", "security.protocol=SSL",
            "-X", f"ssl.ca.location={certs / 'ca.pem'}",
            "-X", f"ssl.certificate.location={certs / 'client.pem'}",
            "-X", f"ssl.key.location={certs / 'client.key'}"]
    out = subprocess.run(kcat + ["-C", "-t", "mtls-topic", "-o", "beginning", "-e", "-q", "-c", "3"],
                         capture_output=True, check=True, timeout=30).stdout
    assert len(out.split()) == 3
    assert "TLS handshake failed" in b.log_tail(200)


def test_plaintext_and_silent_clients_on_the_tls_port_are_closed_and_others_go_on(
        broker_factory, certs):
    b = start_secure(broker_factory, certs)
    # A Kafka client speaking plaintext to the TLS port: ApiVersions v0 bytes.
    plain = socket.create_connection(("127.0.0.1", b.ssl_port), timeout=5)
    plain.sendall(bytes.fromhex("0000000e" "0012" "0000" "00000001" "0004") + b"test")
    # Silent clients: they connect and never send a byte.
    silent = [socket.create_connection(("127.0.0.1", b.ssl_port), timeout=5) for _ in range(20)]
    # Meanwhile a TLS client and a plaintext client work.
    got = confluent_roundtrip(ssl_conf(certs, b.ssl_port), "busy", 10)
    assert len(got) == 10
    got = confluent_roundtrip({"bootstrap.servers": b.bootstrap}, "busy-plain", 10)
    assert len(got) == 10
    plain.settimeout(5)
    data = b"".join(iter(lambda: plain.recv(4096), b""))
    assert not data.startswith(b"\x00\x00"), "a plaintext answer came from the TLS port"
    started = time.monotonic()
    for s in silent:
        s.settimeout(10)
        assert s.recv(1) == b"", "a silent client was sent bytes"
    assert time.monotonic() - started < 8, "silent handshakes outlived the handshake timeout"
    log = b.log_tail(300)
    assert "TLS handshake failed" in log
    assert "TLS handshake not done within 1500 ms" in log
    for s in [plain, *silent]:
        s.close()
    b.assert_alive()


def test_python_ssl_speaks_tls12_and_tls13(broker_factory, certs):
    b = start_secure(broker_factory, certs)
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        ctx.minimum_version = ctx.maximum_version = version
        with socket.create_connection(("127.0.0.1", b.ssl_port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                assert s.version() == {ssl.TLSVersion.TLSv1_2: "TLSv1.2",
                                       ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
                # ApiVersions v0 over TLS gets an answer with the same correlation id.
                s.sendall(bytes.fromhex("0000000e" "0012" "0000" "0000002a" "0004") + b"test")
                head = s.recv(8)
                assert head[4:8] == bytes.fromhex("0000002a")


def test_bad_listener_settings_are_refused_at_start(broker_factory, certs, tmp_path):
    from conftest import BrokerError

    b = broker_factory(start=False)
    b.extra_args = ("--listeners", f"SSL://127.0.0.1:{b.port}")
    with pytest.raises(BrokerError, match="tls_cert_file"):
        b.start(timeout=10)
    b.proc = None  # it was meant to exit
    b2 = broker_factory(start=False)
    (tmp_path / "empty.pem").write_text("")
    b2.extra_args = ("--listeners", f"SSL://127.0.0.1:{b2.port}",
                     "--tls-cert-file", str(tmp_path / "empty.pem"),
                     "--tls-key-file", str(certs / "server.key"))
    with pytest.raises(BrokerError, match="no certificate"):
        b2.start(timeout=10)
    b2.proc = None


# --- SASL ------------------------------------------------------------------------

def start_sasl(broker_factory, certs: Path, shards: int = 2, extra: tuple = ()):
    """PLAINTEXT on the usual port, SASL_SSL and SASL_PLAINTEXT on two more; `extra`
    flags after those."""
    b = broker_factory(start=False, shards=shards)
    ports = [p for p in free_ports(4) if p not in (b.port, b.admin_port)][:2]
    b.sasl_ssl_port, b.sasl_port = ports
    b.extra_args = (
        "--listeners", f"PLAINTEXT://127.0.0.1:{b.port},SASL_SSL://127.0.0.1:{ports[0]},"
                       f"SASL_PLAINTEXT://127.0.0.1:{ports[1]}",
        "--tls-cert-file", str(certs / "server.pem"),
        "--tls-key-file", str(certs / "server.key"),
        *extra,
    )
    return b.start()


def add_user(bootstrap: str, user: str, password: str, mechanism: str = "SCRAM-SHA-512",
             iterations: int = 4096):
    from confluent_kafka.admin import (ScramCredentialInfo, ScramMechanism,
                                       UserScramCredentialUpsertion)
    mech = {"SCRAM-SHA-512": ScramMechanism.SCRAM_SHA_512,
            "SCRAM-SHA-256": ScramMechanism.SCRAM_SHA_256}[mechanism]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    up = UserScramCredentialUpsertion(user, ScramCredentialInfo(mech, iterations),
                                      password.encode(), None)
    for f in admin.alter_user_scram_credentials([up]).values():
        f.result(timeout=15)


def sasl_conf(certs: Path, port: int, mechanism: str, user: str, password: str,
              tls: bool = True) -> dict:
    conf = {
        "bootstrap.servers": f"127.0.0.1:{port}",
        "security.protocol": "SASL_SSL" if tls else "SASL_PLAINTEXT",
        "sasl.mechanism": mechanism,
        "sasl.username": user,
        "sasl.password": password,
    }
    if tls:
        conf["ssl.ca.location"] = str(certs / "ca.pem")
    return conf


def auth_error(conf: dict) -> object:
    """The first error librdkafka reports for `conf` (within 15 s); None when it works."""
    errors = []
    admin = AdminClient({**conf, "error_cb": errors.append})
    deadline = time.monotonic() + 15
    while not errors and time.monotonic() < deadline:
        try:
            admin.list_topics(timeout=1)
            return None
        except KafkaException:
            pass
        admin.poll(0.1)
    assert errors, "neither an answer nor an error within 15 s"
    return errors[0]


def test_confluent_over_sasl_ssl_and_sasl_plaintext_with_scram_and_plain(broker_factory, certs):
    b = start_sasl(broker_factory, certs)
    add_user(b.bootstrap, "alice", "alice-secret", "SCRAM-SHA-512")
    add_user(b.bootstrap, "bob", "bob-secret", "SCRAM-SHA-256")
    cases = [
        (b.sasl_ssl_port, "SCRAM-SHA-512", "alice", "alice-secret", True),
        (b.sasl_ssl_port, "PLAIN", "alice", "alice-secret", True),
        (b.sasl_port, "SCRAM-SHA-256", "bob", "bob-secret", False),
        (b.sasl_port, "PLAIN", "bob", "bob-secret", False),
    ]
    for i, (port, mech, user, pw, tls) in enumerate(cases):
        got = confluent_roundtrip(sasl_conf(certs, port, mech, user, pw, tls), f"sasl-{i}", 20)
        assert len(got) == 20, (mech, tls)


def test_wrong_password_unknown_user_and_wrong_mechanism_fail(broker_factory, certs):
    from confluent_kafka import KafkaError

    b = start_sasl(broker_factory, certs)
    add_user(b.bootstrap, "alice", "alice-secret", "SCRAM-SHA-512")
    for mech, user, pw in [("SCRAM-SHA-512", "alice", "nope"), ("PLAIN", "alice", "nope"),
                           ("SCRAM-SHA-512", "mallory", "x"), ("PLAIN", "mallory", "x"),
                           # alice has no SCRAM-SHA-256 credential
                           ("SCRAM-SHA-256", "alice", "alice-secret")]:
        err = auth_error(sasl_conf(certs, b.sasl_ssl_port, mech, user, pw))
        assert getattr(err, "code", lambda: None)() == KafkaError._AUTHENTICATION, (mech, user, err)
        assert "invalid credentials" in err.str(), err.str()
    log = b.log_tail(300)
    assert "SASL authentication failed" in log
    # The reason is logged (lines are limited to one a second, so not every one shows).
    assert "wrong password" in log or "unknown user" in log
    # The right password still works after the failures.
    ok = sasl_conf(certs, b.sasl_ssl_port, "SCRAM-SHA-512", "alice", "alice-secret")
    AdminClient(ok).list_topics(timeout=15)


def test_kafka_python_and_kcat_over_sasl(broker_factory, certs):
    from kafka import KafkaConsumer, KafkaProducer

    b = start_sasl(broker_factory, certs)
    add_user(b.bootstrap, "carol", "carol-secret", "SCRAM-SHA-512")
    for port, proto, mech in [(b.sasl_ssl_port, "SASL_SSL", "SCRAM-SHA-512"),
                              (b.sasl_port, "SASL_PLAINTEXT", "PLAIN")]:
        kw = dict(bootstrap_servers=f"127.0.0.1:{port}", security_protocol=proto,
                  sasl_mechanism=mech, sasl_plain_username="carol",
                  sasl_plain_password="carol-secret")
        if proto == "SASL_SSL":
            kw["ssl_cafile"] = str(certs / "ca.pem")
        topic = f"kp-{proto.lower()}"
        p = KafkaProducer(**kw)
        for i in range(10):
            p.send(topic, b"m%d" % i)
        p.flush(TIMEOUT_S)
        p.close()
        c = KafkaConsumer(topic, auto_offset_reset="earliest", consumer_timeout_ms=10000, **kw)
        values = [m.value for m in c]
        c.close()
        assert values == [b"m%d" % i for i in range(10)], proto

    kcat = ["kcat", "-b", f"127.0.0.1:{b.sasl_ssl_port}", "-X", "security.protocol=SASL_SSL",
            "-X", f"ssl.ca.location={certs / 'ca.pem'}", "-X", "sasl.mechanisms=SCRAM-SHA-512",
            "-X", "sasl.username=carol", "-X", "sasl.password=carol-secret"]
    subprocess.run(kcat + ["-P", "-t", "kcat-sasl"], input=b"x\ny\n", check=True, timeout=30)
    out = subprocess.run(kcat + ["-C", "-t", "kcat-sasl", "-o", "beginning", "-e", "-q"],
                         capture_output=True, check=True, timeout=30).stdout
    assert out.split() == [b"x", b"y"]
    plain = [a.replace("SCRAM-SHA-512", "PLAIN") for a in kcat]
    subprocess.run(plain + ["-P", "-t", "kcat-sasl"], input=b"z\n", check=True, timeout=30)
    out = subprocess.run(plain + ["-C", "-t", "kcat-sasl", "-o", "beginning", "-e", "-q"],
                         capture_output=True, check=True, timeout=30).stdout
    assert out.split() == [b"x", b"y", b"z"], "kcat with PLAIN over SASL_SSL"
    bad = [a.replace("carol-secret", "wrong") for a in kcat]
    r = subprocess.run(bad + ["-L", "-m", "5"], capture_output=True, timeout=30)
    assert r.returncode != 0
    assert b"uthentication" in r.stderr, r.stderr


def test_users_are_described_survive_a_restart_and_can_be_deleted(broker_factory, certs):
    from confluent_kafka import KafkaError
    from confluent_kafka.admin import ScramMechanism, UserScramCredentialDeletion

    b = start_sasl(broker_factory, certs)
    add_user(b.bootstrap, "dave", "pw1", "SCRAM-SHA-512", iterations=8192)
    add_user(b.bootstrap, "dave", "pw1", "SCRAM-SHA-256")
    b.restart()
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    desc = admin.describe_user_scram_credentials(["dave"])["dave"].result(timeout=15)
    infos = sorted((i.mechanism, i.iterations) for i in desc.scram_credential_infos)
    assert infos == sorted([(ScramMechanism.SCRAM_SHA_512, 8192),
                            (ScramMechanism.SCRAM_SHA_256, 4096)])
    with pytest.raises(KafkaException, match="does not exist"):
        admin.describe_user_scram_credentials(["nobody"])["nobody"].result(timeout=15)
    AdminClient(sasl_conf(certs, b.sasl_ssl_port, "SCRAM-SHA-512", "dave", "pw1")).list_topics(
        timeout=15)
    # Too few iterations is refused, as Kafka does.
    with pytest.raises(KafkaException):
        add_user(b.bootstrap, "erin", "pw", "SCRAM-SHA-512", iterations=100)
    for f in admin.alter_user_scram_credentials([
            UserScramCredentialDeletion("dave", ScramMechanism.SCRAM_SHA_512)]).values():
        f.result(timeout=15)
    err = auth_error(sasl_conf(certs, b.sasl_ssl_port, "SCRAM-SHA-512", "dave", "pw1"))
    assert err is not None and err.code() == KafkaError._AUTHENTICATION, err
    # Its SHA-256 credential remains, and PLAIN checks against it.
    AdminClient(sasl_conf(certs, b.sasl_ssl_port, "PLAIN", "dave", "pw1")).list_topics(timeout=15)


def _frame(api_key: int, version: int, cid: int, body: bytes) -> bytes:
    header = api_key.to_bytes(2, "big") + version.to_bytes(2, "big") + cid.to_bytes(4, "big")
    header += (4).to_bytes(2, "big") + b"test"
    msg = header + body
    return len(msg).to_bytes(4, "big") + msg


def _recv_frame(s: socket.socket) -> bytes:
    def exactly(n):
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return buf
    return exactly(int.from_bytes(exactly(4), "big"))


def _plain_attempt(port: int, password: bytes) -> tuple[int, float]:
    """SaslHandshake v1 PLAIN, then SaslAuthenticate v0: (error code, seconds to answer)."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        mech = b"PLAIN"
        s.sendall(_frame(17, 1, 1, len(mech).to_bytes(2, "big") + mech))
        resp = _recv_frame(s)
        assert resp[4:6] == b"\x00\x00", resp
        token = b"\x00alice\x00" + password
        started = time.monotonic()
        s.sendall(_frame(36, 0, 2, len(token).to_bytes(4, "big") + token))
        resp = _recv_frame(s)
        took = time.monotonic() - started
        return int.from_bytes(resp[4:6], "big", signed=True), took


def test_requests_before_authentication_close_and_repeated_failures_slow_down(
        broker_factory, certs):
    # One shard: failures are counted per shard, and connections spread over shards.
    b = start_sasl(broker_factory, certs, shards=1)
    add_user(b.bootstrap, "alice", "alice-secret", "SCRAM-SHA-512")
    # Metadata v1 before authenticating: the connection is closed without an answer.
    with socket.create_connection(("127.0.0.1", b.sasl_port), timeout=10) as s:
        s.sendall(_frame(3, 1, 9, (-1).to_bytes(4, "big", signed=True)))
        assert s.recv(100) == b""
    # ApiVersions is answered before authentication.
    with socket.create_connection(("127.0.0.1", b.sasl_port), timeout=10) as s:
        s.sendall(_frame(18, 0, 5, b""))
        assert _recv_frame(s)[:4] == (5).to_bytes(4, "big")
    code, _ = _plain_attempt(b.sasl_port, b"alice-secret")
    assert code == 0
    times = []
    for _ in range(4):
        code, took = _plain_attempt(b.sasl_port, b"wrong")
        assert code == 58  # SASL_AUTHENTICATION_FAILED
        times.append(took)
    # 100 ms, then doubling: the fourth failure in a row waits 800 ms.
    assert times[0] >= 0.09 and times[3] >= 0.75, times
    b.assert_alive()


def _sasl_v1(s: socket.socket, user: bytes, password: bytes, cid: int) -> tuple[int, int]:
    """SaslHandshake v1 PLAIN, then SaslAuthenticate v1: (error code, session_lifetime_ms)."""
    mech = b"PLAIN"
    s.sendall(_frame(17, 1, cid, len(mech).to_bytes(2, "big") + mech))
    resp = _recv_frame(s)
    assert resp[4:6] == b"\x00\x00", resp
    token = b"\x00" + user + b"\x00" + password
    s.sendall(_frame(36, 1, cid + 1, len(token).to_bytes(4, "big") + token))
    resp = _recv_frame(s)
    code = int.from_bytes(resp[4:6], "big", signed=True)
    pos = 6
    msg_len = int.from_bytes(resp[pos:pos + 2], "big", signed=True)
    pos += 2 + max(msg_len, 0)
    pos += 4 + int.from_bytes(resp[pos:pos + 4], "big", signed=True)
    return code, int.from_bytes(resp[pos:pos + 8], "big", signed=True)


def _metadata_answered(s: socket.socket, cid: int) -> bool:
    """Metadata v1 (all topics): whether an answer came (False: the broker closed)."""
    try:
        s.sendall(_frame(3, 1, cid, (-1).to_bytes(4, "big", signed=True)))
        return len(_recv_frame(s)) > 4
    except (ConnectionError, OSError):
        return False


def test_sessions_end_after_connections_max_reauth_ms_unless_renewed(broker_factory, certs):
    """KIP-368: with connections_max_reauth_ms the SaslAuthenticate v1 answer names the
    session's lifetime; a connection that does not re-authenticate is closed at its
    first request after the end; one that re-authenticates (SaslHandshake +
    SaslAuthenticate again, same user) goes on, and one that re-authenticates as another
    user is closed. librdkafka re-authenticates by itself and keeps producing."""
    b = start_sasl(broker_factory, certs, extra=("--connections-max-reauth-ms", "1500"))
    add_user(b.bootstrap, "alice", "alice-secret", "SCRAM-SHA-512")
    add_user(b.bootstrap, "bob", "bob-secret", "SCRAM-SHA-512")
    with socket.create_connection(("127.0.0.1", b.sasl_port), timeout=10) as lapsing, \
            socket.create_connection(("127.0.0.1", b.sasl_port), timeout=10) as renewing:
        assert _sasl_v1(lapsing, b"alice", b"alice-secret", 1) == (0, 1500)
        assert _sasl_v1(renewing, b"alice", b"alice-secret", 1) == (0, 1500)
        assert _metadata_answered(lapsing, 3) and _metadata_answered(renewing, 3)
        time.sleep(1.0)
        assert _sasl_v1(renewing, b"alice", b"alice-secret", 4) == (0, 1500)
        time.sleep(0.8)  # past the first session's end, within the renewed one
        assert _metadata_answered(renewing, 6), "a renewed session goes on"
        assert not _metadata_answered(lapsing, 6), "an expired session is closed"
    with socket.create_connection(("127.0.0.1", b.sasl_port), timeout=10) as switching:
        assert _sasl_v1(switching, b"alice", b"alice-secret", 1)[0] == 0
        try:
            _sasl_v1(switching, b"bob", b"bob-secret", 3)
            closed = not _metadata_answered(switching, 5)
        except (ConnectionError, OSError, AssertionError):
            closed = True
        assert closed, "re-authenticating as another user closes the connection"
    before = sum(b.per_shard("sluice_sasl_reauthentications_total").values())
    conf = sasl_conf(certs, b.sasl_port, "SCRAM-SHA-512", "alice", "alice-secret", tls=False)
    p = Producer({**conf, "linger.ms": 5})
    sent, deadline = 0, time.monotonic() + 4
    while time.monotonic() < deadline:
        p.produce("reauth", b"x" * 100)
        p.poll(0.05)
        sent += 1
    assert p.flush(15) == 0
    renewed = sum(b.per_shard("sluice_sasl_reauthentications_total").values()) - before
    assert renewed >= 2, f"librdkafka renewed its sessions {renewed} times in 4 s"
    expired = sum(b.per_shard("sluice_sasl_sessions_expired_total").values())
    assert expired == 1, expired  # the lapsing connection above, nothing of librdkafka's
