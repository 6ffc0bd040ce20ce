//! The log side of compaction (`cleanup.policy=compact`): reading sealed segments batch
//! by batch, writing a cleaned segment beside them, and swapping it in atomically. What
//! to keep is decided above the log (`partition::cleaner`); this file only moves bytes
//! and keeps the files crash-safe.
//!
//! The swap (Kafka's `.cleaned` → `.swap` → `.log`), for a group of sealed segments
//! `[A, N)` (A the first one's base offset, N the next segment's base) cleaned into one:
//!
//! 1. the batches are written to `A.log.cleaned`, which is fdatasync'd;
//! 2. it is renamed `A.N.swap` and the directory synced: the commit point;
//! 3. the old `.log`, `.index` and `.timeindex` of every base in `[A, N)` are removed and
//!    the directory synced;
//! 4. `A.N.swap` is renamed `A.log`, its fresh indexes written and synced, the directory
//!    synced.
//!
//! Recovery (`recover_swaps`, before segments are listed): a `.cleaned` file is an
//! unfinished step 1 and is removed (the old segments are all there); a `.swap` file was
//! complete and synced before its name existed, so steps 3 and 4 are done again (each is
//! idempotent). Between steps the log on disk is thus either the old segments or the
//! cleaned one, never a mix and never neither. The log in memory switches in one
//! synchronous step, between 2 and 3, under the layout gate that retention, DeleteRecords
//! and removal also take; a fetch that holds an old segment's file keeps reading it.
//!
//! Offsets keep their values: a cleaned segment has gaps between its batches, may start
//! after its base offset and end before the next segment's base (or hold no batch at
//! all). Reads find the first batch at or after an offset (`Segment::find_batch_from`),
//! and recovery accepts gaps in sealed segments.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use glommio::io::{BufferedFile, DmaBuffer, DmaFile, OpenOptions};

use super::batch::{self, LOG_OVERHEAD};
use super::error::LogError;
use super::index::SegmentIndex;
use super::partition::PartitionLog;
use super::segment::{self, Segment};
use crate::runtime::now_ms;

/// Bytes read or written at once by the cleaner.
const IO_CHUNK: usize = 1 << 20;

/// Bytes one read of a sealed segment asks for. A read the page cache can answer runs
/// inline, in the shard's own `io_uring_enter`, where no request of the shard can run:
/// 1 MiB took 0.13 ms at p50 and up to 0.76 ms while produce latency was measured beside
/// the cleaner (perf/RESULTS.md). An eighth of it is an eighth of the wait, and each read
/// is an await, where the shard's requests get their turn.
const READ_STEP: usize = 128 << 10;

fn cleaned_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.log.cleaned"))
}

fn swap_path(dir: &Path, base: i64, end: i64) -> PathBuf {
    dir.join(format!("{base:020}.{end:020}.swap"))
}

/// (A, N) of an `A.N.swap` file name.
fn parse_swap(name: &str) -> Option<(i64, i64)> {
    let stem = name.strip_suffix(".swap")?;
    let (a, n) = stem.split_once('.')?;
    let digits = |s: &str| s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(a) || !digits(n) {
        return None;
    }
    Some((a.parse().ok()?, n.parse().ok()?))
}

/// A sealed segment as the cleaner sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SealedSegment {
    pub base_offset: i64,
    /// The next segment's base offset (offsets below it and at or above `base_offset`
    /// belong to this segment, whether a batch holds them or not).
    pub next_offset: i64,
    pub size_bytes: u64,
    pub max_timestamp: i64,
}

/// Reads a sealed segment's batches in order, `IO_CHUNK` bytes at a time.
pub struct SegmentReader {
    seg: Rc<Segment>,
    pos: u64,
    end: u64,
    buf: Vec<u8>,
    /// File position of `buf[0]`.
    buf_at: u64,
}

