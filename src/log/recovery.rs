//! Opening a partition directory: find the segments, trust what the recovery checkpoint
//! covers, re-validate every batch after it, cut the log at the first torn or invalid batch,
//! and rebuild indexes that are missing or stale. What was cut is logged with `tracing::warn!`.

use std::path::Path;
use std::rc::Rc;

use super::batch;
use super::checkpoint::{self, Checkpoint};
use super::config::LogConfig;
use super::error::LogError;
use super::index::SegmentIndex;
use super::segment::{self, ScanEnd, Segment};
use crate::runtime::now_ms;

pub(crate) struct Recovered {
    pub segments: Vec<Rc<Segment>>,
    pub next_offset: i64,
    pub log_start_offset: i64,
}

/// Base offsets of the `<base:020>.log` files in `dir`, sorted.
fn list_segments(dir: &Path) -> Result<Vec<i64>, LogError> {
    // A directory listing: std, as glommio has none (see PartitionLog::open).
    let entries =
        std::fs::read_dir(dir).map_err(|e| LogError::io("listing partition directory", dir, e))?;
    let mut bases = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io("listing partition directory", dir, e))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".log")) else {
            continue;
        };
        if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(base) = stem.parse::<i64>() {
                bases.push(base);
            }
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

pub(crate) async fn recover(dir: &Path, config: &LogConfig) -> Result<Recovered, LogError> {
    // A cleaning interrupted by a crash: dropped before its commit point, completed after.
    super::cleaner::recover_swaps(dir).await?;
    let bases = list_segments(dir)?;
    let raw_checkpoint = segment::read_file(&checkpoint::path(dir))
        .await?
        .and_then(|b| Checkpoint::decode(&b));
    let checkpoint = raw_checkpoint.filter(|c| bases.contains(&c.segment_base));
    if raw_checkpoint.is_some() && checkpoint.is_none() {
        tracing::warn!(dir = %dir.display(), "recovery checkpoint names a missing segment; validating every segment");
    }
    let now = now_ms();
    if bases.is_empty() {
        let base = raw_checkpoint.map_or(0, |c| c.next_offset.max(c.log_start_offset));
        let seg = Rc::new(Segment::create(dir, base, now).await?);
        return Ok(Recovered {
            segments: vec![seg],
            next_offset: base,
            log_start_offset: base,
        });
    }
    let interval = config.effective_index_interval();
    let mut segments: Vec<Rc<Segment>> = Vec::with_capacity(bases.len());
    let mut cut_rest = false;
    for (i, &base) in bases.iter().enumerate() {
        if cut_rest {
            delete_segment(dir, base).await?;
            continue;
        }
        let next_base = bases.get(i + 1).copied();
        let (seg, file_size) = Segment::open(dir, base, now).await?;
        let (mut end, rebuilt) =
            recover_segment(&seg, file_size, checkpoint, next_base, interval).await?;
        if let Some(n) = next_base {
            // A compacted segment may end before the next one starts: the offsets between
            // are the gap its last records left (a segment is never past the next one).
            if end.cut_reason.is_none() && end.next_offset <= n {
                end.next_offset = n;
            }
        }
        if let Some(why) = &end.cut_reason {
            tracing::warn!(
                dir = %dir.display(), segment = base, position = end.position, next_offset = end.next_offset,
                bytes_cut = file_size - end.position, reason = %why,
                "recovery cut the log at an invalid or torn batch"
            );
        }
        let continuous = next_base.is_none_or(|n| n == end.next_offset);
        if !continuous && end.cut_reason.is_none() {
            tracing::warn!(dir = %dir.display(), segment = base, next_offset = end.next_offset, next_segment = ?next_base,
                "segment does not end where the next one starts; dropping the later segments");
        }
        cut_rest = !continuous || (next_base.is_some() && end.cut_reason.is_some());
        let is_active = next_base.is_none() || cut_rest;
        finish_segment(&seg, &end, file_size, is_active, rebuilt).await?;
        segments.push(Rc::new(seg));
    }
    let last = &segments[segments.len() - 1];
    last.restore_roll_clock(now).await?;
    // Bytes validated after the checkpoint may still be only in the page cache.
    last.sync().await?;
    let next_offset = last.next_offset.get();
    let first = segments[0].base_offset;
    let log_start_offset = raw_checkpoint
        .map_or(first, |c| c.log_start_offset)
        .clamp(first, next_offset);
    Ok(Recovered {
        segments,
        next_offset,
        log_start_offset,
    })
}

