//! Restoring a partition's producer state: the last snapshot, then a replay of the
//! batch headers the log holds after it. A snapshot that claims more than the log
//! kept after a crash is discarded (its batches may be gone), and the whole log is
//! replayed instead, so a lost batch is never taken for a duplicate.

use tracing::warn;

use super::state::{last_seq, snapshot_path, ProducerBatch, ProducerSnapshot, ProducerTable};
use crate::log::batch as b;
use crate::log::{LogError, PartitionLog};
use crate::meta::store;

/// How much of the log one replay read takes.
const REPLAY_CHUNK: usize = 1 << 20;

pub async fn load(log: &PartitionLog) -> Result<ProducerTable, LogError> {
    let path = snapshot_path(log.dir());
    let snap = match store::load::<ProducerSnapshot>(&path) {
        Ok(s) => s,
        Err(e) => {
            warn!("{e}; rebuilding producer state from the log");
            None
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
    Ok(table)
}

/// Apply every idempotent batch in `[from, high watermark)` to `table`.
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
            let control = b::attributes(batch) & b::CONTROL_BIT != 0;
            if pid >= 0 && !control && last >= from {
                let first_seq = b::base_sequence(batch);
                let pb = ProducerBatch {
                    producer_id: pid,
                    epoch: b::producer_epoch(batch),
                    first_seq,
                    last_seq: last_seq(first_seq, b::last_offset_delta(batch)),
                };
                table.replay(&pb, base, last, b::max_timestamp(batch));
            }
            next = last + 1;
            pos += b::batch_length(batch) as usize + b::LOG_OVERHEAD;
        }
        if next <= offset {
            break; // no progress: nothing more to read
        }
        offset = next;
    }
    Ok(())
}

/// Save the table as of the log's high watermark.
pub async fn save(log: &PartitionLog, table: &mut ProducerTable) -> Result<(), store::StateError> {
    let snap = table.snapshot(log.high_watermark());
    store::save(&snapshot_path(log.dir()), &snap).await
}
