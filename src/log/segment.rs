//! One segment: `<base-offset:020>.log` with its sparse `.index` and `.timeindex`.
//!
//! A segment file is preallocated in chunks (fallocate without KEEP_SIZE, so the file size
//! already covers the space and an overwrite's fdatasync has no size change to journal); the
//! unused tail reads as zeros, which recovery takes as the end of data (a zero batchLength).
//! The tail is trimmed when the segment is sealed and on clean close. Chunks start small and
//! double with the file (`preallocation_chunk`), so an idle or slow partition holds tens of
//! KiB of disk, and a busy one soon grows by the full chunk.

use std::cell::{Cell, OnceCell, RefCell};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use glommio::io::{BufferedFile, OpenOptions};

use super::batch::{self, BatchInfo, HEADER_LEN, LOG_OVERHEAD};
use super::error::LogError;
use super::index::SegmentIndex;
use super::tail::TailBatches;

/// The first preallocation of a segment; each later one doubles the file, up to the cap.
pub const MIN_PREALLOCATE_BYTES: u64 = 64 << 10;

/// How much to grow a segment file of `allocated` bytes: as much as it holds already
/// (the file doubles, so a partition written fast reaches the cap after ten chunks and a
/// partition written once costs 64 KiB), at least `MIN_PREALLOCATE_BYTES`, at most
/// `max_chunk`. Kafka preallocates nothing by default; growing the file at every write
/// would make each fdatasync journal a size change (~0.4 GB/s here against ~3 GB/s into
/// preallocated space), which a doubling chunk does only ten times per segment before
/// the cap, and then once per `max_chunk` as before.
pub fn preallocation_chunk(allocated: u64, max_chunk: u64) -> u64 {
    allocated.clamp(MIN_PREALLOCATE_BYTES, max_chunk.max(MIN_PREALLOCATE_BYTES))
}

/// Bytes read at once while scanning batch headers.
const SCAN_CHUNK: usize = 64 * 1024;
/// Bytes read at once while validating a segment in recovery.
const RECOVERY_CHUNK: usize = 1 << 20;

pub(crate) fn log_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}
pub(crate) fn index_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.index"))
}
pub(crate) fn time_index_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.timeindex"))
}

pub(crate) struct Segment {
    pub base_offset: i64,
    pub dir: PathBuf,
    pub file: Rc<BufferedFile>,
    /// End of the bytes reserved by appends (written or in flight).
    pub reserved_end: Cell<u64>,
    /// End of the bytes below the high watermark: reads never go past it.
    pub readable_end: Cell<u64>,
    /// The offset after the last reserved batch.
    pub next_offset: Cell<i64>,
    /// File size set by preallocation.
    pub allocated: Cell<u64>,
    /// Largest batch maxTimestamp in the segment, -1 when empty.
    pub max_timestamp: Cell<i64>,
    /// When the segment's time toward segment.ms began: its creation, or for an active
    /// segment found by recovery the first batch's maxTimestamp (as Kafka rolls on the
    /// first batch's time), so that a restart does not restart the clock.
    pub created_ms: Cell<i64>,
    pub index: RefCell<SegmentIndex>,
    pub sealed: Cell<bool>,
    /// The newest batches appended, for reads at the tail (cleared on seal).
    tail: RefCell<TailBatches>,
    /// A dup of the file's descriptor that other shards may hold (zero-copy fetch
    /// sends from it on the connection's shard); made on the first fetch.
    shared_fd: OnceCell<Arc<OwnedFd>>,
}

/// Where a scan of a segment's batches stopped.
#[derive(Debug)]
pub(crate) struct ScanEnd {
    pub position: u64,
    pub next_offset: i64,
    pub max_timestamp: i64,
    /// Why the scan stopped before the end of the file, if it was not clean preallocated zeros.
    pub cut_reason: Option<String>,
}

impl Segment {
    pub async fn create(dir: &Path, base_offset: i64, now_ms: i64) -> Result<Segment, LogError> {
        let path = log_path(dir, base_offset);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .buffered_open(&path)
            .await
            .map_err(|e| LogError::io("creating segment", &path, e))?;
        Ok(Self::from_file(dir, base_offset, file, now_ms))
    }

