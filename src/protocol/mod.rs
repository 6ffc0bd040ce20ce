//! The Kafka protocol: request headers, dispatch by API key, one file per API.
//! Schemas come from the `kafka-protocol` crate; only record sets inside Produce and
//! Fetch are handled by hand, as byte slices.
//!
//! `protocol/` never touches a file: handlers call the owner shard of a partition,
//! which calls `log/`.

pub mod api_versions;
pub mod errors;

mod admin;
mod configs;
mod fetch;
mod fetch_response;
mod groups;
mod init_producer_id;
mod list_offsets;
mod metadata;
mod produce;
mod txn;

use std::rc::Rc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable};
use tracing::debug;

use crate::shard::Shard;

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
    Parts(Vec<Part>),
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

fn decode<T: Decodable>(key: ApiKey, body: &mut Bytes, version: i16) -> Result<T, ProtocolError> {
    T::decode(body, version)
        .map_err(|e| ProtocolError(format!("malformed {key:?} v{version} request: {e}")))
}

/// Handle one request frame (without its length prefix), after `precheck` passed.
/// `throttle_time_ms`: what the connection decided the client should be told
/// (waited for produce credit, or over its quota); Produce responses carry it.
/// `cut_at` is when the connection cut the frame off the socket: the wait until this
/// handler starts is recorded as the request's time queued.
pub async fn handle(
    shard: Rc<Shard>,
    mut frame: Bytes,
    throttle_time_ms: i32,
    cut_at: std::time::Instant,
) -> Result<Reply, ProtocolError> {
    shard.metrics.record_queued(cut_at.elapsed());
    let start = peek_start(&frame)?;
    let key = ApiKey::try_from(start.api_key)
        .map_err(|_| ProtocolError(format!("unknown API key {}", start.api_key)))?;
    let v = start.version;
    let header = RequestHeader::decode(&mut frame, key.request_header_version(v))
        .map_err(|e| ProtocolError(format!("malformed {key:?} v{v} request header: {e}")))?;
    let cid = header.correlation_id;
    debug!(?key, version = v, cid, "request");
    let started = std::time::Instant::now();
    let s = &shard;
    let body = &mut frame;
    macro_rules! call {
        ($req:ty, $handler:expr) => {{
            let req: $req = decode(key, body, v)?;
            let resp = $handler(s, req, v).await;
            encode_frame(key, v, cid, &resp)?
        }};
    }
    let out = match key {
        ApiKey::ApiVersions => {
            let req: ApiVersionsRequest = decode(key, body, v)?;
            encode_frame(key, v, cid, &api_versions::handle(req))?
        }
        ApiKey::Metadata => call!(MetadataRequest, metadata::handle),
        ApiKey::Produce => {
            let req: ProduceRequest = decode(key, body, v)?;
            match produce::handle(s, req, v, throttle_time_ms).await {
                Some(resp) => encode_frame(key, v, cid, &resp)?,
                None => {
                    shard.metrics.record_request(key, started.elapsed());
                    return Ok(Reply::None);
                }
            }
        }
        ApiKey::Fetch => {
            let req: FetchRequest = decode(key, body, v)?;
            let topics = fetch::handle(s, req, v).await;
            shard.metrics.record_request(key, started.elapsed());
            return Ok(Reply::Parts(fetch_response::encode(v, cid, topics)));
        }
        ApiKey::ListOffsets => call!(ListOffsetsRequest, list_offsets::handle),
        ApiKey::FindCoordinator => call!(FindCoordinatorRequest, metadata::find_coordinator),
        ApiKey::DescribeCluster => call!(DescribeClusterRequest, metadata::describe_cluster),
        ApiKey::InitProducerId => call!(InitProducerIdRequest, init_producer_id::handle),
        ApiKey::AddPartitionsToTxn => call!(AddPartitionsToTxnRequest, txn::add_partitions),
        ApiKey::AddOffsetsToTxn => call!(AddOffsetsToTxnRequest, txn::add_offsets),
        ApiKey::EndTxn => call!(EndTxnRequest, txn::end_txn),
        ApiKey::TxnOffsetCommit => call!(TxnOffsetCommitRequest, txn::txn_offset_commit),
        ApiKey::CreateTopics => call!(CreateTopicsRequest, admin::create_topics),
        ApiKey::DeleteTopics => call!(DeleteTopicsRequest, admin::delete_topics),
        ApiKey::CreatePartitions => call!(CreatePartitionsRequest, admin::create_partitions),
        ApiKey::DeleteRecords => call!(DeleteRecordsRequest, admin::delete_records),
        ApiKey::DescribeConfigs => call!(DescribeConfigsRequest, configs::describe_configs),
        ApiKey::AlterConfigs => call!(AlterConfigsRequest, configs::alter_configs),
        ApiKey::IncrementalAlterConfigs => {
            call!(
                IncrementalAlterConfigsRequest,
                configs::incremental_alter_configs
            )
        }
        ApiKey::JoinGroup => {
            let req: JoinGroupRequest = decode(key, body, v)?;
            let client_id = header.client_id.as_deref().unwrap_or("").to_string();
            encode_frame(key, v, cid, &groups::join_group(s, req, v, client_id).await)?
        }
        ApiKey::SyncGroup => call!(SyncGroupRequest, groups::sync_group),
        ApiKey::Heartbeat => call!(HeartbeatRequest, groups::heartbeat),
        ApiKey::LeaveGroup => call!(LeaveGroupRequest, groups::leave_group),
        ApiKey::OffsetCommit => call!(OffsetCommitRequest, groups::offset_commit),
        ApiKey::OffsetFetch => call!(OffsetFetchRequest, groups::offset_fetch),
        ApiKey::DescribeGroups => call!(DescribeGroupsRequest, groups::describe_groups),
        ApiKey::ListGroups => call!(ListGroupsRequest, groups::list_groups),
        ApiKey::DeleteGroups => call!(DeleteGroupsRequest, groups::delete_groups),
        ApiKey::OffsetDelete => call!(OffsetDeleteRequest, groups::offset_delete),
        ApiKey::ConsumerGroupHeartbeat => {
            let req: ConsumerGroupHeartbeatRequest = decode(key, body, v)?;
            let client_id = header.client_id.as_deref().unwrap_or("").to_string();
            let resp = groups::consumer_group_heartbeat(s, req, v, client_id).await;
            encode_frame(key, v, cid, &resp)?
        }
        ApiKey::ConsumerGroupDescribe => {
            call!(
                ConsumerGroupDescribeRequest,
                groups::consumer_group_describe
            )
        }
        other => {
            return Err(ProtocolError(format!("API {other:?} is not supported")));
        }
    };
    if body.has_remaining() {
        debug!(
            ?key,
            version = v,
            extra = body.remaining(),
            "request had trailing bytes"
        );
    }
    shard.metrics.record_request(key, started.elapsed());
    Ok(Reply::Frame(out))
}