impl SegmentReader {
    /// The next whole batch, or None at the end of the segment. The bytes were validated
    /// when they were appended (and by recovery); a length that does not fit is an error.
    pub async fn next_batch(&mut self) -> Result<Option<&[u8]>, LogError> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let have = |r: &Self, n: u64| r.pos + n <= r.buf_at + r.buf.len() as u64;
        if !have(self, batch::HEADER_LEN as u64) {
            self.fill(batch::HEADER_LEN).await?;
        }
        let at = (self.pos - self.buf_at) as usize;
        let len = batch::batch_length(&self.buf[at..]).max(0) as usize + LOG_OVERHEAD;
        if len < batch::HEADER_LEN || self.pos + len as u64 > self.end {
            return Err(LogError::Offline(format!(
                "batch of {len} bytes at {} does not fit in {}",
                self.pos,
                self.seg.path().display()
            )));
        }
        if !have(self, len as u64) {
            self.fill(len).await?;
        }
        let at = (self.pos - self.buf_at) as usize;
        self.pos += len as u64;
        Ok(Some(&self.buf[at..at + len]))
    }

    /// Refills the buffer from `pos` with at least `need` bytes.
    async fn fill(&mut self, need: usize) -> Result<(), LogError> {
        let want = need.max(IO_CHUNK).min((self.end - self.pos) as usize);
        self.buf.clear();
        self.buf_at = self.pos;
        while self.buf.len() < want {
            let at = self.pos + self.buf.len() as u64;
            let step = (want - self.buf.len()).min(READ_STEP);
            let r = self.seg.read_at(at, step).await?;
            if r.is_empty() {
                return Err(LogError::Offline(format!(
                    "{} ended early at {at}",
                    self.seg.path().display()
                )));
            }
            self.buf.extend_from_slice(&r);
        }
        if self.buf.len() < need {
            return Err(LogError::Offline(format!(
                "short read at {} of {}",
                self.pos,
                self.seg.path().display()
            )));
        }
        Ok(())
    }
}

/// A cleaned segment being written (`A.log.cleaned`), for the offsets `[base, end)`.
///
/// Written with O_DIRECT (glommio's `DmaFile`; it opens without where the filesystem
/// refuses it, as tmpfs may). A buffered write is a copy into the page cache that
/// io_uring hands to its worker thread (ext4 refuses non-blocking buffered writes), and
/// that worker shares the shard's core: writing the cleaned log through it took the
/// shard off its core for up to 4.8 ms at a time while it cleaned (perf/RESULTS.md). A
/// direct write is a DMA from the buffer, with no copy and no worker, and leaves the page
/// cache to the data consumers read.
pub struct CleanedSegment {
    dir: PathBuf,
    base: i64,
    end: i64,
    file: DmaFile,
    written: u64,
    /// The next `IO_CHUNK` to write, its first `filled` bytes set (batches are copied
    /// straight in, split across chunks where they straddle one).
    pending: Option<DmaBuffer>,
    filled: usize,
    index: SegmentIndex,
    max_timestamp: i64,
    last_offset: i64,
    interval: usize,
}

impl CleanedSegment {
    /// Appends one batch (whole, CRC set), after the previous one's last offset and inside
    /// `[base, end)`.
    pub async fn push(&mut self, b: &[u8]) -> Result<(), LogError> {
        let info = batch::header_info(b, 0);
        let first = batch::base_offset(b);
        let last = first + info.last_offset_delta as i64;
        if first <= self.last_offset || first < self.base || last >= self.end {
            return Err(LogError::Offline(format!(
                "cleaned batch {first}..={last} out of order in [{}, {}) after {}",
                self.base, self.end, self.last_offset
            )));
        }
        self.max_timestamp = self.max_timestamp.max(info.max_timestamp);
        let position = self.size_bytes();
        if position + b.len() as u64 > u32::MAX as u64 {
            return Err(LogError::Offline("cleaned segment over 4 GiB".into()));
        }
        self.index.on_batch(
            (first - self.base) as u32,
            position as u32,
            b.len(),
            self.max_timestamp,
            self.interval,
        );
        self.last_offset = last;
        let mut rest = b;
        while !rest.is_empty() {
            let file = &self.file;
            let buf = self
                .pending
                .get_or_insert_with(|| file.alloc_dma_buffer(IO_CHUNK));
            let n = rest.len().min(IO_CHUNK - self.filled);
            buf.as_bytes_mut()[self.filled..self.filled + n].copy_from_slice(&rest[..n]);
            self.filled += n;
            rest = &rest[n..];
            if self.filled == IO_CHUNK {
                self.write_pending().await?;
            }
        }
        Ok(())
    }

