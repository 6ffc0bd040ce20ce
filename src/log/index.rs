//! Sparse per-segment indexes, kept in memory and mirrored to `.index` / `.timeindex` files.
//!
//! - Offset index entry (8 bytes, big-endian): `relative offset u32 | position u32`, one entry
//!   per `index_interval_bytes` of log, pointing at a batch start.
//! - Time index entry (12 bytes): `max timestamp so far i64 | relative offset u32`, added beside
//!   an offset index entry when the segment's running max timestamp grew.
//!
//! The files are rewritten from memory at flush, roll and close; they are an accelerator and
//! are rebuilt by recovery when missing or stale, so they are never synced on the hot path.
//! Memory: 8 bytes per 4 KiB of log (0.2%), plus 12 bytes per time index entry.

pub const OFFSET_ENTRY_LEN: usize = 8;
pub const TIME_ENTRY_LEN: usize = 12;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

/// The sparse index of one segment.
#[derive(Debug, Default)]
pub struct SegmentIndex {
    pub offsets: Vec<OffsetEntry>,
    pub times: Vec<TimeEntry>,
    /// Bytes appended since the last offset entry (Kafka's `bytesSinceLastIndexEntry`).
    pub bytes_since_entry: usize,
    /// Entries of each kind already written to the files.
    pub offsets_persisted: usize,
    pub times_persisted: usize,
    /// Entries were dropped after a read found one wrong: the files are rewritten whole.
    pub rewrite: bool,
}

impl SegmentIndex {
    /// Called for every batch in log order, before its bytes are counted (Kafka's rule:
    /// an entry is added when more than `interval` bytes were appended since the last one).
    pub fn on_batch(
        &mut self,
        relative_offset: u32,
        position: u32,
        len: usize,
        running_max_ts: i64,
        interval: usize,
    ) {
        if self.bytes_since_entry > interval {
            self.offsets.push(OffsetEntry {
                relative_offset,
                position,
            });
            if self
                .times
                .last()
                .is_none_or(|t| running_max_ts > t.timestamp)
            {
                self.times.push(TimeEntry {
                    timestamp: running_max_ts,
                    relative_offset,
                });
            }
            self.bytes_since_entry = 0;
        }
        self.bytes_since_entry += len;
    }

    /// Records the segment's final max timestamp (Kafka does this on roll) so that a sealed
    /// segment's max timestamp can be read back from its time index.
    pub fn seal(&mut self, max_ts: i64, last_relative_offset: u32) {
        if max_ts >= 0 && self.times.last().is_none_or(|t| max_ts > t.timestamp) {
            self.times.push(TimeEntry {
                timestamp: max_ts,
                relative_offset: last_relative_offset,
            });
        }
    }

    /// The last entry at or before `relative_offset`: (relative offset, position).
    pub fn lookup_offset(&self, relative_offset: u32) -> (u32, u32) {
        let i = self
            .offsets
            .partition_point(|e| e.relative_offset <= relative_offset);
        match i {
            0 => (0, 0),
            _ => (
                self.offsets[i - 1].relative_offset,
                self.offsets[i - 1].position,
            ),
        }
    }

    /// The last entry at or before byte `position`: (relative offset, position).
    pub fn lookup_position(&self, position: u32) -> (u32, u32) {
        let i = self.offsets.partition_point(|e| e.position <= position);
        match i {
            0 => (0, 0),
            _ => (
                self.offsets[i - 1].relative_offset,
                self.offsets[i - 1].position,
            ),
        }
    }

    /// The relative offset of the last batch whose running max timestamp is below `ts`:
    /// every batch up to it has maxTimestamp < ts, so a scan for `ts` may start there.
    pub fn lookup_time(&self, ts: i64) -> Option<u32> {
        let i = self.times.partition_point(|e| e.timestamp < ts);
        (i > 0).then(|| self.times[i - 1].relative_offset)
    }

    /// Drops entries at or past `position` / `relative_offset` (after a truncation).
    pub fn truncate(&mut self, relative_offset: u32, position: u32) {
        self.offsets
            .retain(|e| e.position < position && e.relative_offset < relative_offset);
        self.times.retain(|e| e.relative_offset < relative_offset);
        self.offsets_persisted = self.offsets_persisted.min(self.offsets.len());
        self.times_persisted = self.times_persisted.min(self.times.len());
    }

