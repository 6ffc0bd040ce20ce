"""Just enough of the Kafka wire protocol, by hand, to send exact bytes.

Used where a real client cannot say what a test needs: malformed frames,
versions no client sends, or a look at the raw bytes of stored batches.
Big-endian throughout; frames are a 4-byte length, then the request.
"""

from __future__ import annotations

import socket
import struct
import time
from collections import defaultdict

CLIENT_ID = "sluice-tests"

API_PRODUCE, API_FETCH, API_METADATA, API_API_VERSIONS = 0, 1, 3, 18
UNSUPPORTED_VERSION = 35


def string(s: str | None) -> bytes:
    """Kafka (nullable) STRING: int16 length, then UTF-8 bytes."""
    if s is None:
        return struct.pack(">h", -1)
    data = s.encode()
    return struct.pack(">h", len(data)) + data


def uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def compact_string(s: str) -> bytes:
    data = s.encode()
    return uvarint(len(data) + 1) + data


def header_v1(api_key: int, version: int, correlation_id: int, client_id: str | None = CLIENT_ID) -> bytes:
    return struct.pack(">hhi", api_key, version, correlation_id) + string(client_id)


def header_v2(api_key: int, version: int, correlation_id: int, client_id: str | None = CLIENT_ID) -> bytes:
    """Request header v2 (flexible versions): v1 plus an empty tagged-field section."""
    return header_v1(api_key, version, correlation_id, client_id) + b"\x00"


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def read_frame(sock: socket.socket) -> bytes:
    (size,) = struct.unpack(">i", recv_exact(sock, 4))
    assert 0 <= size <= 100 * 1024 * 1024, f"response frame length {size}"
    return recv_exact(sock, size)


def closed_or_answered(sock: socket.socket, timeout: float = 5.0) -> bytes | None:
    """Wait for the broker to close the connection (returns None) or to send
    some bytes (returns what arrived within a short while). Raises if neither
    happens within `timeout`."""
    sock.settimeout(timeout)
    try:
        first = sock.recv(65536)
    except ConnectionResetError:
        return None
    except TimeoutError:
        raise AssertionError(f"broker neither answered nor closed the connection within {timeout} s")
    if not first:
        return None
    data = bytearray(first)
    sock.settimeout(0.5)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            more = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not more:
            break
        data += more
    return bytes(data)


def wait_closed(sock: socket.socket, timeout: float = 5.0) -> None:
    """Assert the broker closes the connection within `timeout`, sending nothing."""
    got = closed_or_answered(sock, timeout)
    assert got is None, f"expected the broker to close the connection, got {len(got)} bytes: {got[:64]!r}"


# --- ApiVersions -------------------------------------------------------------------

def api_versions_request(version: int, correlation_id: int) -> bytes:
    """A framed ApiVersions request; v3+ is flexible (header v2, compact strings)."""
    if version >= 3:
        body = compact_string("sluice-tests") + compact_string("1.0") + b"\x00"
        return frame(header_v2(API_API_VERSIONS, version, correlation_id) + body)
    return frame(header_v1(API_API_VERSIONS, version, correlation_id))


def parse_api_versions_v0(data: bytes) -> tuple[int, int, dict[int, tuple[int, int]]]:
    """(correlation id, error code, {api key: (min, max)}) of a v0 response.
    Asserts the frame holds exactly that and nothing more."""
    correlation_id, error, count = struct.unpack_from(">ihi", data, 0)
    assert count >= 0, f"ApiVersions v0 response with api_keys count {count}"
    expected_len = 10 + 6 * count
    assert len(data) == expected_len, (
        f"ApiVersions v0 response is {len(data)} bytes, a v0 body with {count} keys is {expected_len}: {data[:64]!r}")
    ranges = {}
    for i in range(count):
        key, lo, hi = struct.unpack_from(">hhh", data, 10 + 6 * i)
        ranges[key] = (lo, hi)
    return correlation_id, error, ranges


# --- Fetch v4 (non-flexible, RecordBatch v2) ----------------------------------------

