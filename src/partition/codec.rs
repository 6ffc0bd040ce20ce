//! Kafka's record batch codecs (gzip, xerial snappy, lz4 frame, zstd), in one place for
//! the two parts that re-encode batches: a topic's compression.type (`compress`) and the
//! cleaner (`cleaner::records`).

use std::io::{Read, Write};

use bytes::{Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Decompressor, Snappy};

use crate::cluster::Compression;
use crate::kafka::{ErrorCode, KafkaError};

/// No batch decompresses to more than this (a guard against compression bombs; a
/// 1 MiB batch of typical records is well under 100 MiB).
const MAX_DECOMPRESSED_BYTES: u64 = 256 << 20;

fn corrupt(what: &str, e: impl std::fmt::Display) -> KafkaError {
    KafkaError::new(
        ErrorCode::CorruptMessage,
        format!("cannot decompress a {what} batch to recompress it: {e}"),
    )
}

/// A records section in `codec` (the batch's), uncompressed.
pub(crate) fn decompress(codec: u8, body: &[u8]) -> Result<Vec<u8>, KafkaError> {
    let mut out = Vec::new();
    let limited = |r: &mut dyn Read, out: &mut Vec<u8>| {
        r.take(MAX_DECOMPRESSED_BYTES + 1).read_to_end(out)?;
        if out.len() as u64 > MAX_DECOMPRESSED_BYTES {
            return Err(std::io::Error::other(format!(
                "more than {MAX_DECOMPRESSED_BYTES} bytes uncompressed"
            )));
        }
        Ok(())
    };
    match codec {
        0 => out.extend_from_slice(body),
        1 => limited(&mut flate2::read::GzDecoder::new(body), &mut out)
            .map_err(|e| corrupt("gzip", e))?,
        2 => {
            let mut b = Bytes::copy_from_slice(body);
            out = Snappy::decompress(&mut b, |raw: &mut Bytes| Ok(raw.to_vec()))
                .map_err(|e| corrupt("snappy", e))?;
        }
        3 => {
            let mut d = lz4::Decoder::new(body).map_err(|e| corrupt("lz4", e))?;
            limited(&mut d, &mut out).map_err(|e| corrupt("lz4", e))?
        }
        4 => {
            let mut d = zstd::stream::read::Decoder::new(body).map_err(|e| corrupt("zstd", e))?;
            limited(&mut d, &mut out).map_err(|e| corrupt("zstd", e))?
        }
        other => {
            return Err(KafkaError::new(
                ErrorCode::UnsupportedCompressionType,
                format!("unknown compression codec {other}"),
            ))
        }
    }
    Ok(out)
}

fn failed(e: impl std::fmt::Display) -> KafkaError {
    KafkaError::new(
        ErrorCode::UnknownServerError,
        format!("recompressing a batch failed: {e}"),
    )
}

/// `raw` compressed with batch codec `codec` at Kafka's default level (the cleaner
/// re-encodes a batch in the codec it had).
pub(crate) fn compress_codec(codec: u8, raw: &[u8]) -> Result<Vec<u8>, KafkaError> {
    let target = match codec {
        0 => Compression::Uncompressed,
        1 => Compression::Gzip { level: -1 },
        2 => Compression::Snappy,
        3 => Compression::Lz4 { level: 9 },
        4 => Compression::Zstd { level: 3 },
        other => {
            return Err(KafkaError::new(
                ErrorCode::UnsupportedCompressionType,
                format!("unknown compression codec {other}"),
            ))
        }
    };
    compress(target, raw)
}

/// `raw` compressed as the topic asks (Kafka's framings: gzip, xerial snappy, the lz4
/// frame with independent blocks, a zstd frame).
pub(crate) fn compress(target: Compression, raw: &[u8]) -> Result<Vec<u8>, KafkaError> {
    match target {
        Compression::Producer | Compression::Uncompressed => Ok(raw.to_vec()),
        Compression::Gzip { level } => {
            let level = if level < 0 { 6 } else { level as u32 };
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
            e.write_all(raw).map_err(failed)?;
            e.finish().map_err(failed)
        }
        Compression::Snappy => {
            let mut out = BytesMut::new();
            Snappy::compress(&mut out, |tmp: &mut BytesMut| {
                tmp.extend_from_slice(raw);
                Ok(())
            })
            .map_err(failed)?;
            Ok(out.to_vec())
        }
        Compression::Lz4 { level } => {
            let mut e = lz4::EncoderBuilder::new()
                .level(level as u32)
                .block_mode(lz4::BlockMode::Independent)
                .checksum(lz4::ContentChecksum::NoChecksum)
                .build(Vec::new())
                .map_err(failed)?;
            e.write_all(raw).map_err(failed)?;
            let (out, r) = e.finish();
            r.map_err(failed)?;
            Ok(out)
        }
        Compression::Zstd { level } => zstd::bulk::compress(raw, level).map_err(failed),
    }
}