    pub async fn open(
        dir: &Path,
        base_offset: i64,
        now_ms: i64,
    ) -> Result<(Segment, u64), LogError> {
        let path = log_path(dir, base_offset);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .buffered_open(&path)
            .await
            .map_err(|e| LogError::io("opening segment", &path, e))?;
        let size = file
            .file_size()
            .await
            .map_err(|e| LogError::io("sizing segment", &path, e))?;
        let seg = Self::from_file(dir, base_offset, file, now_ms);
        seg.allocated.set(size);
        Ok((seg, size))
    }

    pub(super) fn from_file(
        dir: &Path,
        base_offset: i64,
        file: BufferedFile,
        now_ms: i64,
    ) -> Segment {
        Segment {
            base_offset,
            dir: dir.to_path_buf(),
            file: Rc::new(file),
            reserved_end: Cell::new(0),
            readable_end: Cell::new(0),
            next_offset: Cell::new(base_offset),
            allocated: Cell::new(0),
            max_timestamp: Cell::new(-1),
            created_ms: Cell::new(now_ms),
            index: RefCell::new(SegmentIndex::default()),
            sealed: Cell::new(false),
            tail: RefCell::new(TailBatches::default()),
            shared_fd: OnceCell::new(),
        }
    }

    /// The segment's descriptor for senders on any shard. The dup keeps the file
    /// readable after retention unlinks it, for as long as a fetch holds it.
    pub fn shared_fd(&self) -> Result<Arc<OwnedFd>, LogError> {
        if let Some(fd) = self.shared_fd.get() {
            return Ok(fd.clone());
        }
        // SAFETY: the glommio file owns a valid open descriptor for as long as `self`
        // lives; `BorrowedFd` does not outlive this statement.
        let borrowed = unsafe { BorrowedFd::borrow_raw(self.file.as_raw_fd()) };
        let fd = borrowed
            .try_clone_to_owned()
            .map_err(|e| LogError::io("sharing segment descriptor", &self.path(), e))?;
        Ok(self.shared_fd.get_or_init(|| Arc::new(fd)).clone())
    }

    /// Whether something besides this segment holds its file: a fetch's range (on this
    /// shard or, through the shared descriptor, another) or a cleaner's reader.
    pub(super) fn file_in_use(&self) -> bool {
        Rc::strong_count(&self.file) > 1
            || self
                .shared_fd
                .get()
                .is_some_and(|fd| Arc::strong_count(fd) > 1)
    }

    /// A descriptor of its own for the segment's file.
    pub(super) fn dup_fd(&self) -> std::io::Result<OwnedFd> {
        let shared = self.shared_fd().map_err(std::io::Error::other)?;
        shared.try_clone()
    }

    pub fn path(&self) -> PathBuf {
        log_path(&self.dir, self.base_offset)
    }

    pub fn relative(&self, offset: i64) -> u32 {
        // Offsets of a segment stay within u32 of its base: `reserve` rolls before that.
        (offset - self.base_offset).clamp(0, u32::MAX as i64) as u32
    }

    /// Accounts for one batch reserved at `position` (index entries, timestamps, offsets).
    pub fn on_batch(&self, info: &BatchInfo, base_offset: i64, position: u64, interval: usize) {
        let max_ts = self.max_timestamp.get().max(info.max_timestamp);
        self.max_timestamp.set(max_ts);
        self.index.borrow_mut().on_batch(
            self.relative(base_offset),
            position as u32,
            info.len,
            max_ts,
            interval,
        );
        let next = base_offset + info.offset_count();
        self.tail
            .borrow_mut()
            .push(base_offset, next - 1, position, info.len as u64);
        self.next_offset.set(next);
    }

