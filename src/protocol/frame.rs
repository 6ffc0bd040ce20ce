//! Frames: the fixed start of a request header, the checks made before a request is
//! parsed, and what a handled request turns into (a response frame, a frame in parts,
//! or nothing).

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable};

use super::api_versions;
use super::context::FetchHold;

/// A request the connection cannot go on after: it is closed and this is logged.
#[derive(Debug)]
pub struct ProtocolError(pub String);

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a request turns into: a response frame (length prefix included), a frame in
/// parts (Fetch: headers in memory around file ranges sent without a copy), or nothing
/// (Produce with acks=0).
pub enum Reply {
    Frame(BytesMut),
    /// `hold`: fetch budget held by copied record bytes until the parts are sent.
    Parts(Vec<Part>, Option<FetchHold>),
    None,
}

/// A piece of a response frame.
#[derive(Debug)]
pub enum Part {
    Mem(Bytes),
    /// Bytes of a segment file, sent from the page cache (`sendfile`).
    File(crate::log::SendRange),
}

impl Part {
    pub fn len(&self) -> usize {
        match self {
            Part::Mem(b) => b.len(),
            Part::File(r) => r.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The fixed start of every request header.
#[derive(Debug, Clone, Copy)]
pub struct RequestStart {
    pub api_key: i16,
    pub version: i16,
    pub correlation_id: i32,
}

/// Read api key, version and correlation id without consuming `frame`.
pub fn peek_start(frame: &[u8]) -> Result<RequestStart, ProtocolError> {
    if frame.len() < 8 {
        return Err(ProtocolError(format!(
            "request of {} bytes is shorter than a request header",
            frame.len()
        )));
    }
    Ok(RequestStart {
        api_key: i16::from_be_bytes([frame[0], frame[1]]),
        version: i16::from_be_bytes([frame[2], frame[3]]),
        correlation_id: i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
    })
}

/// Check what can be checked before a request is parsed. An ApiVersions request of a
/// future version is answered at once (KIP-511); other unknown keys or versions close
/// the connection, as Kafka does.
pub fn precheck(start: &RequestStart) -> Result<Option<BytesMut>, ProtocolError> {
    let key = ApiKey::try_from(start.api_key)
        .map_err(|_| ProtocolError(format!("unknown API key {}", start.api_key)))?;
    let (min, max) = api_versions::supported_range(key).ok_or_else(|| {
        ProtocolError(format!(
            "API {key:?} (key {}) is not supported",
            start.api_key
        ))
    })?;
    if key == ApiKey::ApiVersions && start.version > max {
        return Ok(Some(api_versions::unsupported_version_frame(
            start.correlation_id,
        )));
    }
    let decodable_min = min.max(key.valid_versions().min);
    if start.version < decodable_min || start.version > max {
        return Err(ProtocolError(format!(
            "{key:?} v{} is not supported (supported: v{decodable_min}..=v{max})",
            start.version
        )));
    }
    Ok(None)
}

/// Encode `body` as a response frame: length, response header, body.
pub fn encode_frame<R: Encodable>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
) -> Result<BytesMut, ProtocolError> {
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(&mut buf, key.response_header_version(version))
        .and_then(|_| body.encode(&mut buf, version))
        .map_err(|e| ProtocolError(format!("cannot encode {key:?} v{version} response: {e}")))?;
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf)
}

pub(crate) fn decode<T: Decodable>(
    key: ApiKey,
    body: &mut Bytes,
    version: i16,
) -> Result<T, ProtocolError> {
    T::decode(body, version)
        .map_err(|e| ProtocolError(format!("malformed {key:?} v{version} request: {e}")))
}
