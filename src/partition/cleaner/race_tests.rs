//! read_committed reads racing a cleaning pass: every read's aborted entries agree with
//! the segments it read. A pass that drops an ABORT marker forgets its entry; a read
//! given the entry without the marker makes librdkafka skip every later batch of that
//! producer (CI once lost a committed transaction to it), and a read given the aborted
//! records without the entry delivers them.

use std::cell::Cell;
use std::os::unix::fs::FileExt;
use std::rc::Rc;

use super::model_tests::{config, produce};
use super::CleanerConfig;
use crate::log::batch::{self, BatchBuilder, Record};
use crate::partition::read::{CopyAllowance, Read, Records};
use crate::partition::test_support::{manager, transactional_batch};
use crate::partition::{txn, Partition, PartitionManager};
use crate::runtime::test_run as run;

const PID: i64 = 100;

/// Plain keyed records until the log has rolled, so what came before is sealed.
async fn roll(part: &Partition, key: &str) {
    let sealed = part.log.sealed_segments().len();
    while part.log.sealed_segments().len() == sealed {
        let value = [1u8; 200];
        let rec = Record {
            key: Some(key.as_bytes()),
            value: Some(&value),
            ..Default::default()
        };
        produce(part, &BatchBuilder::new(1_000).build(&[rec])).await;
    }
}

/// The bytes of a read's records.
fn bytes_of(records: &Records) -> Vec<u8> {
    match records {
        Records::Empty => Vec::new(),
        Records::Mem(b) => b.to_vec(),
        Records::Files { ranges, .. } => {
            let mut out = Vec::new();
            for r in ranges {
                let file = std::fs::File::from(r.fd.try_clone().unwrap());
                let mut buf = vec![0; r.len];
                file.read_exact_at(&mut buf, r.position).unwrap();
                out.extend(buf);
            }
            out
        }
    }
}

/// One read_committed read from 0; panics when its entries and batches disagree.
/// Returns whether it saw the ABORT marker.
async fn read_and_check(pm: &PartitionManager, aborted_data: i64, marker: i64) -> bool {
    let read = Read {
        topic: "t".into(),
        partition: 0,
        offset: 0,
        max_bytes: 1 << 20,
        committed: true,
    };
    let allowance = CopyAllowance {
        bytes: usize::MAX,
        may_exceed: true,
    };
    let mut got = pm.read(&[read], 1 << 20, true, allowance).await.reads;
    let out = got.pop().unwrap().unwrap();
    let data = bytes_of(&out.records);
    let entry = out
        .aborted
        .unwrap_or_default()
        .contains(&(PID, aborted_data));
    let (mut saw_marker, mut saw_data) = (false, false);
    let mut pos = 0;
    while pos + batch::HEADER_LEN <= data.len() {
        let info = batch::header_info(&data[pos..], pos);
        let base = batch::base_offset(&data[pos..]);
        saw_marker |= info.is_control() && base == marker;
        saw_data |= !info.is_control() && base == aborted_data && info.records_count > 0;
        pos += info.len;
    }
    assert!(
        !entry || saw_marker,
        "the aborted entry came without its ABORT marker"
    );
    assert!(
        entry || !saw_data,
        "aborted records came without their entry"
    );
    saw_marker
}

#[test]
fn read_committed_reads_during_cleaning_get_entries_that_agree_with_their_segments() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let pm = manager(tmp.path(), 1).await;
        let part = pm.get("t", 0).unwrap();
        part.log.set_config(config());
        let aborted_data = produce(&part, &transactional_batch(PID, 0, &["a", "b"])).await;
        let marker = txn::write_marker(&part, PID, 0, false, 0).await.unwrap();
        roll(&part, "x").await;
        // The producer's next transaction, committed: what a stale entry would hide.
        produce(&part, &transactional_batch(PID, 2, &["c"])).await;
        txn::write_marker(&part, PID, 0, true, 0).await.unwrap();
        roll(&part, "y").await;
        let cfg = CleanerConfig {
            map_bytes: 1 << 20,
            io_bytes_per_sec: 0,
        };
        let (done, reads, with_marker) = (Rc::new(Cell::new(false)), Cell::new(0), Cell::new(0));
        let reader = async {
            while !done.get() {
                reads.set(reads.get() + 1);
                let saw = read_and_check(&pm, aborted_data, marker).await;
                with_marker.set(with_marker.get() + saw as usize);
                glommio::yield_if_needed().await;
                futures_lite::future::yield_now().await;
            }
        };
        let cleaning = async {
            // The first pass drops the aborted records and keeps the marker until its
            // horizon (100 ms on); the second, past it, drops the marker.
            for now in [10_000, 10_500] {
                for _ in 0..100 {
                    if part.cleanable(now).is_none_or(|c| c.dirty_bytes == 0) {
                        break;
                    }
                    part.clean(cfg, now).await.unwrap();
                }
                part.clean(cfg, now).await.unwrap();
            }
            done.set(true);
        };
        futures_lite::future::zip(reader, cleaning).await;
        assert!(
            !read_and_check(&pm, aborted_data, marker).await,
            "the marker is gone"
        );
        assert!(
            reads.get() > 2 && with_marker.get() > 0,
            "reads ran during the passes"
        );
        assert!(part.producers.borrow().aborted_in(0, i64::MAX).is_empty());
    });
}