    /// Starts the segment.ms clock of a recovered segment at its first batch's
    /// maxTimestamp (clamped to `now`: a future timestamp must not postpone the roll).
    pub async fn restore_roll_clock(&self, now: i64) -> Result<(), LogError> {
        if self.readable_end.get() < HEADER_LEN as u64 {
            return Ok(());
        }
        let h = self.read_at(0, HEADER_LEN).await?;
        if h.len() == HEADER_LEN {
            let ts = batch::header_info(&h, 0).max_timestamp;
            if ts >= 0 {
                self.created_ms.set(ts.min(now));
            }
        }
        Ok(())
    }

    /// Makes sure `[0, need)` is preallocated, growing by `preallocation_chunk` (at most
    /// `max_chunk`) at a time, up to `limit`.
    pub async fn preallocate(&self, need: u64, max_chunk: u64, limit: u64) -> Result<(), LogError> {
        if need <= self.allocated.get() {
            return Ok(());
        }
        let chunk = preallocation_chunk(self.allocated.get(), max_chunk);
        let target = (self.allocated.get() + chunk).min(limit).max(need);
        self.file
            .pre_allocate(target, false)
            .await
            .map_err(|e| LogError::io("preallocating", &self.path(), e))?;
        self.allocated.set(target);
        Ok(())
    }

    /// Writes all of `buf` at `pos` with one write. `write_at` takes the buffer, so a short
    /// write (buffered writes to a regular file are short only when the disk is full) cannot be
    /// retried without a copy on every append: it is reported as an I/O error instead.
    pub async fn write_all(&self, buf: Vec<u8>, pos: u64) -> Result<(), LogError> {
        let len = buf.len();
        let n = self
            .file
            .write_at(buf, pos)
            .await
            .map_err(|e| LogError::io("writing", &self.path(), e))?;
        if n != len {
            let msg = format!("short write of {n} of {len} bytes at {pos} (disk full?)");
            return Err(LogError::io(
                "writing",
                &self.path(),
                std::io::Error::new(std::io::ErrorKind::WriteZero, msg),
            ));
        }
        Ok(())
    }

    pub async fn read_at(&self, pos: u64, len: usize) -> Result<glommio::io::ReadResult, LogError> {
        self.file
            .read_at(pos, len)
            .await
            .map_err(|e| LogError::io("reading", &self.path(), e))
    }

    pub async fn sync(&self) -> Result<(), LogError> {
        let started = std::time::Instant::now();
        let res = self.file.fdatasync().await;
        crate::runtime::sync_latency::record(
            crate::runtime::sync_latency::Synced::Segment,
            started.elapsed(),
        );
        res.map_err(|e| LogError::io("syncing", &self.path(), e))
    }

    /// Finds the batch containing `offset` (which must be below `next_offset` and inside the
    /// readable part): returns its (position, length). In a compacted segment `offset` may
    /// be in a gap: the first batch after it is found, and an error is returned only if
    /// none follows in the segment.
    pub async fn find_batch(&self, offset: i64) -> Result<(u64, usize), LogError> {
        self.find_batch_from(offset).await?.ok_or_else(|| {
            LogError::Offline(format!(
                "offset {offset} not found in {}",
                self.path().display()
            ))
        })
    }

