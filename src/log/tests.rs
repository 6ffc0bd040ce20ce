//! Stories of the partition log, on real files in a temp dir, inside glommio executors.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::batch::{self, BatchBuilder};
use super::*;

pub(crate) use crate::runtime::test_run as run;

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 8192,
        segment_ms: None,
        retention_ms: None,
        flush: FlushPolicy::Never,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

/// A batch of `n` records of `size` bytes, record timestamps `ts`.
fn batch_of(n: usize, size: usize, ts: i64) -> Vec<u8> {
    let v = vec![b'x'; size];
    let vals: Vec<&[u8]> = (0..n).map(|_| v.as_slice()).collect();
    batch::build_batch(ts, &vals)
}

/// The batch as the log stores it: base offset assigned, leader epoch 0.
fn stored(mut b: Vec<u8>, base: i64) -> Vec<u8> {
    batch::set_base_offset(&mut b, base);
    batch::set_partition_leader_epoch(&mut b, 0);
    b
}

async fn read_all(log: &PartitionLog, offset: i64, max: usize) -> Vec<u8> {
    let slice = log.read(offset, max).await.expect("read");
    let mut out = Vec::new();
    slice.read_to_vec(&mut out).await.expect("read_to_vec");
    out
}

/// Splits stored bytes into batches: (base offset, last offset, bytes).
fn split(mut b: &[u8]) -> Vec<(i64, i64, Vec<u8>)> {
    let mut out = vec![];
    while !b.is_empty() {
        let len = batch::batch_length(b) as usize + 12;
        let base = batch::base_offset(b);
        out.push((
            base,
            base + batch::last_offset_delta(b) as i64,
            b[..len].to_vec(),
        ));
        b = &b[len..];
    }
    out
}

fn files_with(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

#[test]
fn appended_batches_read_back_exactly_across_segment_rolls_and_a_reopen() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("orders-0");
        let log = PartitionLog::open(&dir, small_config()).await.unwrap();
        let mut expected = vec![];
        let mut next = 0i64;
        for i in 0..60usize {
            let b = batch_of(1 + i % 4, 10 + (i * 37) % 300, 1000 + i as i64);
            let info = log.append(&b).await.unwrap();
            assert_eq!(info.base_offset, next);
            assert_eq!(info.last_offset, next + (1 + i % 4) as i64 - 1);
            assert_eq!(info.log_append_time_ms, -1);
            expected.push((next, info.last_offset, stored(b, next)));
            next = info.last_offset + 1;
        }
        assert_eq!(log.high_watermark(), next);
        assert!(
            log.segment_count() > 3,
            "8 KiB segments roll: {}",
            log.segment_count()
        );
        let check = |log: Rc<PartitionLog>, expected: Vec<(i64, i64, Vec<u8>)>| async move {
            for (base, last, _) in &expected {
                for off in [*base, *last] {
                    let got = split(&read_all(&log, off, 1 << 20).await);
                    let first = expected
                        .iter()
                        .position(|e| e.0 <= off && off <= e.1)
                        .unwrap();
                    assert_eq!(got[0].2, expected[first].2, "batch containing {off}");
                    for (g, e) in got.iter().zip(&expected[first..]) {
                        assert_eq!(g.2, e.2);
                    }
                }
            }
        };
        check(log.clone(), expected.clone()).await;
        log.close().await.unwrap();
        // Clean close trims every preallocated tail.
        let sizes: u64 = files_with(&dir, "log")
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum();
        assert_eq!(sizes, log.size_bytes());
        drop(log);
        let log = PartitionLog::open(&dir, small_config()).await.unwrap();
        assert_eq!(log.high_watermark(), next);
        check(log.clone(), expected.clone()).await;
        let info = log.append(&batch_of(2, 5, 1)).await.unwrap();
        assert_eq!(info.base_offset, next);
    });
}

#[test]
fn reads_respect_max_bytes_with_whole_batches_and_kip74() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(tmp.path(), small_config())
            .await
            .unwrap();
        let b = batch_of(3, 100, 1);
        for _ in 0..10 {
            log.append(&b).await.unwrap();
        }
        let one = b.len();
        assert_eq!(log.read(0, one * 2 + 10).await.unwrap().len(), one * 2);
        // The first batch alone is bigger than max_bytes: exactly that batch.
        assert_eq!(log.read(4, 10).await.unwrap().len(), one);
        assert_eq!(log.read(0, 0).await.unwrap().len(), one);
        assert!(
            log.read(30, 100).await.unwrap().is_empty(),
            "offset == hwm is an empty slice"
        );
        assert!(matches!(
            log.read(31, 100).await.unwrap_err(),
            LogError::OffsetOutOfRange { .. }
        ));
        assert!(matches!(
            log.read(-1, 100).await.unwrap_err(),
            LogError::OffsetOutOfRange { .. }
        ));
    });
}

