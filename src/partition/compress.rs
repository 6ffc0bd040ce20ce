//! A topic's `compression.type` (Kafka's `LogValidator`): a batch whose codec is not
//! the topic's is decompressed and compressed again with the topic's codec and level on
//! the partition's owner, before the log writes it. Only the records section changes;
//! the header (producer id, epoch, sequence, timestamps, offsets deltas) is kept, the
//! codec bits, the batch length and the CRC-32C are rewritten. Control batches
//! (transaction markers) are never compressed. `compression.type=producer` (the
//! default) costs one comparison per record set: nothing is read or copied, and the
//! zero-copy fetch path never sees the difference.
//!
//! Resources for a record set that must change: one decompression and one compression
//! per batch, one new buffer for the set.

use bytes::{Bytes, BytesMut};

use crate::cluster::Compression;
use crate::kafka::KafkaError;
use crate::log::batch::{
    self, ATTRIBUTES_AT, BATCH_LENGTH_AT, COMPRESSION_MASK, CONTROL_BIT, CRC_AT, HEADER_LEN,
    LOG_OVERHEAD,
};
use crate::partition::codec::{compress, decompress};

/// The record set as the topic stores it: `None` when it already is (no copy), else
/// the recompressed set. A set that cannot be parsed is left as it is, for the log's
/// validation to refuse with the right error.
pub fn recompress(records: &Bytes, target: Compression) -> Result<Option<Bytes>, KafkaError> {
    let Some(codec) = target.codec() else {
        return Ok(None);
    };
    let Some(batches) = batches(records) else {
        return Ok(None);
    };
    if !batches.iter().any(|b| needs(b, codec)) {
        return Ok(None);
    }
    let mut out = BytesMut::with_capacity(records.len());
    for b in &batches {
        if needs(b, codec) {
            let raw = decompress(b.codec, &b.bytes[HEADER_LEN..])?;
            let body = compress(target, &raw)?;
            let start = out.len();
            out.extend_from_slice(&header(&b.bytes[..HEADER_LEN], codec, body.len()));
            out.extend_from_slice(&body);
            let crc = batch::compute_crc(&out[start..]);
            out[start + CRC_AT..start + CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        } else {
            out.extend_from_slice(b.bytes);
        }
    }
    Ok(Some(out.freeze()))
}

struct Batch<'a> {
    bytes: &'a [u8],
    codec: u8,
    control: bool,
    magic: u8,
}

fn needs(b: &Batch, codec: u8) -> bool {
    b.magic == 2 && !b.control && b.codec != codec
}

/// The batches of a record set, or None if it does not parse (left to the log).
fn batches(records: &[u8]) -> Option<Vec<Batch<'_>>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < records.len() {
        let rest = &records[pos..];
        if rest.len() < HEADER_LEN {
            return None;
        }
        let total = usize::try_from(batch::batch_length(rest)).ok()? + LOG_OVERHEAD;
        if total < HEADER_LEN || total > rest.len() {
            return None;
        }
        let attributes = batch::attributes(rest);
        out.push(Batch {
            bytes: &rest[..total],
            codec: (attributes & COMPRESSION_MASK) as u8,
            control: attributes & CONTROL_BIT != 0,
            magic: batch::magic(rest) as u8,
        });
        pos += total;
    }
    Some(out)
}

/// The batch header with the codec and the length of a records section of `body_len`
/// bytes (the CRC is written once the body follows it).
fn header(old: &[u8], codec: u8, body_len: usize) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h.copy_from_slice(old);
    let len = (HEADER_LEN - LOG_OVERHEAD + body_len) as i32;
    h[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4].copy_from_slice(&len.to_be_bytes());
    let attributes = (batch::attributes(&h) & !COMPRESSION_MASK) | codec as i16;
    h[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::{
        Compression as Codec, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
        TimestampType,
    };

    fn batch(codec: Codec, n: i64) -> Bytes {
        let records: Vec<Record> = (0..n)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: 7,
                producer_epoch: 1,
                timestamp_type: TimestampType::Creation,
                offset: i,
                sequence: i as i32,
                timestamp: 1000 + i,
                key: Some(Bytes::from(format!("key-{i}"))),
                value: Some(Bytes::from(vec![b'v'; 300])),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        let opts = RecordEncodeOptions {
            version: 2,
            compression: codec,
        };
        RecordBatchEncoder::encode(&mut buf, &records, &opts).unwrap();
        buf.freeze()
    }

    #[test]
    fn every_codec_becomes_every_other_with_the_records_and_producer_fields_kept() {
        let codecs = [
            (Codec::None, Compression::Uncompressed),
            (Codec::Gzip, Compression::Gzip { level: 9 }),
            (Codec::Snappy, Compression::Snappy),
            (Codec::Lz4, Compression::Lz4 { level: 9 }),
            (Codec::Zstd, Compression::Zstd { level: 3 }),
        ];
        for (from, _) in codecs {
            let set = batch(from, 50);
            for (to_codec, to) in codecs {
                let out = recompress(&set, to).unwrap();
                let out = match out {
                    None => {
                        assert_eq!(from as i8, to_codec as i8, "{from:?} → {to:?}");
                        continue;
                    }
                    Some(out) => out,
                };
                // The log's own validation (lengths, magic, CRC-32C) passes.
                crate::log::batch::validate_batches(&out, usize::MAX).unwrap();
                let mut b = out.clone();
                let decoded = RecordBatchDecoder::decode(&mut b).unwrap();
                assert_eq!(decoded.compression as i8, to_codec as i8);
                assert_eq!(decoded.records.len(), 50);
                let r = &decoded.records[49];
                assert_eq!((r.producer_id, r.producer_epoch, r.sequence), (7, 1, 49));
                assert_eq!(r.timestamp, 1049);
                assert_eq!(r.key.as_deref(), Some(&b"key-49"[..]));
            }
        }
    }

    #[test]
    fn producer_leaves_everything_alone_and_garbage_is_left_to_the_log() {
        let set = batch(Codec::Gzip, 3);
        assert!(recompress(&set, Compression::Producer).unwrap().is_none());
        let cut = set.slice(..set.len() - 1);
        assert!(recompress(&cut, Compression::Zstd { level: 3 })
            .unwrap()
            .is_none());
    }
}
