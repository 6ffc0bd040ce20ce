//! Small durable state files: rkyv bytes behind a checked header, written atomically
//! (temp file, fdatasync, rename, directory fsync) and validated with bytecheck on load.
//!
//! File layout: `b"SLUICEST"` (8) | format version u32 LE | payload length u64 LE |
//! CRC-32C of payload u32 LE | payload (rkyv archive).

use std::path::{Path, PathBuf};

use rkyv::api::high::{HighDeserializer, HighSerializer, HighValidator};
use rkyv::rancor;
use rkyv::ser::allocator::ArenaHandle;
use rkyv::util::AlignedVec;

const MAGIC: &[u8; 8] = b"SLUICEST";
const FORMAT_VERSION: u32 = 1;
const HEADER_LEN: usize = 8 + 4 + 8 + 4;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state file {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Serialize `value` and replace `path` atomically with it.
pub async fn save<T>(path: &Path, value: &T) -> Result<(), StateError>
where
    T: for<'a> rkyv::Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>,
{
    let payload = rkyv::to_bytes::<rancor::Error>(value).map_err(|e| StateError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("cannot serialize: {e}"),
    })?;
    let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&crate::crc::crc32c(&payload).to_le_bytes());
    bytes.extend_from_slice(&payload);

    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    let file = glommio::io::BufferedFile::create(&tmp)
        .await
        .map_err(|e| io_err(&tmp)(e.into()))?;
    file.write_at(bytes, 0)
        .await
        .map_err(|e| io_err(&tmp)(e.into()))?;
    file.fdatasync().await.map_err(|e| io_err(&tmp)(e.into()))?;
    file.close().await.map_err(|e| io_err(&tmp)(e.into()))?;
    glommio::io::rename(&tmp, path)
        .await
        .map_err(|e| io_err(path)(e.into()))?;
    let d = glommio::io::Directory::open(dir)
        .await
        .map_err(|e| io_err(dir)(e.into()))?;
    d.sync().await.map_err(|e| io_err(dir)(e.into()))?;
    d.close().await.map_err(|e| io_err(dir)(e.into()))?;
    Ok(())
}

/// Read and validate `path`. `Ok(None)` when the file does not exist.
/// Runs at startup, before the shards start, so it uses plain blocking reads.
pub fn load<T>(path: &Path) -> Result<Option<T>, StateError>
where
    T: rkyv::Archive,
    T::Archived: for<'a> rkyv::bytecheck::CheckBytes<HighValidator<'a, rancor::Error>>
        + rkyv::Deserialize<T, HighDeserializer<rancor::Error>>,
{
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    let corrupt = |reason: String| StateError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC {
        return Err(corrupt("bad header".into()));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION {
        return Err(corrupt(format!("unknown format version {version}")));
    }
    let len = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes")) as usize;
    let crc = u32::from_le_bytes(bytes[20..24].try_into().expect("4 bytes"));
    let payload = &bytes[HEADER_LEN..];
    if payload.len() != len {
        return Err(corrupt(format!(
            "payload is {} bytes, header says {len}",
            payload.len()
        )));
    }
    if crate::crc::crc32c(payload) != crc {
        return Err(corrupt("checksum mismatch".into()));
    }
    let mut aligned = AlignedVec::<16>::with_capacity(payload.len());
    aligned.extend_from_slice(payload);
    rkyv::from_bytes::<T, rancor::Error>(&aligned)
        .map(Some)
        .map_err(|e| corrupt(format!("invalid archive: {e}")))
}

/// `payload` behind a valid header (the fuzz targets' way past the checksum).
#[cfg(any(test, fuzzing))]
pub fn frame_for_tests(payload: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crate::crc::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}