#[test]
fn invalid_appends_are_refused_and_nothing_is_written() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(
            tmp.path(),
            LogConfig {
                max_message_bytes: 2000,
                ..small_config()
            },
        )
        .await
        .unwrap();
        log.append(&batch_of(1, 10, 1)).await.unwrap();
        let good = batch_of(2, 10, 1);
        let mut flipped = good.clone();
        flipped[40] ^= 0x10;
        let mut blob = good.clone();
        blob.extend_from_slice(&flipped); // one bad batch refuses the whole blob
        assert!(matches!(
            log.append(&blob).await.unwrap_err(),
            LogError::CorruptMessage(_)
        ));
        assert!(matches!(
            log.append(&good[..good.len() - 3]).await.unwrap_err(),
            LogError::CorruptMessage(_)
        ));
        assert!(matches!(
            log.append(&batch_of(1, 3000, 1)).await.unwrap_err(),
            LogError::MessageTooLarge { .. }
        ));
        let lying = BatchBuilder::new(1).build_raw(b"", 0, 0, 1);
        assert!(matches!(
            log.append(&lying).await.unwrap_err(),
            LogError::InvalidRecord(_)
        ));
        assert_eq!(log.high_watermark(), 1);
        assert_eq!(log.size_bytes(), batch_of(1, 10, 1).len() as u64);
    });
}

#[test]
fn compressed_and_control_batches_take_their_offsets() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(tmp.path(), small_config())
            .await
            .unwrap();
        let zipped = BatchBuilder {
            attributes: 2,
            ..BatchBuilder::new(5)
        }
        .build_raw(b"snappy-block", 7, 6, 9);
        let info = log.append(&zipped).await.unwrap();
        assert_eq!((info.base_offset, info.last_offset), (0, 6));
        let marker = BatchBuilder {
            producer_id: 3,
            producer_epoch: 0,
            ..BatchBuilder::new(5)
        }
        .build_control(true, 0);
        let info = log.append(&marker).await.unwrap();
        assert_eq!((info.base_offset, info.last_offset), (7, 7));
        assert_eq!(split(&read_all(&log, 3, 1 << 20).await).len(), 2);
    });
}

#[test]
fn log_append_time_rewrites_max_timestamp_with_a_valid_crc() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let config = LogConfig {
            timestamp_type: TimestampType::LogAppendTime,
            ..small_config()
        };
        let log = PartitionLog::open(tmp.path(), config).await.unwrap();
        let before = crate::runtime::now_ms();
        let info = log.append(&batch_of(2, 10, 5)).await.unwrap();
        assert!(info.log_append_time_ms >= before);
        let bytes = read_all(&log, 0, 1 << 20).await;
        let v = batch::validate_batches(&bytes, 1 << 20).unwrap();
        assert_eq!(v[0].max_timestamp, info.log_append_time_ms);
        assert_ne!(v[0].attributes & batch::TIMESTAMP_TYPE_BIT, 0);
        assert_eq!(v[0].base_timestamp, 5, "baseTimestamp is kept");
        assert_eq!(
            log.offset_for_timestamp(before).await.unwrap(),
            Some((0, info.log_append_time_ms))
        );
    });
}

#[test]
fn offset_for_timestamp_finds_the_first_batch_at_or_after() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(tmp.path(), small_config())
            .await
            .unwrap();
        // Timestamps mostly rising with some going back, as producers' clocks do.
        let ts: Vec<i64> = (0..80)
            .map(|i| 1000 + i * 10 - if i % 7 == 0 { 35 } else { 0 })
            .collect();
        let mut batches = vec![];
        for &t in &ts {
            let info = log.append(&batch_of(2, 40, t)).await.unwrap();
            batches.push((info.base_offset, t));
        }
        for target in (900..1900).step_by(7) {
            let want = batches.iter().find(|(_, t)| *t >= target).copied();
            assert_eq!(
                log.offset_for_timestamp(target).await.unwrap(),
                want,
                "ts {target}"
            );
        }
    });
}