    /// The readable batch holding `offset`, else the first one after it (compaction
    /// leaves gaps), else None: (position, length).
    pub async fn find_batch_from(&self, offset: i64) -> Result<Option<(u64, usize)>, LogError> {
        let kept = self
            .tail
            .borrow()
            .batch_from(offset, self.readable_end.get());
        if let Some(found) = kept {
            return Ok(found);
        }
        'lookup: loop {
            let (rel, start) = self.index.borrow().lookup_offset(self.relative(offset));
            let end = self.readable_end.get();
            let mut scan = HeaderScan::new(self);
            let mut pos = start as u64;
            while pos < end {
                let h = scan.header(pos, end).await?;
                if pos == start as u64 && !self.entry_holds(rel, start, h) {
                    self.distrust_index(rel, start);
                    continue 'lookup;
                }
                let (base, len) = (
                    batch::base_offset(h),
                    batch::batch_length(h) as usize + LOG_OVERHEAD,
                );
                if base + batch::last_offset_delta(h) as i64 >= offset {
                    return Ok(Some((pos, len)));
                }
                pos += len as u64;
            }
            return Ok(None);
        }
    }

    /// The last batch boundary at or before `limit` (and after `start`, or `start` itself when
    /// the batch at `start` alone goes past `limit`). Both must be batch starts ≤ readable end.
    pub async fn last_boundary(&self, start: u64, limit: u64) -> Result<u64, LogError> {
        let kept = self
            .tail
            .borrow()
            .last_boundary(start, limit, self.readable_end.get());
        if let Some(pos) = kept {
            return Ok(pos);
        }
        'lookup: loop {
            let (rel, hint) = self.index.borrow().lookup_position(limit as u32);
            let mut pos = (hint as u64).max(start);
            let end = self.readable_end.get().min(limit);
            let mut scan = HeaderScan::new(self);
            while pos < end {
                let h = scan.header(pos, self.readable_end.get()).await?;
                if pos == hint as u64 && pos > start && !self.entry_holds(rel, hint, h) {
                    self.distrust_index(rel, hint);
                    continue 'lookup;
                }
                let len = batch::batch_length(h) as u64 + LOG_OVERHEAD as u64;
                if pos + len > limit {
                    break;
                }
                pos += len;
            }
            return Ok(pos);
        }
    }

    /// Whether the batch header `h`, read at the position of index entry (`rel`, `pos`), is
    /// the batch the entry names. The index files are an accelerator written without syncs
    /// (index.rs): a crash or power cut can leave an entry torn or stale that still looks
    /// sane, and a read that followed it would serve the wrong batch or the middle of one.
    fn entry_holds(&self, rel: u32, pos: u32, h: &[u8]) -> bool {
        pos == 0
            || (batch::base_offset(h) == self.base_offset + rel as i64
                && batch::magic(h) == batch::MAGIC_V2)
    }

    /// Drops a wrong index entry and those after it (the next lookup falls back to an
    /// earlier one, or to the segment's start) and has the files rewritten whole.
    fn distrust_index(&self, rel: u32, pos: u32) {
        tracing::warn!(
            path = %self.path().display(), relative_offset = rel, position = pos,
            "index entry does not point at the batch it names (a torn or stale index file); dropping it and the entries after it"
        );
        let mut idx = self.index.borrow_mut();
        idx.truncate(rel, pos);
        idx.rewrite = true;
    }

    /// First batch from `start_pos` whose maxTimestamp ≥ ts: (base offset, max timestamp).
    pub async fn scan_for_timestamp(
        &self,
        start_pos: u64,
        ts: i64,
        min_offset: i64,
    ) -> Result<Option<(i64, i64)>, LogError> {
        let end = self.readable_end.get();
        let mut scan = HeaderScan::new(self);
        let mut pos = start_pos;
        while pos < end {
            let h = scan.header(pos, end).await?;
            let base = batch::base_offset(h);
            let last = base + batch::last_offset_delta(h) as i64;
            if batch::max_timestamp(h) >= ts && last >= min_offset {
                return Ok(Some((base.max(min_offset), batch::max_timestamp(h))));
            }
            pos += batch::batch_length(h) as u64 + LOG_OVERHEAD as u64;
        }
        Ok(None)
    }

    /// Writes index entries not yet in the files. `fresh` rewrites both files from scratch.
    pub async fn persist_index(&self, fresh: bool) -> Result<(), LogError> {
        let fresh = fresh || self.index.borrow().rewrite;
        let (offs, times, off_at, time_at) = {
            let mut idx = self.index.borrow_mut();
            if fresh {
                idx.offsets_persisted = 0;
                idx.times_persisted = 0;
            }
            let o = SegmentIndex::encode_offsets(&idx.offsets[idx.offsets_persisted..]);
            let t = SegmentIndex::encode_times(&idx.times[idx.times_persisted..]);
            let at = (
                idx.offsets_persisted * super::index::OFFSET_ENTRY_LEN,
                idx.times_persisted * super::index::TIME_ENTRY_LEN,
            );
            (o, t, at.0 as u64, at.1 as u64)
        };
        let (n_offs, n_times) = {
            let idx = self.index.borrow();
            (idx.offsets.len(), idx.times.len())
        };
        // Entries count as persisted only once written: after a failed write (a full
        // disk) the next call writes them again at the same place.
        write_file(
            &index_path(&self.dir, self.base_offset),
            offs,
            off_at,
            fresh,
        )
        .await?;
        self.index.borrow_mut().offsets_persisted = n_offs;
        write_file(
            &time_index_path(&self.dir, self.base_offset),
            times,
            time_at,
            fresh,
        )
        .await?;
        let mut idx = self.index.borrow_mut();
        idx.times_persisted = n_times;
        idx.rewrite = false;
        Ok(())
    }

    /// Seals the segment on roll: trims the preallocated tail, writes the final time index
    /// entry and both index files, and syncs everything, so a sealed segment is trusted as is
    /// by recovery.
    pub async fn seal(&self) -> Result<(), LogError> {
        let end = self.reserved_end.get();
        let last_rel = self.relative(self.next_offset.get() - 1);
        self.index
            .borrow_mut()
            .seal(self.max_timestamp.get(), last_rel);
        self.trim().await?;
        self.persist_index(false).await?;
        self.sync().await?;
        self.sync_index().await?;
        self.sealed.set(true);
        self.tail.borrow_mut().clear();
        debug_assert_eq!(self.allocated.get(), end);
        Ok(())
    }

    /// fdatasyncs both index files: what recovery trusts without re-reading the log (a
    /// sealed segment's index, and one rewritten whole) must be on the disk as written.
    pub async fn sync_index(&self) -> Result<(), LogError> {
        sync_path(&index_path(&self.dir, self.base_offset)).await?;
        sync_path(&time_index_path(&self.dir, self.base_offset)).await
    }

    /// Cuts the preallocated space after the data.
    pub async fn trim(&self) -> Result<(), LogError> {
        let end = self.reserved_end.get();
        if self.allocated.get() != end {
            self.file
                .truncate(end)
                .await
                .map_err(|e| LogError::io("trimming", &self.path(), e))?;
            self.allocated.set(end);
        }
        Ok(())
    }

    /// Loads the index files, keeping only entries that are sane for a segment whose data ends
    /// at `data_end` with offsets below `next_offset`. Returns false if anything was dropped
    /// or missing (the caller then rebuilds by scanning).
    pub async fn load_index(&self, data_end: u64, next_offset: i64) -> Result<bool, LogError> {
        let limit = self.relative(next_offset);
        let offs = read_file(&index_path(&self.dir, self.base_offset)).await?;
        let times = read_file(&time_index_path(&self.dir, self.base_offset)).await?;
        let (o, ok_o) =
            SegmentIndex::decode_offsets(offs.as_deref().unwrap_or(&[]), data_end, limit);
        let (t, ok_t) = SegmentIndex::decode_times(times.as_deref().unwrap_or(&[]), limit);
        let mut idx = self.index.borrow_mut();
        idx.offsets_persisted = o.len();
        idx.times_persisted = t.len();
        idx.offsets = o;
        idx.times = t;
        idx.bytes_since_entry =
            data_end.saturating_sub(idx.offsets.last().map_or(0, |e| e.position as u64)) as usize;
        Ok(offs.is_some() && times.is_some() && ok_o && ok_t)
    }

    /// Scans batches from `pos` (a batch start holding `next_offset`) to `file_end`, adding
    /// index entries. With `validate`, every batch is fully checked (lengths, magic, CRC,
    /// semantics, offset continuity) and the scan stops at the first bad one; without, only
    /// headers are read (for rebuilding the index of data already validated). With `gaps`
    /// (a sealed segment, which compaction may have rewritten) a batch may start past the
    /// previous one's end; offsets must still increase.
    pub async fn scan(
        &self,
        mut pos: u64,
        mut next_offset: i64,
        file_end: u64,
        validate: bool,
        interval: usize,
        gaps: bool,
    ) -> Result<ScanEnd, LogError> {
        let mut max_ts = self.max_timestamp.get();
        let mut buf: Option<(u64, glommio::io::ReadResult)> = None;
        let cut_reason = loop {
            if pos >= file_end {
                break None;
            }
            let want = if validate { RECOVERY_CHUNK } else { SCAN_CHUNK };
            if !in_buf(&buf, pos, HEADER_LEN as u64) {
                buf = Some((
                    pos,
                    self.read_at(pos, want.min((file_end - pos) as usize))
                        .await?,
                ));
            }
            let (at, b) = buf
                .as_ref()
                .map(|(a, b)| (*a, &b[..]))
                .unwrap_or((pos, &[][..]));
            let h = &b[(pos - at) as usize..];
            if h.len() < HEADER_LEN && !h.iter().all(|&x| x == 0) {
                break Some(format!("{} bytes too short for a batch header", h.len()));
            }
            if h.len() < HEADER_LEN || (batch::batch_length(h) == 0 && batch::base_offset(h) == 0) {
                // Zeros: the end of data, if only preallocated zeros follow.
                break self.first_nonzero(pos, file_end).await?.map(|at| {
                    format!(
                        "zeros at {pos}, then data again at {at} (writes that reached the \
                         disk out of order before a crash)"
                    )
                });
            }
            let len = (batch::batch_length(h).max(0) as u64) + LOG_OVERHEAD as u64;
            if pos + len > file_end {
                break Some(format!(
                    "batch of {len} bytes at {pos} runs past the end of the file ({file_end})"
                ));
            }
            let base = batch::base_offset(h);
            if base != next_offset && !(gaps && base > next_offset) {
                break Some(format!(
                    "batch at {pos} has base offset {}, expected {next_offset}",
                    batch::base_offset(h)
                ));
            }
            let info = if validate {
                if !in_buf(&buf, pos, len) {
                    buf = Some((
                        pos,
                        self.read_at(pos, (len as usize).max(want).min((file_end - pos) as usize))
                            .await?,
                    ));
                }
                let (at, b) = buf
                    .as_ref()
                    .map(|(a, b)| (*a, &b[..]))
                    .unwrap_or((pos, &[][..]));
                let start = (pos - at) as usize;
                match b
                    .get(start..start + len as usize)
                    .map(batch::validate_stored)
                {
                    Some(Ok(info)) => info,
                    Some(Err(e)) => break Some(format!("batch at {pos}: {e}")),
                    None => break Some(format!("short read of the batch at {pos}")),
                }
            } else {
                if batch::batch_length(h) < batch::MIN_BATCH_LENGTH
                    || batch::magic(h) != batch::MAGIC_V2
                {
                    break Some(format!("bad batch header at {pos}"));
                }
                batch::header_info(h, 0)
            };
            max_ts = max_ts.max(info.max_timestamp);
            next_offset = base;
            self.index.borrow_mut().on_batch(
                self.relative(next_offset),
                pos as u32,
                info.len,
                max_ts,
                interval,
            );
            next_offset += info.offset_count();
            pos += len;
        };
        Ok(ScanEnd {
            position: pos,
            next_offset,
            max_timestamp: max_ts,
            cut_reason,
        })
    }
}