def fetch_v4_request(correlation_id: int, topic: str, offsets: dict[int, int], *,
                     max_wait_ms: int = 500, min_bytes: int = 1,
                     partition_max_bytes: int = 4 * 1024 * 1024,
                     max_bytes: int = 16 * 1024 * 1024) -> bytes:
    body = struct.pack(">iiiib", -1, max_wait_ms, min_bytes, max_bytes, 0)
    body += struct.pack(">i", 1) + string(topic) + struct.pack(">i", len(offsets))
    for partition, offset in offsets.items():
        body += struct.pack(">iqi", partition, offset, partition_max_bytes)
    return frame(header_v1(API_FETCH, 4, correlation_id) + body)


def fetch_v4_batches(data: bytes) -> dict[int, list[dict]]:
    """Parse a Fetch v4 response into {partition: [batch header fields]}.
    Asserts no partition error. A trailing partial batch is ignored."""
    pos = 8  # correlation id, throttle_time_ms
    (ntopics,) = struct.unpack_from(">i", data, pos); pos += 4
    batches: dict[int, list[dict]] = defaultdict(list)
    for _ in range(ntopics):
        (name_len,) = struct.unpack_from(">h", data, pos); pos += 2 + name_len
        (nparts,) = struct.unpack_from(">i", data, pos); pos += 4
        for _ in range(nparts):
            partition, error, _hwm, _lso = struct.unpack_from(">ihqq", data, pos); pos += 22
            assert error == 0, f"Fetch v4, partition {partition}: error code {error}"
            (naborted,) = struct.unpack_from(">i", data, pos); pos += 4
            pos += max(naborted, 0) * 16
            (size,) = struct.unpack_from(">i", data, pos); pos += 4
            records = data[pos:pos + max(size, 0)]; pos += max(size, 0)
            at = 0
            while at + 61 <= len(records):
                base_offset, batch_len = struct.unpack_from(">qi", records, at)
                if at + 12 + batch_len > len(records):
                    break
                batches[partition].append({
                    "base_offset": base_offset,
                    "magic": records[at + 16],
                    "attributes": struct.unpack_from(">h", records, at + 21)[0],
                    "last_offset_delta": struct.unpack_from(">i", records, at + 23)[0],
                    "records": struct.unpack_from(">i", records, at + 57)[0],
                })
                at += 12 + batch_len
    return batches


# --- flexible versions (KIP-482: compact strings and arrays, tagged fields) ----------

TAGS = b"\x00"  # an empty tagged-field section


def compact_array(items: list[bytes] | None) -> bytes:
    """COMPACT_ARRAY of already-encoded items; None is the null array."""
    if items is None:
        return b"\x00"
    return uvarint(len(items) + 1) + b"".join(items)


def call(port: int, api_key: int, version: int, body: bytes, correlation_id: int = 1,
         timeout: float = 10.0) -> "Reader":
    """Send one flexible request (header v2) on its own connection; the response body
    as a Reader past its header (correlation id, checked, and tagged fields)."""
    with connect(port, timeout) as sock:
        sock.sendall(frame(header_v2(api_key, version, correlation_id) + body))
        r = Reader(read_frame(sock))
    assert r.i32() == correlation_id
    r.tags()
    return r


class Reader:
    """Reads a flexible response field by field, in schema order."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def _unpack(self, fmt: str):
        (v,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return v

    def i8(self) -> int:
        return self._unpack(">b")

    def i16(self) -> int:
        return self._unpack(">h")

    def i32(self) -> int:
        return self._unpack(">i")

    def i64(self) -> int:
        return self._unpack(">q")

    def uvarint(self) -> int:
        n = shift = 0
        while True:
            byte = self.data[self.pos]
            self.pos += 1
            n |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return n

    def string(self) -> str | None:
        n = self.uvarint() - 1
        if n < 0:
            return None
        s = self.data[self.pos:self.pos + n].decode()
        self.pos += n
        return s

    def bytes_(self) -> bytes | None:
        n = self.uvarint() - 1
        if n < 0:
            return None
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def uuid(self) -> str:
        b = self.data[self.pos:self.pos + 16]
        self.pos += 16
        return b.hex()

    def array(self, item) -> list | None:
        n = self.uvarint() - 1
        return None if n < 0 else [item(self) for _ in range(n)]

    def tags(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()
            self.pos += self.uvarint()

    def done(self) -> None:
        assert self.pos == len(self.data), f"{len(self.data) - self.pos} bytes left unread"