#[test]
fn deleting_the_indexes_rebuilds_them_with_the_same_answers() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let log = PartitionLog::open(&dir, small_config()).await.unwrap();
        for i in 0..100i64 {
            log.append(&batch_of(
                1 + (i % 3) as usize,
                20 + (i as usize * 13) % 200,
                100 + i * 3,
            ))
            .await
            .unwrap();
        }
        let answers = |log: Rc<PartitionLog>| async move {
            let mut a = vec![];
            for off in 0..log.high_watermark() {
                let s = log.read(off, 700).await.unwrap();
                a.push((
                    s.ranges[0].position,
                    s.len(),
                    log.offset_for_timestamp(100 + off * 2).await.unwrap(),
                ));
            }
            a
        };
        let before = answers(log.clone()).await;
        log.close().await.unwrap();
        drop(log);
        for p in files_with(&dir, "index")
            .into_iter()
            .chain(files_with(&dir, "timeindex"))
        {
            std::fs::remove_file(p).unwrap();
        }
        let log = PartitionLog::open(&dir, small_config()).await.unwrap();
        assert_eq!(answers(log.clone()).await, before);
        assert!(
            !files_with(&dir, "index").is_empty(),
            "indexes are written back"
        );
        log.close().await.unwrap();
        drop(log);
        // Garbage in the index files: detected as stale and rebuilt.
        for p in files_with(&dir, "index") {
            std::fs::write(p, [0xffu8; 24]).unwrap();
        }
        let log = PartitionLog::open(&dir, small_config()).await.unwrap();
        assert_eq!(answers(log.clone()).await, before);
    });
}

/// Appends `n` batches with flush=never and drops the log without closing it (a crash: the
/// checkpoint stays where open wrote it). Returns the stored batches.
async fn crash_after(dir: &Path, n: usize) -> Vec<(i64, i64, Vec<u8>)> {
    let log = PartitionLog::open(
        dir,
        LogConfig {
            segment_bytes: 1 << 20,
            ..small_config()
        },
    )
    .await
    .unwrap();
    let mut out = vec![];
    for i in 0..n {
        let b = batch_of(1 + i % 2, 30, i as i64);
        let info = log.append(&b).await.unwrap();
        out.push((
            info.base_offset,
            info.last_offset,
            stored(b, info.base_offset),
        ));
    }
    out
}

#[test]
fn torn_last_batch_is_cut_at_every_truncation_point() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let probe = crash_after(&tmp.path().join("probe"), 5).await;
        let last_len = probe[4].2.len();
        let start: usize = probe[..4].iter().map(|b| b.2.len()).sum();
        for cut in 0..last_len {
            let dir = tmp.path().join(format!("cut-{cut}"));
            let batches = crash_after(&dir, 5).await;
            let seg = &files_with(&dir, "log")[0];
            let f = std::fs::OpenOptions::new().write(true).open(seg).unwrap();
            f.set_len((start + cut) as u64).unwrap();
            drop(f);
            let log = PartitionLog::open(&dir, small_config()).await.unwrap();
            assert_eq!(log.high_watermark(), batches[4].0, "cut at {cut}");
            let all = read_all(&log, 0, 1 << 20).await;
            assert_eq!(all.len(), start);
            // The log goes on from the cut.
            assert_eq!(
                log.append(&batch_of(1, 3, 0)).await.unwrap().base_offset,
                batches[4].0
            );
        }
    });
}

#[test]
fn data_after_zeros_is_cut_with_a_reason_and_preallocated_zeros_are_not() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let batches = crash_after(tmp.path(), 5).await;
        let seg = files_with(tmp.path(), "log")[0].clone();
        let size = std::fs::metadata(&seg).unwrap().len();
        let (clean, _) = super::segment::Segment::open(tmp.path(), 0, 0)
            .await
            .unwrap();
        let end = clean.scan(0, 0, size, true, 256, false).await.unwrap();
        assert_eq!(
            end.cut_reason, None,
            "preallocated zeros after the data are no cut"
        );
        drop(clean);
        // A power cut lost batch 3's write but kept batch 4's: they reached the disk out of
        // order. Recovery used to stop at the zeros without a word.
        let start: usize = batches[..3].iter().map(|b| b.2.len()).sum();
        let mut bytes = std::fs::read(&seg).unwrap();
        bytes[start..start + batches[3].2.len()].fill(0);
        std::fs::write(&seg, &bytes).unwrap();
        let (cut, _) = super::segment::Segment::open(tmp.path(), 0, 0)
            .await
            .unwrap();
        let end = cut.scan(0, 0, size, true, 256, false).await.unwrap();
        assert_eq!(end.position, start as u64);
        let reason = end.cut_reason.unwrap_or_default();
        assert!(reason.contains("data again"), "cut reason: {reason:?}");
        drop(cut);
        let log = PartitionLog::open(tmp.path(), small_config())
            .await
            .unwrap();
        assert_eq!(log.high_watermark(), batches[3].0);
        assert_eq!(read_all(&log, 0, 1 << 20).await.len(), start);
    });
}

