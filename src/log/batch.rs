//! Kafka RecordBatch v2 (magic 2): header accessors, validation before append, and a small
//! encoder of real batches for tests and benchmarks.
//!
//! Layout (KAFKA-COMPAT.md §5, Kafka docs "Message Format", KIP-98), all big-endian:
//! `baseOffset i64 @0 | batchLength i32 @8 | partitionLeaderEpoch i32 @12 | magic i8 @16 |
//! crc u32 @17 | attributes i16 @21 | lastOffsetDelta i32 @23 | baseTimestamp i64 @27 |
//! maxTimestamp i64 @35 | producerId i64 @43 | producerEpoch i16 @51 | baseSequence i32 @53 |
//! recordsCount i32 @57 | records @61`. The CRC-32C covers `[21, end)`; the broker may
//! rewrite `baseOffset` and `partitionLeaderEpoch` without touching it.

use super::error::LogError;

/// Bytes before `batchLength`'s payload: baseOffset + batchLength.
pub const LOG_OVERHEAD: usize = 12;
/// Size of the batch header up to the first record.
pub const HEADER_LEN: usize = 61;
/// The smallest legal `batchLength` (a header with no records).
pub const MIN_BATCH_LENGTH: i32 = (HEADER_LEN - LOG_OVERHEAD) as i32;
pub const MAGIC_V2: i8 = 2;

pub const BASE_OFFSET_AT: usize = 0;
pub const BATCH_LENGTH_AT: usize = 8;
pub const LEADER_EPOCH_AT: usize = 12;
pub const MAGIC_AT: usize = 16;
pub const CRC_AT: usize = 17;
pub const ATTRIBUTES_AT: usize = 21;
pub const LAST_OFFSET_DELTA_AT: usize = 23;
pub const BASE_TIMESTAMP_AT: usize = 27;
pub const MAX_TIMESTAMP_AT: usize = 35;
pub const PRODUCER_ID_AT: usize = 43;
pub const PRODUCER_EPOCH_AT: usize = 51;
pub const BASE_SEQUENCE_AT: usize = 53;
pub const RECORDS_COUNT_AT: usize = 57;

pub const COMPRESSION_MASK: i16 = 0x07;
pub const TIMESTAMP_TYPE_BIT: i16 = 0x08;
pub const TRANSACTIONAL_BIT: i16 = 0x10;
pub const CONTROL_BIT: i16 = 0x20;

/// What the log needs to know about one validated batch of a produce blob.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchInfo {
    pub offset_in_blob: usize,
    /// Whole batch size, `batchLength + 12`.
    pub len: usize,
    pub records_count: i32,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub attributes: i16,
}

impl BatchInfo {
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }
    pub fn compression(&self) -> i16 {
        self.attributes & COMPRESSION_MASK
    }
    /// Offsets the batch takes in the log.
    pub fn offset_count(&self) -> i64 {
        self.last_offset_delta as i64 + 1
    }
}

