//! The partition side of transactions (KIP-98): transaction markers, the last stable
//! offset and the aborted transactions a read_committed fetch reports.
//!
//! Everything here runs on the partition's owner shard. The transaction coordinator
//! (on the shard that owns the transactional id) calls `write_marker` there, over the
//! mesh, once per partition of an ending transaction.
//!
//! Order: a marker and a data batch of the same producer change the producer state in
//! the order of their offsets, because both do it in the log's append hook, which runs
//! when the offsets are reserved (strictly in call order). The fence (epoch check) of
//! a marker runs when it is called, like the sequence check of a data batch.

use super::producer::state::AbortedTxn;
use super::Partition;
use crate::kafka::KafkaError;
pub use crate::log::batch::marker_batch;
use crate::runtime::now_ms;

/// Appends a transaction marker (control batch) for `producer_id` to the partition and
/// ends its ongoing transaction there. Returns the marker's offset once it is fdatasync'd,
/// whatever the topic's flush policy.
///
/// Refused with PRODUCER_FENCED when the partition knows the producer with a newer
/// epoch; otherwise the producer's epoch here is raised to `epoch`. An ABORT of an
/// ongoing transaction adds `(producer_id, first offset, marker offset)` to the
/// aborted index. A marker for a producer with no transaction here is still written,
/// as Kafka does.
pub async fn write_marker(
    part: &Partition,
    producer_id: i64,
    epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
) -> Result<i64, KafkaError> {
    let now = now_ms();
    part.producers
        .borrow_mut()
        .fence_for_marker(producer_id, epoch, now)?;
    let marker = marker_batch(producer_id, epoch, commit, coordinator_epoch, now);
    let end = |offset: i64, _| {
        part.producers
            .borrow_mut()
            .end_txn(producer_id, commit, offset)
    };
    let info = part.log.append_with(&marker, end).await?;
    debug_assert_eq!(
        info.base_offset, info.last_offset,
        "a marker takes one offset"
    );
    part.producers
        .borrow_mut()
        .prune(part.log.log_start_offset(), part.log.high_watermark());
    // Durable whatever the topic's flush policy: the coordinator records the transaction's
    // end (fsync'd) once every marker is written, and a marker lost to a power failure
    // after that would leave the partition's transaction open for good.
    part.log.sync_through(info.last_offset).await?;
    Ok(info.base_offset)
}

/// KIP-98: `min(first offset of every ongoing transaction, high watermark)`.
pub fn last_stable_offset(part: &Partition) -> i64 {
    let log = &part.log;
    part.producers
        .borrow()
        .last_stable_offset(log.high_watermark(), log.log_start_offset())
}

/// The aborted transactions overlapping fetched data `[from, to)`: `last_offset >=
/// from` and `first_offset < to` (Kafka's rule for read_committed fetches).
pub fn aborted_transactions(part: &Partition, from: i64, to: i64) -> Vec<AbortedTxn> {
    part.producers.borrow().aborted_in(from, to)
}