#[test]
fn an_index_entry_that_looks_sane_but_is_wrong_does_not_misdirect_reads() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let config = || LogConfig {
            segment_bytes: 1 << 20,
            ..small_config()
        };
        let log = PartitionLog::open(tmp.path(), config()).await.unwrap();
        let mut all = vec![];
        for i in 0..20 {
            let b = batch_of(1 + i % 2, 60, i as i64);
            let info = log.append(&b).await.unwrap();
            all.extend(stored(b, info.base_offset));
        }
        log.close().await.unwrap();
        // A power cut tore the index's first entry: its relative offset reads 0 (as the
        // zeros under a write that did not land), its position is the true one. The
        // entry stays sane (increasing, inside the data), so recovery keeps it; a read
        // from offset 0 used to start at that position and skip what came before.
        let index = files_with(tmp.path(), "index")[0].clone();
        let mut bytes = std::fs::read(&index).unwrap();
        assert!(bytes.len() >= 16, "the test needs two index entries");
        bytes[..4].fill(0);
        std::fs::write(&index, &bytes).unwrap();
        let log = PartitionLog::open(tmp.path(), config()).await.unwrap();
        assert_eq!(read_all(&log, 0, 1 << 20).await, all);
        // The entry is dropped: reads at every offset find their batch.
        for (base, _, b) in split(&all) {
            assert_eq!(split(&read_all(&log, base, 1 << 20).await)[0].2, b);
        }
    });
}

#[test]
fn recovery_keeps_everything_after_a_crash_with_intact_files() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let batches = crash_after(tmp.path(), 20).await;
        let log = PartitionLog::open(tmp.path(), small_config())
            .await
            .unwrap();
        assert_eq!(log.high_watermark(), batches[19].1 + 1);
        let all: Vec<u8> = batches.iter().flat_map(|b| b.2.clone()).collect();
        assert_eq!(read_all(&log, 0, 1 << 20).await, all);
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn a_flipped_byte_in_the_unsynced_tail_is_cut_on_recovery(which in 0usize..6, at_seed in any::<usize>(), flip in 1u8..=255) {
        run(move || async move {
            let tmp = tempfile::tempdir().unwrap();
            let batches = crash_after(tmp.path(), 6).await;
            let start: usize = batches[..which].iter().map(|b| b.2.len()).sum();
            let len = batches[which].2.len();
            // Any byte of the batch (the base offset too: it must continue the log).
            let at = start + at_seed % len;
            let seg = files_with(tmp.path(), "log")[0].clone();
            let mut bytes = std::fs::read(&seg).unwrap();
            bytes[at] ^= flip;
            std::fs::write(&seg, &bytes).unwrap();
            let log = PartitionLog::open(tmp.path(), small_config()).await.unwrap();
            // Leader epoch bytes are not covered by anything; every other byte is.
            let epoch = (start + 12..start + 16).contains(&at);
            let expect = if epoch { batches[5].1 + 1 } else { batches[which].0 };
            assert_eq!(log.high_watermark(), expect, "flip at byte {} of batch {which}", at - start);
            let got = read_all(&log, 0, 1 << 20).await;
            if !epoch {
                batch::validate_batches(if got.is_empty() { &[] } else { &got }, 1 << 20).map(|_| ()).or_else(|e| if got.is_empty() { Ok(()) } else { Err(e) }).unwrap();
            }
        });
    }

    #[test]
    fn reads_at_any_offset_return_whole_batches_within_budget(
        sizes in proptest::collection::vec((1usize..4, 0usize..400), 1..40),
        probes in proptest::collection::vec((any::<usize>(), 0usize..3000), 1..20),
    ) {
        run(move || async move {
            let tmp = tempfile::tempdir().unwrap();
            let log = PartitionLog::open(tmp.path(), LogConfig { segment_bytes: 4096, ..small_config() }).await.unwrap();
            let mut expected = vec![];
            for (n, size) in &sizes {
                let b = batch_of(*n, *size, 1);
                let info = log.append(&b).await.unwrap();
                expected.push((info.base_offset, info.last_offset, stored(b, info.base_offset)));
            }
            let hwm = log.high_watermark();
            for (seed, max) in &probes {
                let off = (*seed % hwm as usize) as i64;
                let got = split(&read_all(&log, off, *max).await);
                let first = expected.iter().position(|e| e.0 <= off && off <= e.1).unwrap();
                assert!(!got.is_empty());
                let total: usize = got.iter().map(|g| g.2.len()).sum();
                assert!(total <= *max || got.len() == 1, "{total} > {max} with {} batches", got.len());
                for (g, e) in got.iter().zip(&expected[first..]) {
                    assert_eq!(&g.2, &e.2);
                }
            }
        });
    }
}