// Header accessors. They index the slice, so they panic on a slice shorter than the field:
// every caller has checked `len >= HEADER_LEN` (or the field's end) first.
fn be<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[at..at + N]);
    a
}
pub fn base_offset(b: &[u8]) -> i64 {
    i64::from_be_bytes(be(b, BASE_OFFSET_AT))
}
pub fn batch_length(b: &[u8]) -> i32 {
    i32::from_be_bytes(be(b, BATCH_LENGTH_AT))
}
pub fn magic(b: &[u8]) -> i8 {
    b[MAGIC_AT] as i8
}
pub fn crc(b: &[u8]) -> u32 {
    u32::from_be_bytes(be(b, CRC_AT))
}
pub fn attributes(b: &[u8]) -> i16 {
    i16::from_be_bytes(be(b, ATTRIBUTES_AT))
}
pub fn last_offset_delta(b: &[u8]) -> i32 {
    i32::from_be_bytes(be(b, LAST_OFFSET_DELTA_AT))
}
pub fn base_timestamp(b: &[u8]) -> i64 {
    i64::from_be_bytes(be(b, BASE_TIMESTAMP_AT))
}
pub fn max_timestamp(b: &[u8]) -> i64 {
    i64::from_be_bytes(be(b, MAX_TIMESTAMP_AT))
}
pub fn producer_id(b: &[u8]) -> i64 {
    i64::from_be_bytes(be(b, PRODUCER_ID_AT))
}
pub fn producer_epoch(b: &[u8]) -> i16 {
    i16::from_be_bytes(be(b, PRODUCER_EPOCH_AT))
}
pub fn base_sequence(b: &[u8]) -> i32 {
    i32::from_be_bytes(be(b, BASE_SEQUENCE_AT))
}
pub fn records_count(b: &[u8]) -> i32 {
    i32::from_be_bytes(be(b, RECORDS_COUNT_AT))
}
pub fn set_base_offset(b: &mut [u8], offset: i64) {
    b[BASE_OFFSET_AT..BASE_OFFSET_AT + 8].copy_from_slice(&offset.to_be_bytes());
}
pub fn set_partition_leader_epoch(b: &mut [u8], epoch: i32) {
    b[LEADER_EPOCH_AT..LEADER_EPOCH_AT + 4].copy_from_slice(&epoch.to_be_bytes());
}
/// CRC-32C of `[21, end)` of one whole batch.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crate::crc::crc32c(&batch[ATTRIBUTES_AT..])
}
/// KIP-32 LogAppendTime: the broker stamps maxTimestamp, sets attributes bit 3 and re-CRCs.
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    let attrs = attributes(batch) | TIMESTAMP_TYPE_BIT;
    batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attrs.to_be_bytes());
    batch[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = compute_crc(batch);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Reads the header of the batch at the start of `b` (at least `HEADER_LEN` bytes).
pub fn header_info(b: &[u8], offset_in_blob: usize) -> BatchInfo {
    BatchInfo {
        offset_in_blob,
        len: batch_length(b) as usize + LOG_OVERHEAD,
        records_count: records_count(b),
        last_offset_delta: last_offset_delta(b),
        base_timestamp: base_timestamp(b),
        max_timestamp: max_timestamp(b),
        producer_id: producer_id(b),
        producer_epoch: producer_epoch(b),
        base_sequence: base_sequence(b),
        attributes: attributes(b),
    }
}

/// Validates every batch of a produce request's records field (one or more batches back to
/// back) without decompressing anything. Any invalid batch refuses the whole blob.
pub fn validate_batches(
    records: &[u8],
    max_message_bytes: usize,
) -> Result<Vec<BatchInfo>, LogError> {
    if records.is_empty() {
        return Err(LogError::InvalidRecord("empty record set".into()));
    }
    let mut out = Vec::with_capacity(1);
    let mut pos = 0;
    while pos < records.len() {
        let info = validate_one(&records[pos..], pos, max_message_bytes)?;
        pos += info.len;
        out.push(info);
    }
    Ok(out)
}

/// Validates the batch at the start of `b`; `b` may continue with more batches.
pub fn validate_one(
    b: &[u8],
    offset_in_blob: usize,
    max_message_bytes: usize,
) -> Result<BatchInfo, LogError> {
    validate(b, offset_in_blob, max_message_bytes, true)
}

/// Validates a batch read back from a segment: as `validate_one`, except that a batch
/// the cleaner rewrote may hold fewer records than offsets (compaction keeps the
/// batch's offset range and its records' offset deltas, with gaps between them), or
/// none at all (Kafka keeps a producer's last batch empty to keep its sequence).
pub fn validate_stored(b: &[u8]) -> Result<BatchInfo, LogError> {
    validate(b, 0, usize::MAX, false)
}

fn validate(
    b: &[u8],
    offset_in_blob: usize,
    max_message_bytes: usize,
    strict: bool,
) -> Result<BatchInfo, LogError> {
    let at = offset_in_blob;
    if b.len() < HEADER_LEN {
        return Err(LogError::CorruptMessage(format!(
            "{} trailing bytes at {at} are shorter than a batch header",
            b.len()
        )));
    }
    let batch_len = batch_length(b);
    if batch_len < MIN_BATCH_LENGTH {
        return Err(LogError::CorruptMessage(format!(
            "batchLength {batch_len} at {at} is below {MIN_BATCH_LENGTH}"
        )));
    }
    let len = batch_len as usize + LOG_OVERHEAD;
    if len > b.len() {
        return Err(LogError::CorruptMessage(format!(
            "batch at {at} claims {len} bytes but only {} remain",
            b.len()
        )));
    }
    if len > max_message_bytes {
        return Err(LogError::MessageTooLarge {
            size: len,
            max: max_message_bytes,
        });
    }
    if magic(b) != MAGIC_V2 {
        return Err(LogError::CorruptMessage(format!(
            "magic {} at {at}, only 2 is supported",
            magic(b)
        )));
    }
    let batch = &b[..len];
    let (stored, computed) = (crc(batch), compute_crc(batch));
    if stored != computed {
        return Err(LogError::CorruptMessage(format!(
            "CRC-32C mismatch at {at}: stored {stored:#010x}, computed {computed:#010x}"
        )));
    }
    let info = header_info(batch, offset_in_blob);
    check_semantics(batch, &info, strict)?;
    Ok(info)
}

fn check_semantics(batch: &[u8], info: &BatchInfo, strict: bool) -> Result<(), LogError> {
    let at = info.offset_in_blob;
    let min_count = if strict { 1 } else { 0 };
    if info.records_count < min_count || info.records_count as i64 > info.offset_count() {
        return Err(LogError::InvalidRecord(format!(
            "recordsCount {} at {at}",
            info.records_count
        )));
    }
    if info.last_offset_delta < 0 {
        return Err(LogError::InvalidRecord(format!(
            "lastOffsetDelta {} at {at}",
            info.last_offset_delta
        )));
    }
    let codec = info.compression();
    if codec > 4 {
        return Err(LogError::InvalidRecord(format!(
            "unknown compression codec {codec} at {at}"
        )));
    }
    if info.is_control() && info.records_count != 1 && (strict || info.records_count != 0) {
        return Err(LogError::InvalidRecord(format!(
            "control batch at {at} has {} records, expected 1",
            info.records_count
        )));
    }
    if codec != 0 {
        // The records are one compressed block: we never decompress, so only the header is checked.
        return Ok(());
    }
    if strict && info.last_offset_delta != info.records_count - 1 {
        return Err(LogError::InvalidRecord(format!(
            "lastOffsetDelta {} does not match recordsCount {} at {at}",
            info.last_offset_delta, info.records_count
        )));
    }
    let last = (!strict).then_some(info.last_offset_delta);
    walk_records(&batch[HEADER_LEN..], info.records_count, last)
        .map_err(|why| LogError::InvalidRecord(format!("batch at {at}: {why}")))
}

/// Cheap cross-check of an uncompressed batch: the records' length prefixes tile the records
/// section exactly and each offsetDelta is its index (or, for a compacted batch with
/// `last_offset_delta`, the deltas increase and stay within it).
fn walk_records(mut rest: &[u8], count: i32, compacted: Option<i32>) -> Result<(), String> {
    let mut prev = -1;
    for i in 0..count {
        let (len, n) = read_varint(rest).ok_or_else(|| format!("record {i}: bad length varint"))?;
        rest = &rest[n..];
        if len < 3 || len as usize > rest.len() {
            return Err(format!("record {i}: length {len} does not fit"));
        }
        let rec = &rest[..len as usize];
        // attributes int8, timestampDelta varlong, offsetDelta varint.
        let (_, n1) =
            read_varlong(&rec[1..]).ok_or_else(|| format!("record {i}: bad timestampDelta"))?;
        let (delta, _) =
            read_varint(&rec[1 + n1..]).ok_or_else(|| format!("record {i}: bad offsetDelta"))?;
        let fits = match compacted {
            None => delta == i,
            Some(last) => delta > prev && delta <= last,
        };
        if !fits {
            return Err(format!("record {i} has offsetDelta {delta}"));
        }
        prev = delta;
        rest = &rest[len as usize..];
    }
    if !rest.is_empty() {
        return Err(format!("{} bytes after the last record", rest.len()));
    }
    Ok(())
}

/// Zig-zag varint (i32), returning the value and the bytes used.
pub fn read_varint(b: &[u8]) -> Option<(i32, usize)> {
    let (v, n) = read_varlong(b)?;
    if n > 5 {
        return None;
    }
    Some((i32::try_from(v).ok()?, n))
}

/// Zig-zag varlong (i64), returning the value and the bytes used.
pub fn read_varlong(b: &[u8]) -> Option<(i64, usize)> {
    let mut raw: u64 = 0;
    for (i, &byte) in b.iter().enumerate().take(10) {
        raw |= ((byte & 0x7f) as u64) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((((raw >> 1) as i64) ^ -((raw & 1) as i64), i + 1));
        }
    }
    None
}