    pub fn size_bytes(&self) -> u64 {
        self.written + self.filled as u64
    }

    /// Writes the filled part of `pending`, padded with zeros to the file's alignment.
    /// Only the last write can be short of `IO_CHUNK` (an aligned size), so every write
    /// starts on the alignment.
    async fn write_pending(&mut self) -> Result<(), LogError> {
        let Some(mut buf) = self.pending.take() else {
            return Ok(());
        };
        let n = self.filled;
        let len = self.file.align_up(n as u64) as usize;
        buf.as_bytes_mut()[n..len].fill(0);
        buf.trim_to_size(len);
        let path = cleaned_path(&self.dir, self.base);
        let w = self
            .file
            .write_at(buf, self.written)
            .await
            .map_err(|e| LogError::io("writing cleaned segment", &path, e))?;
        if w != len {
            let e = std::io::Error::new(std::io::ErrorKind::WriteZero, "short write");
            return Err(LogError::io("writing cleaned segment", &path, e));
        }
        self.written += n as u64;
        self.filled = 0;
        Ok(())
    }

    /// Step 1 of the swap: the rest written, the padding cut off, the file synced; returns
    /// it opened for the log's buffered reads.
    async fn finish(&mut self) -> Result<BufferedFile, LogError> {
        self.write_pending().await?;
        let path = cleaned_path(&self.dir, self.base);
        self.file
            .truncate(self.written)
            .await
            .map_err(|e| LogError::io("cutting cleaned segment to size", &path, e))?;
        self.file
            .fdatasync()
            .await
            .map_err(|e| LogError::io("syncing cleaned segment", &path, e))?;
        OpenOptions::new()
            .read(true)
            .write(true)
            .buffered_open(&path)
            .await
            .map_err(|e| LogError::io("opening cleaned segment", &path, e))
    }

    /// Removes the unfinished file (the cleaning was given up).
    pub async fn discard(self) {
        let _ = self.file.close().await;
        let _ = std::fs::remove_file(cleaned_path(&self.dir, self.base));
    }
}

async fn sync_dir(dir: &Path) -> Result<(), LogError> {
    let d = glommio::io::Directory::open(dir)
        .await
        .map_err(|e| LogError::io("opening partition directory", dir, e))?;
    d.sync()
        .await
        .map_err(|e| LogError::io("syncing partition directory", dir, e))?;
    d.close()
        .await
        .map_err(|e| LogError::io("closing partition directory", dir, e))
}

fn remove_if_present(p: &Path) -> Result<(), LogError> {
    // Directory-entry operations: std, as for the listing in recovery (rare, small).
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(LogError::io("removing replaced segment", p, e))
        }
        _ => Ok(()),
    }
}

/// Step 3 of a swap: the files of the replaced segments (the bases of `[A, N)`) go.
fn remove_replaced(dir: &Path, replaced: &[i64]) -> Result<(), LogError> {
    for &b in replaced {
        for p in [
            segment::log_path(dir, b),
            segment::index_path(dir, b),
            segment::time_index_path(dir, b),
        ] {
            remove_if_present(&p)?;
        }
    }
    Ok(())
}