/// A log in `dir` of 100 one-record batches of 200 bytes whose max timestamps are
/// 1000..=1099, in `small_config`'s 8 KiB segments (30 batches each).
async fn hundred_batches(dir: &Path) -> Rc<PartitionLog> {
    let log = PartitionLog::open(dir, small_config()).await.unwrap();
    for i in 0..100i64 {
        log.append(&batch_of(1, 200, 1000 + i)).await.unwrap();
    }
    log
}

#[test]
fn retention_by_time_and_bytes_deletes_whole_old_segments_but_never_the_active_one() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let log = hundred_batches(tmp.path()).await;
        let segs = log.segment_count();
        assert!(segs >= 3);
        // Held by a fetch while retention deletes its segment: still readable.
        let held = log.read(0, 300).await.unwrap();
        let mut c = log.config();
        c.retention_ms = Some(50);
        log.set_config(c.clone());
        // 8 KiB segments hold 30 of these batches: at now=1080 the first one (max timestamp
        // 1029) is older than 50 ms, the second (1059) is not.
        let report = log.enforce_retention(1080).await.unwrap();
        assert_eq!(report.segments_deleted, 1);
        assert_eq!(report.log_start_offset, log.log_start_offset());
        assert_eq!(log.log_start_offset(), 30);
        assert_eq!(log.segment_count(), segs - 1);
        assert!(matches!(
            log.read(29, 100).await.unwrap_err(),
            LogError::OffsetOutOfRange { .. }
        ));
        let mut out = vec![];
        held.read_to_vec(&mut out).await.unwrap();
        assert_eq!(batch::base_offset(&out), 0);
        // Everything is expired, but the active segment stays.
        let report = log.enforce_retention(1_000_000).await.unwrap();
        assert_eq!(log.segment_count(), 1);
        assert!(report.segments_deleted >= 1);
        assert_eq!(log.log_start_offset(), report.log_start_offset);
        assert!(log.read(log.log_start_offset(), 100).await.is_ok());
        // By bytes.
        for i in 0..100i64 {
            log.append(&batch_of(1, 200, 5000 + i)).await.unwrap();
        }
        c.retention_ms = None;
        c.retention_bytes = Some(10_000);
        log.set_config(c);
        log.enforce_retention(0).await.unwrap();
        assert!(log.size_bytes() <= 10_000 + 8192, "{}", log.size_bytes());
        assert!(log.size_bytes() >= 10_000);
        assert_eq!(files_with(tmp.path(), "log").len(), log.segment_count());
    });
}

#[test]
fn a_deleted_segment_is_freed_to_zero_length_once_no_fetch_holds_it() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let log = hundred_batches(tmp.path()).await;
        let first = files_with(tmp.path(), "log")[0].clone();
        let watch = std::fs::File::open(&first).unwrap();
        let size = watch.metadata().unwrap().len();
        assert!(size > 0);
        let held = log.read(0, 300).await.unwrap();
        let mut c = log.config();
        c.retention_ms = Some(50);
        log.set_config(c);
        assert_eq!(
            log.enforce_retention(1080).await.unwrap().segments_deleted,
            1
        );
        assert!(!first.exists());
        // A fetch holds it: kept whole, and the fetch reads it.
        glommio::timer::sleep(Duration::from_millis(300)).await;
        assert_eq!(log.retired_segments(), 1);
        assert_eq!(watch.metadata().unwrap().len(), size);
        let mut out = vec![];
        held.read_to_vec(&mut out).await.unwrap();
        assert_eq!(split(&out)[0].0, 0);
        drop(held);
        // Released: shrunk to nothing, then let go.
        let deadline = Instant::now() + Duration::from_secs(10);
        while log.retired_segments() > 0 && Instant::now() < deadline {
            glommio::timer::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(log.retired_segments(), 0);
        assert_eq!(watch.metadata().unwrap().len(), 0);
        assert_eq!(log.read(30, 300).await.unwrap().ranges.len(), 1);
    });
}

