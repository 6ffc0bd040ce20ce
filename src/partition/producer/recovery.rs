//! Restoring a partition's producer state: the last snapshot, then a replay of the
//! batch headers the log holds after it. A snapshot that claims more than the log
//! kept after a crash is discarded (its batches may be gone), and the whole log is
//! replayed instead, so a lost batch is never taken for a duplicate.

use tracing::warn;

use super::state::{last_seq, snapshot_path, ProducerBatch, ProducerSnapshot, ProducerTable};
use crate::log::batch as b;
use crate::log::{LogError, PartitionLog};
use crate::store::atomic as store;

/// How much of the log one replay read takes.
const REPLAY_CHUNK: usize = 1 << 20;

/// The producer table of `log` (its snapshot, then the log after it), and the
/// fingerprint of the snapshot file found (`store::atomic::load_fingerprinted`).
pub async fn load(log: &PartitionLog) -> Result<(ProducerTable, Option<u32>), LogError> {
    let path = snapshot_path(log.dir());
    let (snap, on_disk) = match store::load_fingerprinted::<ProducerSnapshot>(&path) {
        Ok(Some((s, fingerprint))) => (Some(s), Some(fingerprint)),
        Ok(None) => (None, None),
        Err(e) => {
            warn!("{e}; rebuilding producer state from the log");
            (None, None)
        }
    };
    let (mut table, from) = match snap {
        Some(s) if s.offset <= log.high_watermark() && s.offset >= log.log_start_offset() => {
            let from = s.offset;
            (ProducerTable::from_snapshot(s), from)
        }
        Some(s) => {
            warn!(
                dir = %log.dir().display(),
                snapshot = s.offset,
                high_watermark = log.high_watermark(),
                "producer state snapshot does not match the log; rebuilding from the log"
            );
            (ProducerTable::default(), log.log_start_offset())
        }
        None => (ProducerTable::default(), log.log_start_offset()),
    };
    replay(log, &mut table, from).await?;
    Ok((table, on_disk))
}

/// Apply every idempotent batch and transaction marker in `[from, high watermark)`
/// to `table`.
async fn replay(log: &PartitionLog, table: &mut ProducerTable, from: i64) -> Result<(), LogError> {
    let mut offset = from;
    let mut buf = Vec::new();
    while offset < log.high_watermark() {
        let slice = log.read(offset, REPLAY_CHUNK).await?;
        if slice.is_empty() {
            break;
        }
        buf.clear();
        slice.read_to_vec(&mut buf).await?;
        let mut pos = 0;
        let mut next = offset;
        while pos + b::HEADER_LEN <= buf.len() {
            let batch = &buf[pos..];
            let base = b::base_offset(batch);
            let last = base + b::last_offset_delta(batch) as i64;
            let pid = b::producer_id(batch);
            let attributes = b::attributes(batch);
            let control = attributes & b::CONTROL_BIT != 0;
            let len = b::batch_length(batch) as usize + b::LOG_OVERHEAD;
            if pid >= 0 && control && base >= from {
                replay_marker(table, batch.get(..len).unwrap_or(batch), base);
            } else if pid >= 0 && last >= from {
                let first_seq = b::base_sequence(batch);
                let pb = ProducerBatch {
                    producer_id: pid,
                    epoch: b::producer_epoch(batch),
                    first_seq,
                    last_seq: last_seq(first_seq, b::last_offset_delta(batch)),
                    transactional: attributes & b::TRANSACTIONAL_BIT != 0,
                };
                table.replay(&pb, base, last, b::max_timestamp(batch));
            }
            next = last + 1;
            pos += len;
        }
        if next <= offset {
            break; // no progress: nothing more to read
        }
        offset = next;
    }
    Ok(())
}

/// A control batch read back: a transaction marker ends its producer's transaction.
/// The log validated the batch (CRC included) when it was written and again when it
/// recovered the segment; one that still does not parse is skipped, loudly.
fn replay_marker(table: &mut ProducerTable, batch: &[u8], offset: i64) {
    match control_type(batch) {
        Some(kind @ (CONTROL_ABORT | CONTROL_COMMIT)) => table.replay_marker(
            b::producer_id(batch),
            b::producer_epoch(batch),
            kind == CONTROL_COMMIT,
            offset,
            b::max_timestamp(batch),
        ),
        Some(kind) => warn!(offset, kind, "control batch of an unknown type; skipped"),
        None => warn!(offset, "control batch whose key cannot be read; skipped"),
    }
}

/// ABORT and COMMIT, the types of a transaction marker's key (KIP-98).
pub const CONTROL_ABORT: i16 = 0;
pub const CONTROL_COMMIT: i16 = 1;

/// The type in a control batch's one record key (`int16 version, int16 type`).
/// `None` when the batch is compressed or its first record is cut short.
pub fn control_type(batch: &[u8]) -> Option<i16> {
    if b::attributes(batch) & b::COMPRESSION_MASK != 0 {
        return None;
    }
    // Record: length varint, attributes i8, timestampDelta varlong, offsetDelta
    // varint, keyLength varint, key.
    let rec = batch.get(b::HEADER_LEN..)?;
    let (_, n) = b::read_varint(rec)?;
    let rec = rec.get(n + 1..)?;
    let (_, n) = b::read_varlong(rec)?;
    let rec = rec.get(n..)?;
    let (_, n) = b::read_varint(rec)?;
    let rec = rec.get(n..)?;
    let (key_len, n) = b::read_varint(rec)?;
    if key_len < 4 {
        return None;
    }
    let key = rec.get(n..n + 4)?;
    Some(i16::from_be_bytes([key[2], key[3]]))
}

/// The table's snapshot as of the log's high watermark (pruned to the log first).
fn snapshot(log: &PartitionLog, table: &mut ProducerTable) -> ProducerSnapshot {
    table.prune(log.log_start_offset(), log.high_watermark());
    table.snapshot(log.high_watermark())
}

/// `save` for a stop of many partitions: the snapshot staged, for the caller to sync and
/// install (`store::atomic::Staged`); `None` when it is the file already there (its
/// fingerprint is `on_disk`).
pub async fn stage(
    log: &PartitionLog,
    table: &mut ProducerTable,
    on_disk: Option<u32>,
) -> Result<Option<store::Staged>, store::StateError> {
    store::stage(&snapshot_path(log.dir()), &snapshot(log, table), on_disk).await
}

/// Save the table as of the log's high watermark.
pub async fn save(log: &PartitionLog, table: &mut ProducerTable) -> Result<(), store::StateError> {
    store::save(&snapshot_path(log.dir()), &snapshot(log, table)).await
}