impl Segment {
    /// The first non-zero byte in `[pos, end)`, if any. Where recovery finds zeros instead
    /// of a batch header, the rest of the file must be preallocated zeros too: a later
    /// write that reached the disk while an earlier one did not (a power cut between two
    /// appends, or a kill with a write in flight) is cut like a torn batch, and logged.
    /// SEEK_DATA skips what the file system knows to be unwritten (preallocated extents on
    /// ext4 and xfs), so a preallocated tail costs no reads there.
    async fn first_nonzero(&self, mut pos: u64, end: u64) -> Result<Option<u64>, LogError> {
        while pos < end {
            // SAFETY: lseek on the open descriptor the glommio file owns; no memory involved.
            let data = unsafe { libc::lseek(self.file.as_raw_fd(), pos as i64, libc::SEEK_DATA) };
            if data < 0 {
                if std::io::Error::last_os_error().raw_os_error() == Some(libc::ENXIO) {
                    return Ok(None); // nothing but holes (unwritten extents) up to the end
                }
            } else {
                pos = pos.max(data as u64);
            }
            if pos >= end {
                return Ok(None);
            }
            let r = self
                .read_at(pos, RECOVERY_CHUNK.min((end - pos) as usize))
                .await?;
            if r.is_empty() {
                return Ok(None);
            }
            if let Some(i) = r.iter().position(|&b| b != 0) {
                return Ok(Some(pos + i as u64));
            }
            pos += r.len() as u64;
        }
        Ok(None)
    }
}