/// Run `f` on the owner shard of a partition (inline when that is this shard).
pub(crate) async fn on_owner<T, F, Fut>(
    shard: &Rc<Shard>,
    owner: usize,
    f: F,
) -> Result<T, errors::KafkaError>
where
    F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, errors::KafkaError>> + 'static,
    T: Send + 'static,
{
    match shard.invoke_on(owner, f).await {
        Ok(r) => r,
        Err(_) => Err(errors::KafkaError::new(
            errors::NOT_LEADER_OR_FOLLOWER,
            "the owner shard is shutting down",
        )),
    }
}

/// An open partition this shard owns, or the error a client should see.
pub(crate) fn owned_partition(
    shard: &Shard,
    topic: &str,
    partition: i32,
) -> Result<Rc<crate::shard::Partition>, errors::KafkaError> {
    shard.partition(topic, partition).ok_or_else(|| {
        errors::KafkaError::new(
            errors::UNKNOWN_TOPIC_OR_PARTITION,
            format!("partition {topic}-{partition} does not exist"),
        )
    })
}

/// The open log of a partition this shard owns, or the error a client should see.
pub(crate) fn owned_log(
    shard: &Shard,
    topic: &str,
    partition: i32,
) -> Result<Rc<crate::log::PartitionLog>, errors::KafkaError> {
    owned_partition(shard, topic, partition).map(|p| p.log.clone())
}