#[test]
fn delete_records_moves_the_log_start_and_survives_a_reopen() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(tmp.path(), small_config())
            .await
            .unwrap();
        for _ in 0..50 {
            log.append(&batch_of(2, 150, 1)).await.unwrap();
        }
        assert_eq!(log.delete_records(7).await.unwrap(), 7);
        assert!(matches!(
            log.read(6, 100).await.unwrap_err(),
            LogError::OffsetOutOfRange { .. }
        ));
        // The batch containing 7 (6..7) is returned whole, like Kafka does.
        assert_eq!(batch::base_offset(&read_all(&log, 7, 100).await), 6);
        assert_eq!(log.delete_records(3).await.unwrap(), 7, "never moves back");
        assert!(matches!(
            log.delete_records(101).await.unwrap_err(),
            LogError::OffsetOutOfRange { .. }
        ));
        let segs = log.segment_count();
        assert_eq!(log.delete_records(60).await.unwrap(), 60);
        assert!(
            log.segment_count() < segs,
            "segments wholly below the start are deleted"
        );
        assert_eq!(log.offset_for_timestamp(0).await.unwrap(), Some((60, 1)));
        drop(log); // crash: delete_records synced its checkpoint
        let log = PartitionLog::open(tmp.path(), small_config())
            .await
            .unwrap();
        assert_eq!(log.log_start_offset(), 60);
        assert_eq!(
            log.delete_records(-1).await.unwrap(),
            100,
            "-1 means the high watermark"
        );
        assert!(log.read(100, 100).await.unwrap().is_empty());
    });
}

/// Found by log::model_tests: DeleteRecords to the high watermark leaves the active
/// segment wholly below the log start; once appends roll past it, a reopen looked for the
/// log start in that first segment and refused to open ("offset N not found").
#[test]
fn a_segment_wholly_below_the_log_start_does_not_stop_a_reopen() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(tmp.path(), small_config())
            .await
            .unwrap();
        let b = batch_of(2, 150, 1);
        // Fill the first segment until the next batch would roll it.
        while log.active().reserved_end.get() + (b.len() as u64) <= 8192 {
            log.append(&b).await.unwrap();
        }
        let start = log.delete_records(-1).await.unwrap();
        log.append(&b).await.unwrap();
        assert_eq!(log.segment_count(), 2, "the append rolled");
        log.append(&b).await.unwrap();
        let hwm = log.high_watermark();
        for reopen in 0..2 {
            if reopen == 0 {
                log.close().await.unwrap();
            }
            let log = PartitionLog::open(tmp.path(), small_config())
                .await
                .expect("a log whose first segment is below its start opens");
            assert_eq!((log.log_start_offset(), log.high_watermark()), (start, hwm));
            assert_eq!(batch::base_offset(&read_all(&log, start, 100).await), start);
            assert_eq!(
                log.segment_count(),
                1,
                "the segment below the start is gone"
            );
            drop(log); // the second open follows a crash
        }
    });
}

#[test]
fn a_bounded_queue_refuses_appends_when_full() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let b = batch_of(1, 100, 1);
        let config = LogConfig {
            max_queue_bytes: Some(b.len() as u64 * 3),
            ..small_config()
        };
        let log = PartitionLog::open(tmp.path(), config).await.unwrap();
        for _ in 0..3 {
            log.append(&b).await.unwrap();
        }
        let err = log.append(&b).await.unwrap_err();
        assert!(matches!(err, LogError::PolicyViolation(_)));
        assert!(err.to_string().contains("max_queue_bytes"), "{err}");
        assert_eq!(log.high_watermark(), 3);
        // Consumed and deleted: room again.
        log.delete_records(2).await.unwrap();
        log.append(&b).await.unwrap();
        log.append(&b).await.unwrap();
        assert!(matches!(
            log.append(&b).await.unwrap_err(),
            LogError::PolicyViolation(_)
        ));
        // A transaction marker still goes in: it ends a transaction the queue holds.
        let marker = batch::marker_batch(7, 0, false, 0, 1_700_000_000_000);
        let info = log.append(&marker).await.unwrap();
        assert_eq!(info.base_offset, 5);
        assert!(matches!(
            log.append(&b).await.unwrap_err(),
            LogError::PolicyViolation(_)
        ));
    });
}