/// For a read_committed long-poll at `offset`: wait until the high watermark passes
/// the returned offset. The last stable offset only moves when the high watermark does
/// (a marker ends its transaction for the LSO once it is below the high watermark), so
/// waiting for the next append cannot miss an advance, and does not spin.
pub fn committed_wait_target(part: &Partition, offset: i64) -> i64 {
    if last_stable_offset(part) > offset {
        // The LSO passed `offset` since the read (so did the high watermark): at once.
        return offset;
    }
    offset.max(part.log.high_watermark())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::runtime::test_run as run;

    use super::*;
    use crate::kafka::ErrorCode;
    use crate::log::batch::{self, Record};
    use crate::log::{FlushPolicy, LogConfig};
    use crate::partition::producer::recovery;
    use crate::partition::producer::state::Check;

    fn config() -> LogConfig {
        LogConfig {
            segment_bytes: 1 << 20,
            segment_ms: None,
            retention_ms: None,
            flush: FlushPolicy::Never,
            ..LogConfig::default()
        }
    }

    async fn open(dir: &Path) -> Partition {
        Partition::open(dir, config()).await.unwrap()
    }

    /// A batch of `n` records from `pid` (transactional or not; pid -1: plain).
    fn data(pid: i64, seq: i32, n: usize, transactional: bool) -> Vec<u8> {
        let recs: Vec<Record<'_>> = (0..n)
            .map(|_| Record {
                value: Some(b"v"),
                ..Default::default()
            })
            .collect();
        let mut b = batch::BatchBuilder::new(1);
        b.producer_id = pid;
        b.producer_epoch = if pid < 0 { -1 } else { 0 };
        b.base_sequence = if pid < 0 { -1 } else { seq };
        if transactional {
            b.attributes |= batch::TRANSACTIONAL_BIT;
        }
        b.build(&recs)
    }

    /// What `produce::append_owned` does on the owner: check, append with the
    /// transaction hook, complete.
    async fn produce(part: &Partition, records: &[u8]) -> i64 {
        crate::partition::producer::state::tests::allow_if_transactional(
            &mut part.producers.borrow_mut(),
            records,
        );
        let check = part.producers.borrow_mut().check(records, 0).unwrap();
        let pb = match check {
            Check::Append(pb) => Some(pb),
            Check::Plain => None,
            Check::Duplicate { .. } => panic!("duplicate"),
        };
        let hook = |base, _| {
            if let Some(pb) = pb.filter(|pb| pb.transactional) {
                part.producers.borrow_mut().begin_txn(&pb, base, 0);
            }
        };
        let info = part.log.append_with(records, hook).await.unwrap();
        if let Some(pb) = pb {
            part.producers
                .borrow_mut()
                .complete(&pb, info.base_offset, info.last_offset);
        }
        info.base_offset
    }

    async fn read_committed(part: &Partition, from: i64) -> Vec<i64> {
        let slice = part
            .log
            .read_below(from, 1 << 20, last_stable_offset(part))
            .await
            .unwrap();
        let mut buf = Vec::new();
        slice.read_to_vec(&mut buf).await.unwrap();
        let mut bases = Vec::new();
        let mut rest = buf.as_slice();
        while !rest.is_empty() {
            bases.push(batch::base_offset(rest));
            rest = &rest[batch::batch_length(rest) as usize + batch::LOG_OVERHEAD..];
        }
        bases
    }

    #[test]
    fn a_marker_is_one_valid_control_batch_with_its_type_in_the_key() {
        for commit in [false, true] {
            let b = marker_batch(42, 3, commit, 17, 1_000);
            let infos = batch::validate_batches(&b, 1 << 20).unwrap();
            assert_eq!(infos.len(), 1);
            let info = &infos[0];
            assert_eq!(info.attributes, 0x30);
            assert!(info.is_control() && info.is_transactional());
            assert_eq!((info.producer_id, info.producer_epoch), (42, 3));
            assert_eq!(info.base_sequence, -1);
            assert_eq!(info.offset_count(), 1);
            assert_eq!(recovery::control_type(&b), Some(commit as i16));
            // The value: int16 version 0, int32 coordinator epoch.
            assert_eq!(&b[b.len() - 7..b.len() - 1], &[0, 0, 0, 0, 0, 17]);
        }
    }

    #[test]
    fn transactional_records_are_synced_before_acks_all_is_answered_whatever_the_flush_policy() {
        run(|| async {
            let tmp = tempfile::tempdir().unwrap();
            let part = open(&tmp.path().join("payments-0")).await; // flush=never
            let plain = bytes::Bytes::from(data(-1, -1, 2, false));
            part.append(&plain, -1).await.unwrap();
            assert_eq!(
                part.log.sync_count(),
                0,
                "plain records under flush=never: no sync"
            );
            let txn = bytes::Bytes::from(data(7, 0, 2, true));
            crate::partition::producer::state::tests::allow_if_transactional(
                &mut part.producers.borrow_mut(),
                &txn,
            );
            let (info, _) = part.append(&txn, -1).await.unwrap();
            // A power cut after this answer must not take the records: the client may
            // commit now, and the commit would outlive them (docs/RELIABILITY.md).
            assert!(
                part.log.sync_count() >= 1,
                "transactional records synced before the answer"
            );
            assert_eq!(info.last_offset, 3);
        });
    }

    #[test]
    fn an_aborted_transaction_is_hidden_from_read_committed_and_survives_a_crash() {
        run(|| async {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("payments-0");
            let part = open(&dir).await;
            // Producer 7 opens a transaction (0..=1), a plain producer writes 2.
            assert_eq!(produce(&part, &data(7, 0, 2, true)).await, 0);
            assert_eq!(produce(&part, &data(-1, -1, 1, false)).await, 2);
            assert_eq!(part.log.high_watermark(), 3);
            assert_eq!(last_stable_offset(&part), 0);
            assert!(read_committed(&part, 0).await.is_empty());
            assert_eq!(
                committed_wait_target(&part, 0),
                3,
                "wait for the next append"
            );
            // The coordinator aborts: the marker takes offset 3.
            assert_eq!(write_marker(&part, 7, 0, false, 5).await.unwrap(), 3);
            assert_eq!(last_stable_offset(&part), 4);
            assert_eq!(read_committed(&part, 0).await, vec![0, 2, 3]);
            let aborted = aborted_transactions(&part, 0, 4);
            assert_eq!(
                aborted
                    .iter()
                    .map(|a| (a.producer_id, a.first_offset, a.last_offset))
                    .collect::<Vec<_>>(),
                vec![(7, 0, 3)]
            );
            // The producer's old epoch is fenced by a newer marker.
            assert_eq!(write_marker(&part, 7, 1, false, 5).await.unwrap(), 4);
            assert_eq!(
                write_marker(&part, 7, 0, true, 5).await.unwrap_err().code,
                ErrorCode::ProducerFenced
            );
            // A second transaction (epoch 1) is open when the broker crashes.
            let mut b = data(7, 0, 1, true);
            b[batch::PRODUCER_EPOCH_AT..batch::PRODUCER_EPOCH_AT + 2]
                .copy_from_slice(&1i16.to_be_bytes());
            let crc = batch::compute_crc(&b);
            b[batch::CRC_AT..batch::CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
            assert_eq!(produce(&part, &b).await, 5);
            assert_eq!(last_stable_offset(&part), 5);
            assert_eq!(read_committed(&part, 0).await, vec![0, 2, 3, 4], "cut at 5");
            drop(part); // no close, no snapshot: a crash

            let part = open(&dir).await;
            assert_eq!(part.log.high_watermark(), 6);
            assert_eq!(last_stable_offset(&part), 5, "replay: still ongoing");
            assert_eq!(aborted_transactions(&part, 0, 6).len(), 1);
            // Commit it; the snapshot at close and the reopen keep the index.
            assert_eq!(write_marker(&part, 7, 1, true, 5).await.unwrap(), 6);
            assert_eq!(last_stable_offset(&part), 7);
            assert_eq!(read_committed(&part, 4).await, vec![4, 5, 6]);
            part.log.close().await.unwrap();
            let mut table = std::mem::take(&mut *part.producers.borrow_mut());
            recovery::save(&part.log, &mut table).await.unwrap();
            drop(part);
            let part = open(&dir).await;
            assert_eq!(last_stable_offset(&part), 7);
            assert_eq!(aborted_transactions(&part, 0, 7), aborted);
        });
    }

    #[test]
    fn a_snapshot_taken_between_data_and_marker_replays_the_marker() {
        run(|| async {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("ledger-0");
            let part = open(&dir).await;
            produce(&part, &data(9, 0, 3, true)).await;
            produce(&part, &data(9, 3, 1, true)).await;
            // What the background save does, between the data and the marker.
            let snap = part
                .producers
                .borrow_mut()
                .snapshot(part.log.high_watermark());
            assert_eq!(snap.entries[0].txn_first_offset, Some(0));
            crate::store::save(
                &crate::partition::producer::state::snapshot_path(&dir),
                &snap,
            )
            .await
            .unwrap();
            assert_eq!(write_marker(&part, 9, 0, false, 0).await.unwrap(), 4);
            drop(part); // crash after the marker

            let part = open(&dir).await;
            assert_eq!(last_stable_offset(&part), 5);
            let a = aborted_transactions(&part, 0, 5);
            assert_eq!(
                a.iter()
                    .map(|a| (a.producer_id, a.first_offset, a.last_offset))
                    .collect::<Vec<_>>(),
                vec![(9, 0, 4)]
            );
            // DeleteRecords past the marker, then the background prune forgets it.
            part.log.delete_records(5).await.unwrap();
            let pruned = part
                .producers
                .borrow_mut()
                .prune(part.log.log_start_offset(), part.log.high_watermark());
            assert_eq!(pruned, 1);
            assert!(aborted_transactions(&part, 0, 5).is_empty());
        });
    }
}