/// Recovery of unfinished swaps, before the segments are listed: removes `.cleaned`
/// files and completes every `.swap` (see the file's doc). Returns how many swaps it
/// completed.
pub(crate) async fn recover_swaps(dir: &Path) -> Result<usize, LogError> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| LogError::io("listing partition directory", dir, e))?;
    let mut swaps = Vec::new();
    let mut logs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io("listing partition directory", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".log.cleaned") {
            tracing::warn!(dir = %dir.display(), file = name, "removing an unfinished cleaned segment");
            remove_if_present(&entry.path())?;
        } else if let Some(range) = parse_swap(name) {
            swaps.push(range);
        } else if let Some(stem) = name.strip_suffix(".log") {
            if let Ok(b) = stem.parse::<i64>() {
                logs.push(b);
            }
        }
    }
    swaps.sort_unstable();
    for &(base, end) in &swaps {
        tracing::warn!(dir = %dir.display(), base, end, "completing the swap of a cleaned segment");
        let replaced: Vec<i64> = logs
            .iter()
            .copied()
            .filter(|b| (base..end).contains(b))
            .collect();
        remove_replaced(dir, &replaced)?;
        sync_dir(dir).await?;
        std::fs::rename(swap_path(dir, base, end), segment::log_path(dir, base))
            .map_err(|e| LogError::io("renaming swap file", &swap_path(dir, base, end), e))?;
        sync_dir(dir).await?;
    }
    Ok(swaps.len())
}

impl PartitionLog {
    /// The sealed segments (every one but the active segment), oldest first.
    pub fn sealed_segments(&self) -> Vec<SealedSegment> {
        let segs = self.segments.borrow();
        segs.windows(2)
            .map(|w| SealedSegment {
                base_offset: w[0].base_offset,
                next_offset: w[1].base_offset,
                size_bytes: w[0].reserved_end.get(),
                max_timestamp: w[0].max_timestamp.get(),
            })
            .collect()
    }

    /// A reader of the sealed segment with this base offset, if there still is one.
    pub fn read_sealed(&self, base: i64) -> Option<SegmentReader> {
        let segs = self.segments.borrow();
        let i = segs.iter().position(|s| s.base_offset == base)?;
        if i + 1 == segs.len() {
            return None; // the active segment is never cleaned
        }
        let seg = segs[i].clone();
        let end = seg.readable_end.get();
        Some(SegmentReader {
            seg,
            pos: 0,
            end,
            buf: Vec::new(),
            buf_at: 0,
        })
    }