    pub fn encode_offsets(entries: &[OffsetEntry]) -> Vec<u8> {
        let mut out = Vec::with_capacity(entries.len() * OFFSET_ENTRY_LEN);
        for e in entries {
            out.extend_from_slice(&e.relative_offset.to_be_bytes());
            out.extend_from_slice(&e.position.to_be_bytes());
        }
        out
    }

    pub fn encode_times(entries: &[TimeEntry]) -> Vec<u8> {
        let mut out = Vec::with_capacity(entries.len() * TIME_ENTRY_LEN);
        for e in entries {
            out.extend_from_slice(&e.timestamp.to_be_bytes());
            out.extend_from_slice(&e.relative_offset.to_be_bytes());
        }
        out
    }

    /// Decodes an offset index file, keeping the longest prefix that is strictly increasing in
    /// both fields and inside `[0, data_end)` / `[0, offset_limit)`. Returns the entries and
    /// whether the whole file was sane.
    pub fn decode_offsets(b: &[u8], data_end: u64, offset_limit: u32) -> (Vec<OffsetEntry>, bool) {
        let mut out: Vec<OffsetEntry> = Vec::with_capacity(b.len() / OFFSET_ENTRY_LEN);
        for c in b.chunks_exact(OFFSET_ENTRY_LEN) {
            let e = OffsetEntry {
                relative_offset: u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                position: u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
            };
            let increasing = out
                .last()
                .is_none_or(|p| e.position > p.position && e.relative_offset > p.relative_offset);
            if !increasing || e.position as u64 >= data_end || e.relative_offset >= offset_limit {
                return (out, false);
            }
            out.push(e);
        }
        (out, b.len().is_multiple_of(OFFSET_ENTRY_LEN))
    }

    pub fn decode_times(b: &[u8], offset_limit: u32) -> (Vec<TimeEntry>, bool) {
        let mut out: Vec<TimeEntry> = Vec::with_capacity(b.len() / TIME_ENTRY_LEN);
        for c in b.chunks_exact(TIME_ENTRY_LEN) {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&c[..8]);
            let e = TimeEntry {
                timestamp: i64::from_be_bytes(ts),
                relative_offset: u32::from_be_bytes([c[8], c[9], c[10], c[11]]),
            };
            let increasing = out.last().is_none_or(|p| {
                e.timestamp > p.timestamp && e.relative_offset >= p.relative_offset
            });
            if !increasing || e.relative_offset >= offset_limit {
                return (out, false);
            }
            out.push(e);
        }
        (out, b.len().is_multiple_of(TIME_ENTRY_LEN))
    }

    /// Bytes of heap this index holds.
    pub fn heap_bytes(&self) -> usize {
        self.offsets.capacity() * OFFSET_ENTRY_LEN + self.times.capacity() * 16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_every_interval_and_lookups() {
        let mut idx = SegmentIndex::default();
        let mut pos = 0u32;
        for i in 0..100u32 {
            idx.on_batch(i, pos, 1000, i as i64 * 10, 4096);
            pos += 1000;
        }
        // An entry after every 5 batches (5000 > 4096 bytes).
        assert_eq!(
            idx.offsets[0],
            OffsetEntry {
                relative_offset: 5,
                position: 5000
            }
        );
        assert_eq!(idx.lookup_offset(3), (0, 0));
        assert_eq!(idx.lookup_offset(12), (10, 10000));
        assert_eq!(idx.lookup_position(10999), (10, 10000));
        assert_eq!(idx.lookup_time(101), Some(10));
        assert_eq!(idx.lookup_time(0), None);
        let enc = SegmentIndex::encode_offsets(&idx.offsets);
        let (dec, ok) = SegmentIndex::decode_offsets(&enc, pos as u64, 100);
        assert!(ok);
        assert_eq!(dec, idx.offsets);
        let (dec, ok) = SegmentIndex::decode_offsets(&enc, 20000, 100);
        assert!(!ok);
        assert!(dec.len() < idx.offsets.len());
        let tenc = SegmentIndex::encode_times(&idx.times);
        assert_eq!(
            SegmentIndex::decode_times(&tenc, 100),
            (idx.times.clone(), true)
        );
    }
}