/// Sets a recovered segment's state, trims it to its data and rewrites a rebuilt index.
async fn finish_segment(
    seg: &Segment,
    end: &ScanEnd,
    file_size: u64,
    is_active: bool,
    rebuilt: bool,
) -> Result<(), LogError> {
    seg.reserved_end.set(end.position);
    seg.readable_end.set(end.position);
    seg.next_offset.set(end.next_offset);
    seg.max_timestamp.set(end.max_timestamp);
    if end.position < file_size {
        // Preallocated zeros, or the torn/invalid bytes just cut.
        seg.trim().await?;
    }
    {
        let mut idx = seg.index.borrow_mut();
        let rel = seg.relative(end.next_offset);
        idx.truncate(rel, end.position as u32);
    }
    if !is_active {
        let last_rel = seg.relative(end.next_offset - 1);
        seg.index.borrow_mut().seal(end.max_timestamp, last_rel);
        seg.sealed.set(true);
    }
    if rebuilt {
        // Rewritten in place (truncate, write): unsynced, a power cut could leave old and
        // new entries mixed, or torn ones, that the next recovery would trust (a sealed
        // segment's index is not re-checked, the active one's only for sanity), sending
        // fetches to the wrong batch.
        seg.persist_index(true).await?;
        seg.sync_index().await?;
    }
    Ok(())
}

/// Returns where the segment's valid data ends and whether its index was rebuilt.
async fn recover_segment(
    seg: &Segment,
    file_size: u64,
    checkpoint: Option<Checkpoint>,
    next_base: Option<i64>,
    interval: usize,
) -> Result<(ScanEnd, bool), LogError> {
    let base = seg.base_offset;
    let path = seg.path();
    // Only sealed segments are ever compacted; the active one's offsets have no gaps.
    let gaps = next_base.is_some();
    match (checkpoint, next_base) {
        (Some(c), Some(next)) if base < c.segment_base => {
            // Sealed and synced before the checkpoint was written: trusted, not re-validated.
            if seg.load_index(file_size, next).await? && last_entry_matches(seg).await? {
                let max_ts = seg.index.borrow().times.last().map_or(-1, |t| t.timestamp);
                let end = ScanEnd {
                    position: file_size,
                    next_offset: next,
                    max_timestamp: max_ts,
                    cut_reason: None,
                };
                return Ok((end, false));
            }
            tracing::info!(path = %path.display(), "rebuilding the index of a sealed segment");
            reset(seg);
            let end = seg.scan(0, base, file_size, false, interval, true).await?;
            if end.cut_reason.is_none() && end.position == file_size && end.next_offset <= next {
                return Ok((end, true));
            }
            tracing::warn!(path = %path.display(), "sealed segment does not scan cleanly; validating it");
        }
        (Some(c), _) if base == c.segment_base && c.position <= file_size => {
            seg.load_index(c.position, c.next_offset).await?;
            let (rel, pos) = seg
                .index
                .borrow()
                .offsets
                .last()
                .map_or((0, 0), |e| (e.relative_offset, e.position));
            {
                let mut idx = seg.index.borrow_mut();
                idx.bytes_since_entry = 0;
                let max_ts = idx.times.last().map_or(-1, |t| t.timestamp);
                seg.max_timestamp.set(max_ts);
            }
            // Index entries between the last one on disk and the checkpoint: from the headers.
            let upto = seg
                .scan(
                    pos as u64,
                    base + rel as i64,
                    c.position,
                    false,
                    interval,
                    gaps,
                )
                .await?;
            if upto.cut_reason.is_none()
                && upto.position == c.position
                && upto.next_offset == c.next_offset
            {
                seg.max_timestamp.set(upto.max_timestamp);
                let end = seg
                    .scan(c.position, c.next_offset, file_size, true, interval, gaps)
                    .await?;
                return Ok((end, true));
            }
            tracing::warn!(path = %path.display(), "recovery checkpoint disagrees with the segment; validating all of it");
        }
        _ => {}
    }
    reset(seg);
    Ok((
        seg.scan(0, base, file_size, true, interval, gaps).await?,
        true,
    ))
}

fn reset(seg: &Segment) {
    *seg.index.borrow_mut() = SegmentIndex::default();
    seg.max_timestamp.set(-1);
}

/// A cheap staleness check: the last offset index entry points at the batch it names.
async fn last_entry_matches(seg: &Segment) -> Result<bool, LogError> {
    let last = seg.index.borrow().offsets.last().copied();
    let Some(e) = last else { return Ok(true) };
    let h = seg.read_at(e.position as u64, batch::HEADER_LEN).await?;
    Ok(h.len() == batch::HEADER_LEN
        && batch::base_offset(&h) == seg.base_offset + e.relative_offset as i64)
}

async fn delete_segment(dir: &Path, base: i64) -> Result<(), LogError> {
    tracing::warn!(dir = %dir.display(), segment = base, "deleting a segment after the recovery cut");
    for p in [
        segment::log_path(dir, base),
        segment::index_path(dir, base),
        segment::time_index_path(dir, base),
    ] {
        if let Err(e) = glommio::io::remove(&p).await {
            let e: std::io::Error = e.into();
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(LogError::io("deleting segment", &p, e));
            }
        }
    }
    Ok(())
}
