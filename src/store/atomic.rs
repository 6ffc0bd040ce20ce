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
    let (bytes, _) = encode(path, value)?;
    let tmp = write_temp(path, bytes, true).await?;
    glommio::io::rename(&tmp, path)
        .await
        .map_err(|e| io_err(path)(e.into()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let d = glommio::io::Directory::open(dir)
        .await
        .map_err(|e| io_err(dir)(e.into()))?;
    d.sync().await.map_err(|e| io_err(dir)(e.into()))?;
    d.close().await.map_err(|e| io_err(dir)(e.into()))?;
    Ok(())
}

/// A state file written to its temp file but not synced nor renamed: `save` in three
/// steps for a caller that makes many files durable with one `sync_file_system`
/// (a graceful stop of thousands of partitions), in this order: `stage` every file, sync,
/// `install` every file, sync. Until `install` the previous file stays in place.
#[must_use]
pub struct Staged {
    tmp: PathBuf,
    path: PathBuf,
}

/// `save`'s first step without its fdatasync; `None` (nothing written) when the file
/// would be the one whose fingerprint is `on_disk` (`load_fingerprinted`).
pub async fn stage<T>(
    path: &Path,
    value: &T,
    on_disk: Option<u32>,
) -> Result<Option<Staged>, StateError>
where
    T: for<'a> rkyv::Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>,
{
    let (bytes, fingerprint) = encode(path, value)?;
    if on_disk == Some(fingerprint) {
        return Ok(None);
    }
    let tmp = write_temp(path, bytes, false).await?;
    Ok(Some(Staged {
        tmp,
        path: path.to_path_buf(),
    }))
}

impl Staged {
    /// Replace the file (only after the temp file was synced).
    pub fn install(self) -> Result<(), StateError> {
        std::fs::rename(&self.tmp, &self.path).map_err(io_err(&self.path))
    }
}

/// Every file of the file system holding `dir` written back and its journal committed
/// (`syncfs(2)`: one call for what would be thousands of fdatasyncs). Since Linux 5.8 it
/// reports a write-back error of any file of the file system that happened since `dir`
/// was opened here, so callers open it before writing what they need synced.
pub struct FileSystem {
    dir: std::fs::File,
    path: PathBuf,
}

impl FileSystem {
    pub fn open(dir: &Path) -> Result<FileSystem, StateError> {
        let file = std::fs::File::open(dir).map_err(io_err(dir))?;
        Ok(FileSystem {
            dir: file,
            path: dir.to_path_buf(),
        })
    }

    /// Blocks the calling thread until the file system is synced.
    pub fn sync(&self) -> Result<(), StateError> {
        use std::os::fd::AsRawFd;
        // SAFETY: syncfs takes an open descriptor and no memory; `self.dir` keeps it open.
        let r = unsafe { libc::syncfs(self.dir.as_raw_fd()) };
        match r {
            0 => Ok(()),
            _ => Err(io_err(&self.path)(std::io::Error::last_os_error())),
        }
    }
}

/// `value` behind its header, and the payload's checksum (the file's fingerprint).
fn encode<T>(path: &Path, value: &T) -> Result<(Vec<u8>, u32), StateError>
where
    T: for<'a> rkyv::Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>,
{
    let payload = rkyv::to_bytes::<rancor::Error>(value).map_err(|e| StateError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("cannot serialize: {e}"),
    })?;
    let crc = crate::crc::crc32c(&payload);
    let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes.extend_from_slice(&payload);
    Ok((bytes, crc))
}

/// `bytes` in `<path>.tmp`; synced when `sync`.
async fn write_temp(path: &Path, bytes: Vec<u8>, sync: bool) -> Result<PathBuf, StateError> {
    let tmp = path.with_extension("tmp");
    let file = glommio::io::BufferedFile::create(&tmp)
        .await
        .map_err(|e| io_err(&tmp)(e.into()))?;
    file.write_at(bytes, 0)
        .await
        .map_err(|e| io_err(&tmp)(e.into()))?;
    if sync {
        file.fdatasync().await.map_err(|e| io_err(&tmp)(e.into()))?;
    }
    file.close().await.map_err(|e| io_err(&tmp)(e.into()))?;
    Ok(tmp)
}

/// Read and validate `path`. `Ok(None)` when the file does not exist.
/// Runs at startup, before the shards start, so it uses plain blocking reads.
pub fn load<T>(path: &Path) -> Result<Option<T>, StateError>
where
    T: rkyv::Archive,
    T::Archived: for<'a> rkyv::bytecheck::CheckBytes<HighValidator<'a, rancor::Error>>
        + rkyv::Deserialize<T, HighDeserializer<rancor::Error>>,
{
    Ok(load_fingerprinted(path)?.map(|(value, _)| value))
}

/// `load`, with the file's `fingerprint` (the payload checksum its header carries).
pub fn load_fingerprinted<T>(path: &Path) -> Result<Option<(T, u32)>, StateError>
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
        .map(|value| Some((value, crc)))
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