fn in_buf(buf: &Option<(u64, glommio::io::ReadResult)>, p: u64, n: u64) -> bool {
    matches!(buf, Some((at, b)) if p >= *at && p + n <= *at + b.len() as u64)
}

/// Reads batch headers through a small window so a scan does one read per chunk, not per batch.
struct HeaderScan<'a> {
    seg: &'a Segment,
    buf: Option<(u64, glommio::io::ReadResult)>,
}

impl<'a> HeaderScan<'a> {
    fn new(seg: &'a Segment) -> Self {
        HeaderScan { seg, buf: None }
    }

    /// The header of the batch at `pos` (at least `HEADER_LEN` bytes), reading up to `end`.
    async fn header(&mut self, pos: u64, end: u64) -> Result<&[u8], LogError> {
        let hit = matches!(&self.buf, Some((at, b)) if pos >= *at && pos + HEADER_LEN as u64 <= *at + b.len() as u64);
        if !hit {
            let len = SCAN_CHUNK
                .min(end.saturating_sub(pos) as usize)
                .max(HEADER_LEN);
            let r = self.seg.read_at(pos, len).await?;
            self.buf = Some((pos, r));
        }
        match &self.buf {
            Some((at, b)) if b.len() >= (pos - at) as usize + HEADER_LEN => {
                Ok(&b[(pos - at) as usize..])
            }
            _ => Err(LogError::Offline(format!(
                "short read of a batch header at {pos} in {}",
                self.seg.path().display()
            ))),
        }
    }
}

