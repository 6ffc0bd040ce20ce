//! The records inside a batch, as the cleaner needs them: decoded from the records
//! section (decompressed first), kept or dropped one by one, and encoded again with the
//! batch's own codec. Only a batch that loses records (or gains a delete horizon) is
//! re-encoded; the header keeps its base offset, last offset delta, producer id, epoch
//! and base sequence, so offsets and the producer's sequence range stay what they were.

use std::borrow::Cow;

use crate::kafka::{ErrorCode, KafkaError};
use crate::log::batch::{
    self, read_varint, read_varlong, write_varlong, ATTRIBUTES_AT, BASE_TIMESTAMP_AT,
    BATCH_LENGTH_AT, COMPRESSION_MASK, CRC_AT, HEADER_LEN, LOG_OVERHEAD, RECORDS_COUNT_AT,
};

/// KIP-534: attributes bit 6 says the base timestamp holds the batch's delete horizon
/// (the time after which its tombstones and empty transaction markers may go).
pub const DELETE_HORIZON_BIT: i16 = 0x40;

/// One record of a batch, borrowed from its uncompressed records section.
#[derive(Debug, Clone, Copy)]
pub struct Rec<'a> {
    pub attributes: u8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    /// The value is null: a tombstone.
    pub tombstone: bool,
    /// From the key length to the record's end (key, value, headers), copied as is.
    tail: &'a [u8],
}

fn bad(why: impl std::fmt::Display) -> KafkaError {
    KafkaError::new(ErrorCode::CorruptMessage, format!("record batch: {why}"))
}

/// A varint-length byte field: (None when null, bytes used).
fn bytes_field(b: &[u8]) -> Result<(Option<&[u8]>, usize), KafkaError> {
    let (len, n) = read_varint(b).ok_or_else(|| bad("bad length varint"))?;
    if len < 0 {
        return Ok((None, n));
    }
    let v = b
        .get(n..n + len as usize)
        .ok_or_else(|| bad("field runs past the record"))?;
    Ok((Some(v), n + len as usize))
}

/// The records of an uncompressed records section.
pub fn parse(mut section: &[u8], count: i32) -> Result<Vec<Rec<'_>>, KafkaError> {
    let mut out = Vec::with_capacity(count.clamp(0, 4096) as usize);
    for _ in 0..count {
        let (len, n) = read_varint(section).ok_or_else(|| bad("bad record length"))?;
        let rec = section
            .get(n..n + len.max(0) as usize)
            .filter(|r| !r.is_empty())
            .ok_or_else(|| bad("record runs past the batch"))?;
        section = &section[n + len as usize..];
        let attributes = rec[0];
        let (timestamp_delta, a) = read_varlong(&rec[1..]).ok_or_else(|| bad("timestampDelta"))?;
        let (offset_delta, b) = read_varint(&rec[1 + a..]).ok_or_else(|| bad("offsetDelta"))?;
        let tail = &rec[1 + a + b..];
        let (key, k) = bytes_field(tail)?;
        let (value, _) = bytes_field(&tail[k..])?;
        out.push(Rec {
            attributes,
            timestamp_delta,
            offset_delta,
            key,
            tombstone: value.is_none(),
            tail,
        });
    }
    Ok(out)
}

/// The uncompressed records section of a whole batch: borrowed from it when it is not
/// compressed (a 1 MiB batch is not copied twice per pass).
pub fn section(b: &[u8]) -> Result<Cow<'_, [u8]>, KafkaError> {
    let codec = (batch::attributes(b) & COMPRESSION_MASK) as u8;
    let body = b.get(HEADER_LEN..).ok_or_else(|| bad("short batch"))?;
    if codec == 0 {
        return Ok(Cow::Borrowed(body));
    }
    crate::partition::codec::decompress(codec, body).map(Cow::Owned)
}

/// The batch's delete horizon (KIP-534), if it has one.
pub fn delete_horizon(b: &[u8]) -> Option<i64> {
    (batch::attributes(b) & DELETE_HORIZON_BIT != 0).then(|| batch::base_timestamp(b))
}

/// `old` (a whole batch) with only `keep` of its records, in the batch's codec, and with
/// `horizon` as its delete horizon when given. An empty batch has no records section
/// and no codec (Kafka's empty batch, kept for a producer's sequence).
pub fn rebuild(old: &[u8], keep: &[Rec<'_>], horizon: Option<i64>) -> Result<Vec<u8>, KafkaError> {
    // Record timestamps are base + delta. With a horizon the base timestamp is the
    // horizon and the deltas are made relative to it, so every client reads the same
    // record timestamps as before.
    let old_base_ts = batch::base_timestamp(old);
    let base_ts = horizon.or(delete_horizon(old)).unwrap_or(old_base_ts);
    let mut raw = Vec::new();
    for r in keep {
        let ts = old_base_ts + r.timestamp_delta;
        let mut rec = vec![r.attributes];
        write_varlong(&mut rec, ts - base_ts);
        write_varlong(&mut rec, r.offset_delta as i64);
        rec.extend_from_slice(r.tail);
        write_varlong(&mut raw, rec.len() as i64);
        raw.extend_from_slice(&rec);
    }
    let mut attributes = batch::attributes(old);
    if horizon.is_some() {
        attributes |= DELETE_HORIZON_BIT;
    }
    let body = if keep.is_empty() {
        attributes &= !COMPRESSION_MASK;
        Vec::new()
    } else {
        crate::partition::codec::compress_codec((attributes & COMPRESSION_MASK) as u8, &raw)?
    };
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&old[..HEADER_LEN]);
    out.extend_from_slice(&body);
    let len = (out.len() - LOG_OVERHEAD) as i32;
    out[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4].copy_from_slice(&len.to_be_bytes());
    out[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    out[BASE_TIMESTAMP_AT..BASE_TIMESTAMP_AT + 8].copy_from_slice(&base_ts.to_be_bytes());
    out[RECORDS_COUNT_AT..RECORDS_COUNT_AT + 4].copy_from_slice(&(keep.len() as i32).to_be_bytes());
    let crc = batch::compute_crc(&out);
    out[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

/// The positions (counted over every record of the set) of the records without a key,
/// for Produce's record_errors on a compacted topic. Control batches are skipped.
pub fn keyless(records: &[u8]) -> Result<Vec<i32>, KafkaError> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut index = 0i32;
    while pos + HEADER_LEN <= records.len() {
        let b = &records[pos..];
        let len = batch::batch_length(b).max(0) as usize + LOG_OVERHEAD;
        let b = b
            .get(..len)
            .ok_or_else(|| bad("batch runs past the record set"))?;
        pos += len;
        if batch::attributes(b) & batch::CONTROL_BIT != 0 {
            continue;
        }
        let raw = section(b)?;
        for r in parse(&raw, batch::records_count(b))? {
            if r.key.is_none() {
                out.push(index);
            }
            index += 1;
        }
    }
    Ok(out)
}