    /// The layout gate, held while the cleaner writes its checkpoint beside the segments;
    /// None once the log is removed or closed. Removal waits for the permit, so a
    /// checkpoint of a pass that ends as its topic is deleted never lands in the
    /// directory of a topic re-created under the same name.
    pub async fn hold_for_state_file(&self) -> Result<Option<glommio::sync::Permit<'_>>, LogError> {
        let permit = self.layout().await?;
        if self.removed.get() || self.closed.get() {
            return Ok(None);
        }
        Ok(Some(permit))
    }

    /// Starts the cleaned segment that will replace the sealed segments of `[base, end)`.
    pub async fn create_cleaned(&self, base: i64, end: i64) -> Result<CleanedSegment, LogError> {
        let path = cleaned_path(&self.dir, base);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .dma_open(&path)
            .await
            .map_err(|e| LogError::io("creating cleaned segment", &path, e))?;
        Ok(CleanedSegment {
            dir: self.dir.clone(),
            base,
            end,
            file,
            written: 0,
            pending: None,
            filled: 0,
            index: SegmentIndex::default(),
            max_timestamp: -1,
            last_offset: base - 1,
            interval: self.config.borrow().effective_index_interval(),
        })
    }

    /// Swaps `cleaned` in for the sealed segments whose base offsets are in its range (the
    /// file's doc has the steps). Returns false, and removes the cleaned file, when those
    /// segments changed meanwhile (retention or DeleteRecords removed some): nothing is
    /// replaced then. `on_switch` runs in the step that switches readers to the cleaned
    /// segment, with no await between: state that must agree with what readers see (the
    /// aborted transactions whose markers the cleaned segment lost) changes with it.
    pub async fn install_cleaned(
        &self,
        mut cleaned: CleanedSegment,
        on_switch: impl FnOnce(),
    ) -> Result<bool, LogError> {
        let path = cleaned_path(&self.dir, cleaned.base);
        let file = cleaned.finish().await?;
        let _gate = self
            .layout_gate
            .acquire_permit(1)
            .await
            .map_err(|_| LogError::Offline("layout gate".into()))?;
        let (base, end) = (cleaned.base, cleaned.end);
        let Some(replaced) = self.replaceable(base, end) else {
            tracing::info!(dir = %self.dir.display(), base, end, "segments changed while cleaning; cleaned segment dropped");
            let _ = file.close().await;
            cleaned.discard().await;
            return Ok(false);
        };
        if self.removed.get() || self.closed.get() {
            let _ = file.close().await;
            cleaned.discard().await;
            return Ok(false);
        }
        let swap = swap_path(&self.dir, base, end);
        std::fs::rename(&path, &swap)
            .map_err(|e| LogError::io("renaming cleaned segment", &path, e))?;
        sync_dir(&self.dir).await?;
        // Committed: the log switches now, in one step with no await.
        let seg = Rc::new(self.cleaned_segment(cleaned, file));
        let old_bytes: u64 = replaced.iter().map(|s| s.reserved_end.get()).sum();
        {
            let mut segs = self.segments.borrow_mut();
            let i = segs
                .iter()
                .position(|s| Rc::ptr_eq(s, &replaced[0]))
                .ok_or_else(|| LogError::Offline("replaced segment vanished".into()))?;
            segs.splice(i..i + replaced.len(), [seg.clone()]);
        }
        on_switch();
        self.size_bytes
            .set(self.size_bytes.get() - old_bytes + seg.reserved_end.get());
        let bases: Vec<i64> = replaced.iter().map(|s| s.base_offset).collect();
        remove_replaced(&self.dir, &bases)?;
        self.retire(replaced);
        sync_dir(&self.dir).await?;
        std::fs::rename(&swap, seg.path())
            .map_err(|e| LogError::io("renaming swap file", &swap, e))?;
        seg.persist_index(true).await?;
        seg.sync_index().await?;
        sync_dir(&self.dir).await?;
        drop(_gate);
        self.update_bytes_before_start().await?;
        Ok(true)
    }

    /// The sealed segments exactly covering `[base, end)`, if they are all still there.
    fn replaceable(&self, base: i64, end: i64) -> Option<Vec<Rc<Segment>>> {
        let segs = self.segments.borrow();
        let i = segs.iter().position(|s| s.base_offset == base)?;
        let mut out = Vec::new();
        for (j, s) in segs.iter().enumerate().skip(i) {
            let next = segs.get(j + 1)?.base_offset;
            out.push(s.clone());
            if next == end {
                return Some(out);
            }
            if next > end {
                return None;
            }
        }
        None
    }

    /// The log's segment for a finished cleaned file (`file` is its buffered opening; the
    /// direct one closes as `c` goes).
    fn cleaned_segment(&self, c: CleanedSegment, file: BufferedFile) -> Segment {
        let size = c.size_bytes();
        let seg = Segment::from_file(&self.dir, c.base, file, now_ms());
        seg.reserved_end.set(size);
        seg.readable_end.set(size);
        seg.allocated.set(size);
        seg.next_offset.set(c.end);
        seg.max_timestamp.set(c.max_timestamp);
        let mut index = c.index;
        index.seal(c.max_timestamp, (c.last_offset.max(c.base) - c.base) as u32);
        *seg.index.borrow_mut() = index;
        seg.sealed.set(true);
        seg
    }
}
