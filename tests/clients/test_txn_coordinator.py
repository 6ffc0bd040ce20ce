"""The transaction coordinator's InitProducerId rules, on the wire (InitProducerId v3,
KIP-360): a producer bumping its own epoch, a retry whose answer was lost, a zombie's
stale epoch, and the expiry of idle transactional ids (transactional.id.expiration.ms).
librdkafka does not expose its producer id, so these speak the protocol directly."""

import struct
import time

import pytest

import wire

INIT_PRODUCER_ID = 22
# PRODUCER_FENCED (90) exists from InitProducerId v4 (KIP-588); v3 gets this instead.
INVALID_PRODUCER_EPOCH = 47


def init_producer_id(sock, correlation_id: int, transactional_id: str,
                     producer_id: int = -1, epoch: int = -1) -> tuple[int, int, int]:
    """InitProducerId v3 (flexible): (error code, producer id, epoch)."""
    body = (wire.compact_string(transactional_id)
            + struct.pack(">iqh", 60000, producer_id, epoch) + b"\x00")
    sock.sendall(wire.frame(wire.header_v2(INIT_PRODUCER_ID, 3, correlation_id) + body))
    data = wire.read_frame(sock)
    (got_cid,) = struct.unpack(">i", data[:4])
    assert got_cid == correlation_id
    assert data[4] == 0, "response header v1: no tagged fields"
    _throttle, error, pid, got_epoch = struct.unpack(">ihqh", data[5:21])
    return error, pid, got_epoch


@pytest.mark.timeout(60)
def test_epoch_bumps_retries_zombies_and_idle_ids_expiring(broker_factory):
    broker = broker_factory(extra_args=("--transactional-id-expiration-ms", "1500"))
    with wire.connect(broker.port) as s:
        error, pid, epoch = init_producer_id(s, 1, "coord-rules")
        assert (error, epoch) == (0, 0) and pid >= 0

        # KIP-360: the producer bumps its own epoch with its current id and epoch.
        assert init_producer_id(s, 2, "coord-rules", pid, 0) == (0, pid, 1)
        # The same request again, as after a lost answer: the current epoch, not fenced.
        assert init_producer_id(s, 3, "coord-rules", pid, 0) == (0, pid, 1)
        # Any other epoch is a zombie's.
        assert init_producer_id(s, 4, "coord-rules", pid, 7)[0] == INVALID_PRODUCER_EPOCH
        assert init_producer_id(s, 5, "coord-rules", pid + 1, 1)[0] == INVALID_PRODUCER_EPOCH
        # A new producer instance (no id) takes over with the next epoch.
        assert init_producer_id(s, 6, "coord-rules") == (0, pid, 2)

        # Left alone longer than the expiration (1.5 s; checked every 0.5 s), the id is
        # forgotten: the next producer starts over with a new producer id.
        time.sleep(4.0)
        error, new_pid, new_epoch = init_producer_id(s, 7, "coord-rules")
        assert (error, new_epoch) == (0, 0)
        assert new_pid != pid, "an expired transactional id gets a new producer id"
        assert "expired idle transactional ids" in broker.log_tail()