/// Appends a zig-zag varlong.
pub fn write_varlong(out: &mut Vec<u8>, v: i64) {
    let mut raw = ((v << 1) ^ (v >> 63)) as u64;
    while raw >= 0x80 {
        out.push((raw as u8) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}

/// One record for [`BatchBuilder`].
#[derive(Clone, Debug, Default)]
pub struct Record<'a> {
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub timestamp_delta: i64,
    pub headers: Vec<(&'a [u8], Option<&'a [u8]>)>,
}

/// Encodes real RecordBatch v2 bytes (uncompressed, CRC-32C set) for tests and benchmarks.
#[derive(Clone, Debug)]
pub struct BatchBuilder {
    pub base_offset: i64,
    pub base_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub attributes: i16,
}

impl BatchBuilder {
    pub fn new(base_timestamp: i64) -> Self {
        BatchBuilder {
            base_offset: 0,
            base_timestamp,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            attributes: 0,
        }
    }

    /// Encodes `records` with offset deltas 0..n; maxTimestamp is the largest record timestamp.
    pub fn build(&self, records: &[Record<'_>]) -> Vec<u8> {
        let mut body = Vec::new();
        for (i, r) in records.iter().enumerate() {
            encode_record(&mut body, r, i as i64);
        }
        let max_delta = records.iter().map(|r| r.timestamp_delta).max().unwrap_or(0);
        let count = records.len() as i32;
        self.assemble(
            &body,
            count,
            (count - 1).max(0),
            self.base_timestamp + max_delta,
        )
    }

    /// Wraps an opaque records section (for example a compressed block) in a batch header.
    /// The compression codec comes from `self.attributes`.
    pub fn build_raw(
        &self,
        records_section: &[u8],
        records_count: i32,
        last_offset_delta: i32,
        max_timestamp: i64,
    ) -> Vec<u8> {
        self.assemble(
            records_section,
            records_count,
            last_offset_delta,
            max_timestamp,
        )
    }

    /// A transaction marker (KIP-98): control + transactional bits, one record whose key is
    /// `version 0, type` (0 abort, 1 commit) and value `version 0, coordinator epoch`.
    pub fn build_control(&self, commit: bool, coordinator_epoch: i32) -> Vec<u8> {
        let key = [0u8, 0, 0, commit as u8];
        let mut value = vec![0u8, 0];
        value.extend_from_slice(&coordinator_epoch.to_be_bytes());
        let mut b = self.clone();
        b.attributes |= CONTROL_BIT | TRANSACTIONAL_BIT;
        b.base_sequence = -1;
        b.build(&[Record {
            key: Some(&key),
            value: Some(&value),
            ..Default::default()
        }])
    }

    fn assemble(
        &self,
        body: &[u8],
        count: i32,
        last_offset_delta: i32,
        max_timestamp: i64,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        out.extend_from_slice(&self.base_offset.to_be_bytes());
        out.extend_from_slice(&((HEADER_LEN - LOG_OVERHEAD + body.len()) as i32).to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes());
        out.push(MAGIC_V2 as u8);
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&self.attributes.to_be_bytes());
        out.extend_from_slice(&last_offset_delta.to_be_bytes());
        out.extend_from_slice(&self.base_timestamp.to_be_bytes());
        out.extend_from_slice(&max_timestamp.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.producer_epoch.to_be_bytes());
        out.extend_from_slice(&self.base_sequence.to_be_bytes());
        out.extend_from_slice(&count.to_be_bytes());
        out.extend_from_slice(body);
        let crc = compute_crc(&out);
        out[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        out
    }
}

fn encode_record(out: &mut Vec<u8>, r: &Record<'_>, offset_delta: i64) {
    let mut rec = vec![0u8]; // attributes
    write_varlong(&mut rec, r.timestamp_delta);
    write_varlong(&mut rec, offset_delta);
    write_bytes(&mut rec, r.key);
    write_bytes(&mut rec, r.value);
    write_varlong(&mut rec, r.headers.len() as i64);
    for (k, v) in &r.headers {
        write_bytes(&mut rec, Some(k));
        write_bytes(&mut rec, *v);
    }
    write_varlong(out, rec.len() as i64);
    out.extend_from_slice(&rec);
}

fn write_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => write_varlong(out, -1),
        Some(b) => {
            write_varlong(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

/// Convenience: one uncompressed batch of `values` (no keys), record timestamps all `timestamp`.
pub fn build_batch(timestamp: i64, values: &[&[u8]]) -> Vec<u8> {
    let records: Vec<Record<'_>> = values
        .iter()
        .map(|v| Record {
            value: Some(v),
            ..Default::default()
        })
        .collect();
    BatchBuilder::new(timestamp).build(&records)
}

/// The control batch of a transaction marker: RecordBatch v2, attributes transactional |
/// control, baseSequence -1, one record with key `0, type` and value `0, coordinator_epoch`.
pub fn marker_batch(
    producer_id: i64,
    epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    now_ms: i64,
) -> Vec<u8> {
    let mut b = BatchBuilder::new(now_ms);
    b.producer_id = producer_id;
    b.producer_epoch = epoch;
    b.build_control(commit, coordinator_epoch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn built_batch_validates() {
        let b = build_batch(1000, &[b"a", b"bb", b"ccc"]);
        let infos = validate_batches(&b, 1 << 20).unwrap();
        assert_eq!(infos.len(), 1);
        assert_eq!(infos[0].records_count, 3);
        assert_eq!(infos[0].last_offset_delta, 2);
        assert_eq!(infos[0].len, b.len());
        assert_eq!(infos[0].max_timestamp, 1000);
    }

    #[test]
    fn control_batch_is_one_record() {
        let b = BatchBuilder {
            producer_id: 7,
            producer_epoch: 1,
            ..BatchBuilder::new(5)
        }
        .build_control(true, 3);
        let i = &validate_batches(&b, 1 << 20).unwrap()[0];
        assert!(i.is_control() && i.is_transactional());
        assert_eq!(i.offset_count(), 1);
    }

    #[test]
    fn errors_carry_kafka_codes() {
        let good = build_batch(1, &[b"x"]);
        let mut bad_crc = good.clone();
        *bad_crc.last_mut().unwrap() ^= 1;
        assert!(matches!(
            validate_batches(&bad_crc, 1 << 20).unwrap_err(),
            LogError::CorruptMessage(_)
        ));
        let mut bad_magic = good.clone();
        bad_magic[MAGIC_AT] = 1;
        assert!(matches!(
            validate_batches(&bad_magic, 1 << 20).unwrap_err(),
            LogError::CorruptMessage(_)
        ));
        assert!(matches!(
            validate_batches(&good, good.len() - 1).unwrap_err(),
            LogError::MessageTooLarge { .. }
        ));
        assert!(matches!(
            validate_batches(&good[..good.len() - 1], 1 << 20).unwrap_err(),
            LogError::CorruptMessage(_)
        ));
        // lastOffsetDelta lies (CRC recomputed so only the semantic check can catch it).
        let mut lie = good.clone();
        lie[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4].copy_from_slice(&5i32.to_be_bytes());
        let c = compute_crc(&lie);
        lie[CRC_AT..CRC_AT + 4].copy_from_slice(&c.to_be_bytes());
        assert!(matches!(
            validate_batches(&lie, 1 << 20).unwrap_err(),
            LogError::InvalidRecord(_)
        ));
        // A compressed batch may have any lastOffsetDelta >= 0: its records are never looked at.
        let zipped = BatchBuilder {
            attributes: 4,
            ..BatchBuilder::new(1)
        }
        .build_raw(b"opaque", 10, 9, 1);
        assert_eq!(
            validate_batches(&zipped, 1 << 20).unwrap()[0].offset_count(),
            10
        );
        let zero = BatchBuilder::new(1).build_raw(b"", 0, 0, 1);
        assert!(matches!(
            validate_batches(&zero, 1 << 20).unwrap_err(),
            LogError::InvalidRecord(_)
        ));
        assert!(matches!(
            validate_batches(&[], 1 << 20).unwrap_err(),
            LogError::InvalidRecord(_)
        ));
    }

    #[test]
    fn log_append_time_keeps_a_valid_crc() {
        let mut b = build_batch(1, &[b"x", b"y"]);
        set_log_append_time(&mut b, 99);
        let i = &validate_batches(&b, 1 << 20).unwrap()[0];
        assert_eq!(i.max_timestamp, 99);
        assert_ne!(i.attributes & TIMESTAMP_TYPE_BIT, 0);
    }

    proptest! {
        #[test]
        fn varlong_round_trips(v in any::<i64>()) {
            let mut out = vec![];
            write_varlong(&mut out, v);
            prop_assert_eq!(read_varlong(&out), Some((v, out.len())));
        }

        #[test]
        fn any_flipped_byte_after_the_header_fields_is_refused(
            values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..6),
            pos_seed in any::<usize>(), flip in 1u8..=255,
        ) {
            let vals: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
            let mut b = build_batch(1, &vals);
            b.extend(build_batch(2, &vals));
            // Bytes 0..8 (baseOffset) and 12..16 (leader epoch) are not covered by anything.
            let half = b.len() / 2;
            let uncovered = |i: usize| i < 8 || (12..16).contains(&i) || (half..half + 8).contains(&i) || (half + 12..half + 16).contains(&i);
            let covered: Vec<usize> = (0..b.len()).filter(|&i| !uncovered(i)).collect();
            let p = covered[pos_seed % covered.len()];
            b[p] ^= flip;
            prop_assert!(validate_batches(&b, 1 << 20).is_err());
        }

        #[test]
        fn every_truncation_is_refused(values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..6)) {
            let vals: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
            let b = build_batch(1, &vals);
            for cut in 1..b.len() {
                prop_assert!(validate_batches(&b[..cut], 1 << 20).is_err());
            }
        }
    }
}