#[test]
fn group_commit_covers_many_concurrent_appends_with_few_fdatasyncs() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let config = LogConfig {
            flush: FlushPolicy::Always,
            segment_bytes: 1 << 20,
            ..small_config()
        };
        let log = PartitionLog::open(tmp.path(), config).await.unwrap();
        let syncs_before = log.sync_count();
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let log = log.clone();
                glommio::spawn_local(async move {
                    let mut offsets = vec![];
                    for _ in 0..8 {
                        let info = log.append(&batch_of(1, 500, 1)).await.unwrap();
                        log.wait_durable(info.last_offset).await.unwrap();
                        offsets.push(info.base_offset);
                    }
                    offsets
                })
            })
            .collect();
        let mut all = vec![];
        for t in tasks {
            all.extend(t.await);
        }
        all.sort();
        assert_eq!(all, (0..512).collect::<Vec<i64>>());
        let syncs = log.sync_count() - syncs_before;
        assert!(
            (1..512 / 4).contains(&syncs),
            "{syncs} fdatasyncs for 512 appends"
        );
        println!("group commit: {syncs} fdatasyncs for 512 appends by 64 producers");
    });
}

#[test]
fn concurrent_appends_keep_call_order_and_the_hwm_moves_in_order() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(tmp.path(), small_config())
            .await
            .unwrap();
        let futs: Vec<_> = (0..50)
            .map(|i| {
                let log = log.clone();
                glommio::spawn_local(async move {
                    let info = log
                        .append(&batch_of(1, 10 + i * 20, i as i64))
                        .await
                        .unwrap();
                    assert!(log.high_watermark() > info.last_offset);
                    (i, info.base_offset)
                })
            })
            .collect();
        for f in futs {
            let (i, base) = f.await;
            assert_eq!(base, i as i64);
        }
    });
}

#[test]
fn wait_for_append_wakes_on_append_and_is_cancel_safe() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(tmp.path(), small_config())
            .await
            .unwrap();
        // A fetch long-poll that times out leaves nothing behind.
        for _ in 0..100 {
            let timeout = glommio::timer::sleep(Duration::from_micros(10));
            futures_lite::future::or(
                async {
                    log.wait_for_append(0).await;
                    true
                },
                async {
                    timeout.await;
                    false
                },
            )
            .await;
        }
        let waiter = {
            let log = log.clone();
            glommio::spawn_local(async move {
                log.wait_for_append(0).await;
                log.high_watermark()
            })
        };
        glommio::timer::sleep(Duration::from_millis(5)).await;
        log.append(&batch_of(1, 10, 1)).await.unwrap();
        assert_eq!(waiter.await, 1);
    });
}

#[test]
fn interval_flush_syncs_in_the_background_and_close_remove_clean_up() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("p");
        let config = LogConfig {
            flush: FlushPolicy::Interval(Duration::from_millis(10)),
            ..small_config()
        };
        let log = PartitionLog::open(&dir, config).await.unwrap();
        let info = log.append(&batch_of(1, 10, 1)).await.unwrap();
        log.wait_durable(info.last_offset).await.unwrap(); // not Always: returns at once
        glommio::timer::sleep(Duration::from_millis(60)).await;
        assert!(log.sync_count() >= 1);
        log.close().await.unwrap();
        assert!(matches!(
            log.append(&batch_of(1, 10, 1)).await.unwrap_err(),
            LogError::Io { .. } | LogError::Offline(_)
        ));
        assert_eq!(
            read_all(&log, 0, 100).await.len(),
            batch_of(1, 10, 1).len(),
            "reads work after close"
        );
        log.remove().await.unwrap();
        assert!(!dir.exists());
    });
}

#[test]
fn an_idle_partition_holds_little_memory() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(tmp.path(), LogConfig::default())
            .await
            .unwrap();
        for _ in 0..100 {
            log.append(&batch_of(10, 100, 1)).await.unwrap();
        }
        assert!(log.heap_bytes() < 50 * 1024, "{} bytes", log.heap_bytes());
    });
}

