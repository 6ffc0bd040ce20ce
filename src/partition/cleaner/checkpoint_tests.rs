//! The cleaner's checkpoint across restarts: a partition cleaned to the end and reopened
//! has nothing to clean; a corrupt checkpoint, or one past the log end, is dropped and
//! the log is cleaned from its start; a log start moved past the checkpoint by
//! DeleteRecords and retention is cleaned from the first segment left.

use std::collections::HashMap;
use std::path::Path;

use super::checkpoint::{self, CleanerCheckpoint};
use super::model_tests::served;
use super::*;
use crate::log::batch::{BatchBuilder, Record};
use crate::log::{CleanupPolicy, FlushPolicy, LogConfig};
use crate::partition::Partition;
use crate::runtime::test_run as run;

const NOW: i64 = 1_000_000;
const KEYS: usize = 20;
const CLEANER: CleanerConfig = CleanerConfig {
    map_bytes: 1 << 20,
    io_bytes_per_sec: 0,
};

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        segment_ms: None,
        retention_ms: None,
        flush: FlushPolicy::Never,
        index_interval_bytes: 256,
        cleanup: CleanupPolicy {
            delete: false,
            compact: true,
        },
        min_cleanable_dirty_ratio: 0.5,
        ..LogConfig::default()
    }
}

/// `n` records over `KEYS` keys, one batch each (values say their round).
async fn fill(part: &Partition, round: usize, n: usize) {
    for i in 0..n {
        let key = format!("key-{}", i % KEYS);
        let value = format!("round-{round}-{i}");
        let record = Record {
            key: Some(key.as_bytes()),
            value: Some(value.as_bytes()),
            ..Default::default()
        };
        let b = BatchBuilder::new(1_000).build(&[record]);
        part.log.append(&b).await.unwrap();
    }
}

/// Passes while one is due; the bytes they read.
async fn clean_while_due(part: &Partition) -> u64 {
    let mut read = 0;
    while part.cleaning_due(NOW).is_some() {
        read += part.clean(CLEANER, NOW).await.unwrap().unwrap().bytes_read;
    }
    read
}

async fn reopen(part: Partition, dir: &Path) -> Partition {
    part.close("changelog", 0).await;
    Partition::open(dir, config()).await.unwrap()
}

/// A partition with 400 records cleaned to the end, closed and reopened.
async fn cleaned_and_reopened(dir: &Path) -> Partition {
    let part = Partition::open(dir, config()).await.unwrap();
    fill(&part, 0, 400).await;
    assert!(clean_while_due(&part).await > 0, "the full log was cleaned");
    assert_eq!(part.cleanable(NOW).unwrap().dirty_bytes, 0);
    assert!(
        checkpoint::path(dir).exists(),
        "the pass saved its checkpoint"
    );
    reopen(part, dir).await
}

fn assert_all_dirty(part: &Partition, what: &str) {
    let c = part.cleanable(NOW).unwrap();
    assert!(c.total_bytes > 0, "{what}");
    assert_eq!(
        c.dirty_bytes, c.total_bytes,
        "{what}: the whole log is dirty"
    );
    assert!(part.cleaning_due(NOW).is_some(), "{what}: a pass is due");
}

#[test]
fn a_cleaned_partition_has_nothing_to_clean_after_a_restart() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("changelog-0");
        let part = cleaned_and_reopened(&dir).await;
        let c = part.cleanable(NOW).unwrap();
        assert!(c.total_bytes > 0);
        assert_eq!(c.dirty_bytes, 0, "nothing dirty after the restart");
        assert_eq!(c.dirty_ratio(), 0.0);
        assert!(part.cleaning_due(NOW).is_none(), "no pass is due");
        // What is written after the restart is dirty from where the pass stopped.
        let clean_end = c.end();
        fill(&part, 1, 400).await;
        let c = part.cleanable(NOW).unwrap();
        assert_eq!(c.dirty_from, clean_end);
        assert!(c.dirty_bytes > 0 && c.dirty_bytes < c.total_bytes);
        part.close("changelog", 0).await;
    });
}

#[test]
fn a_corrupt_checkpoint_is_dropped_and_the_log_cleaned_from_its_start() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("changelog-0");
        let part = cleaned_and_reopened(&dir).await;
        part.close("changelog", 0).await;
        let path = checkpoint::path(&dir);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        let part = Partition::open(&dir, config()).await.unwrap();
        assert_all_dirty(&part, "corrupt checkpoint");
        // The next pass writes a good one again.
        assert!(clean_while_due(&part).await > 0);
        let part = reopen(part, &dir).await;
        assert_eq!(part.cleanable(NOW).unwrap().dirty_bytes, 0);
        part.close("changelog", 0).await;
    });
}

#[test]
fn a_checkpoint_past_the_log_end_is_dropped() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("changelog-0");
        let part = cleaned_and_reopened(&dir).await;
        let future = CleanerCheckpoint {
            first_dirty: part.log.high_watermark() + 1_000,
            next_horizon: None,
        };
        part.close("changelog", 0).await;
        crate::store::save(&checkpoint::path(&dir), &future)
            .await
            .unwrap();
        let part = Partition::open(&dir, config()).await.unwrap();
        assert_all_dirty(&part, "checkpoint past the log end");
        part.close("changelog", 0).await;
    });
}

#[test]
fn a_log_start_moved_past_the_checkpoint_is_cleaned_from_the_first_segment_left() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("changelog-0");
        let part = cleaned_and_reopened(&dir).await;
        fill(&part, 1, 400).await;
        let start = part.log.high_watermark() - 200;
        part.delete_records(start).await.unwrap();
        part.log.enforce_retention(NOW).await.unwrap();
        let part = reopen(part, &dir).await;
        let c = part.cleanable(NOW).unwrap();
        assert_eq!(c.dirty_from, c.segments[0].base_offset);
        assert_all_dirty(&part, "log start past the checkpoint");
        clean_while_due(&part).await;
        // Each key's last record in the cleaned part is left, and nothing below the log
        // start is served.
        let end = part.cleanable(NOW).unwrap().end();
        let got = served(&part.log).await;
        let mut last: HashMap<Vec<u8>, i64> = HashMap::new();
        for (offset, key, _, _) in got.iter().filter(|g| g.0 < end) {
            assert!(*offset >= start, "offset {offset} is below the log start");
            assert!(
                last.insert(key.clone(), *offset).is_none(),
                "one record a key"
            );
        }
        assert_eq!(last.len(), KEYS);
        part.close("changelog", 0).await;
    });
}