async fn write_file(path: &Path, bytes: Vec<u8>, at: u64, fresh: bool) -> Result<(), LogError> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(fresh)
        .buffered_open(path)
        .await
        .map_err(|e| LogError::io("opening index", path, e))?;
    if !bytes.is_empty() {
        let n = bytes.len();
        let w = file
            .write_at(bytes, at)
            .await
            .map_err(|e| LogError::io("writing index", path, e))?;
        if w != n {
            let err = std::io::Error::new(std::io::ErrorKind::WriteZero, "short index write");
            return Err(LogError::io("writing index", path, err));
        }
    }
    file.close()
        .await
        .map_err(|e| LogError::io("closing index", path, e))
}

/// Reads a whole small file, None if it does not exist.
pub(crate) async fn read_file(path: &Path) -> Result<Option<Vec<u8>>, LogError> {
    let file = match BufferedFile::open(path).await {
        Ok(f) => f,
        Err(e) => {
            let e: std::io::Error = e.into();
            if e.kind() == std::io::ErrorKind::NotFound {
                return Ok(None);
            }
            return Err(LogError::io("opening", path, e));
        }
    };
    let size = file
        .file_size()
        .await
        .map_err(|e| LogError::io("sizing", path, e))?;
    let mut out = Vec::with_capacity(size as usize);
    while (out.len() as u64) < size {
        let r = file
            .read_at(out.len() as u64, (size as usize - out.len()).min(1 << 20))
            .await
            .map_err(|e| LogError::io("reading", path, e))?;
        if r.is_empty() {
            break;
        }
        out.extend_from_slice(&r);
    }
    file.close()
        .await
        .map_err(|e| LogError::io("closing", path, e))?;
    Ok(Some(out))
}

pub(crate) async fn sync_path(path: &Path) -> Result<(), LogError> {
    let file = OpenOptions::new()
        .write(true)
        .buffered_open(path)
        .await
        .map_err(|e| LogError::io("opening", path, e))?;
    file.fdatasync()
        .await
        .map_err(|e| LogError::io("syncing", path, e))?;
    file.close()
        .await
        .map_err(|e| LogError::io("closing", path, e))
}