#[test]
fn recovery_validates_only_after_the_checkpoint_and_cuts_there() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes: 1 << 20,
            ..small_config()
        };
        let log = PartitionLog::open(tmp.path(), config.clone())
            .await
            .unwrap();
        let mut stored_batches = vec![];
        for i in 0..30 {
            let b = batch_of(1, 100, i);
            let info = log.append(&b).await.unwrap();
            stored_batches.push(stored(b, info.base_offset));
            if i == 19 {
                log.flush().await.unwrap(); // checkpoint at offset 20, index persisted
            }
        }
        drop(log); // crash
        let seg = files_with(tmp.path(), "log")[0].clone();
        let mut bytes = std::fs::read(&seg).unwrap();
        let start_25: usize = stored_batches[..25].iter().map(|b| b.len()).sum();
        bytes[start_25 + 70] ^= 0x40; // a record byte of batch 25
        std::fs::write(&seg, &bytes).unwrap();
        let log = PartitionLog::open(tmp.path(), config).await.unwrap();
        assert_eq!(log.high_watermark(), 25);
        let all: Vec<u8> = stored_batches[..25].concat();
        assert_eq!(read_all(&log, 0, 1 << 20).await, all);
        for off in 0..25 {
            assert_eq!(split(&read_all(&log, off, 1).await)[0].0, off);
        }
    });
}

#[test]
fn preallocation_starts_small_and_doubles_with_the_writes() {
    // A partition written once holds 64 KiB of disk, not the 64 MiB chunk; written on,
    // its file doubles at each growth until the chunk reaches its cap.
    assert_eq!(super::segment::preallocation_chunk(0, 64 << 20), 64 << 10);
    assert_eq!(
        super::segment::preallocation_chunk(64 << 10, 64 << 20),
        64 << 10
    );
    assert_eq!(
        super::segment::preallocation_chunk(1 << 20, 64 << 20),
        1 << 20
    );
    assert_eq!(
        super::segment::preallocation_chunk(1 << 30, 64 << 20),
        64 << 20
    );
    assert_eq!(
        super::segment::preallocation_chunk(0, 8192),
        64 << 10,
        "tiny segments"
    );
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("p");
        let config = LogConfig {
            flush: FlushPolicy::Never,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(&dir, config).await.unwrap();
        log.append(&batch_of(1, 10, 1)).await.unwrap();
        let size = || {
            let files = files_with(&dir, "log");
            std::fs::metadata(&files[0]).unwrap().len()
        };
        assert_eq!(size(), 64 << 10);
        let mut sizes = vec![size()];
        for _ in 0..200 {
            log.append(&batch_of(16, 1000, 1)).await.unwrap();
            if sizes.last() != Some(&size()) {
                sizes.push(size());
            }
        }
        // ~3.2 MB written: 64 KiB, 128 KiB, 256 KiB, ... 4 MiB.
        let expected: Vec<u64> = (0..7).map(|i| (64u64 << 10) << i).collect();
        assert_eq!(sizes, expected);
    });
}

/// segment.ms counts from the active segment's first batch across a restart, as Kafka's
/// does: a reopen used to restart the clock, so a broker restarted more often than
/// segment.ms never rolled (and a compacted topic's tail was never cleaned).
#[test]
fn a_reopened_log_rolls_an_active_segment_older_than_segment_ms() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_ms: Some(60_000),
            ..small_config()
        };
        let now = crate::runtime::now_ms();
        let log = PartitionLog::open(tmp.path(), config.clone())
            .await
            .unwrap();
        log.append(&batch_of(1, 50, now - 120_000)).await.unwrap();
        log.append(&batch_of(1, 50, now)).await.unwrap();
        assert_eq!(log.segment_count(), 1, "the live clock starts at creation");
        log.close().await.unwrap();
        drop(log);
        let log = PartitionLog::open(tmp.path(), config.clone())
            .await
            .unwrap();
        log.append(&batch_of(1, 50, now)).await.unwrap();
        assert_eq!(
            log.segment_count(),
            2,
            "the first batch is 120 s old: rolled"
        );
        log.close().await.unwrap();
        drop(log);
        // The new active segment's first batch is recent: a reopen does not roll it.
        let log = PartitionLog::open(tmp.path(), config).await.unwrap();
        log.append(&batch_of(1, 50, now)).await.unwrap();
        assert_eq!(log.segment_count(), 2);
    });
}
