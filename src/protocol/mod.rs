//! The Kafka protocol: request headers, dispatch by API key, one file per API.
//! Schemas come from the `kafka-protocol` crate; only record sets inside Produce and
//! Fetch are handled by hand, as byte slices.
//!
//! Decode → route → call a service → encode. `protocol/` never touches a file and runs
//! nothing on an owner: a handler finds the owner shard of each partition, group or
//! transactional id (`route`) and sends it a message of that part (`partition::messages`,
//! `coordinator::*::messages`, `cluster::messages`); the owner does the work.

pub mod api_versions;
pub mod arrivals;
pub mod context;
pub mod frame;

mod admin;
mod authorized;
mod configs;
mod describe_cluster;
mod fetch;
mod fetch_response;
mod find_coordinator;
mod groups;
mod init_producer_id;
mod list_offsets;
mod metadata;
mod offset_for_leader_epoch;
mod produce;
mod route;
pub mod sasl;
pub mod share;
mod txn;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;
use tracing::debug;

pub use context::{Context, FetchBudget, FetchHold};
use frame::decode;
pub use frame::{encode_frame, peek_start, precheck, Part, ProtocolError, Reply, RequestStart};

/// Handle one request frame (without its length prefix), after `precheck` passed.
/// `throttle_time_ms`: what the connection decided the client should be told
/// (waited for produce credit, or over its quota); Produce responses carry it.
/// `cut_at` is when the connection cut the frame off the socket: the wait until this
/// handler starts is recorded as the request's time queued. `peer`: the client's
/// address, which group members are described with.
pub async fn handle(
    ctx: &Context,
    mut frame: Bytes,
    throttle_time_ms: i32,
    cut_at: std::time::Instant,
    conn: &Conn,
    seq: i64,
) -> Result<Reply, ProtocolError> {
    ctx.metrics.record_queued(cut_at.elapsed());
    let start = peek_start(&frame)?;
    let key = ApiKey::try_from(start.api_key)
        .map_err(|_| ProtocolError(format!("unknown API key {}", start.api_key)))?;
    let v = start.version;
    let header = RequestHeader::decode(&mut frame, key.request_header_version(v))
        .map_err(|e| ProtocolError(format!("malformed {key:?} v{v} request header: {e}")))?;
    debug!(?key, version = v, cid = header.correlation_id, "request");
    let started = std::time::Instant::now();
    let request = Request {
        key,
        version: v,
        correlation_id: header.correlation_id,
        client_id: header.client_id.as_deref().unwrap_or("").to_string(),
        peer: conn.peer,
        listener: conn.listener,
        throttle_time_ms,
        principal: conn.principal.clone(),
        host: conn.host.clone(),
        later: arrivals::Later::new(conn.arrivals.clone(), seq),
    };
    let out = dispatch(ctx, &request, &mut frame).await?;
    if frame.has_remaining() {
        debug!(
            ?key,
            version = v,
            extra = frame.remaining(),
            "request had trailing bytes"
        );
    }
    ctx.metrics.record_request(key, started.elapsed());
    Ok(out)
}

/// What a handler may need to know about its request beyond its body.
pub struct Request {
    pub key: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    pub client_id: String,
    pub peer: Option<std::net::IpAddr>,
    /// Index in `BrokerConfig::endpoints` of the listener the request came in on.
    pub listener: usize,
    pub throttle_time_ms: i32,
    /// The connection's principal and its address as ACL hosts name it (`Conn`).
    pub principal: std::rc::Rc<str>,
    pub host: std::rc::Rc<str>,
    /// Whether the connection has read a request after this one. Responses leave in
    /// request order, so a long poll that outlasts it holds back the answer to that later
    /// request (a share consumer's ShareAcknowledge behind its own ShareFetch):
    /// ShareFetch answers early then.
    pub later: arrivals::Later,
}

/// What a connection tells every request it carries.
#[derive(Clone, Debug, Default)]
pub struct Conn {
    /// The client's address (group members are described with it).
    pub peer: Option<std::net::IpAddr>,
    /// Index in `BrokerConfig::endpoints` of the listener it came in on: Metadata,
    /// FindCoordinator and DescribeCluster give that listener's advertised address.
    pub listener: usize,
    /// Who authenticated (Kafka's principal, `User:<name>`); `User:ANONYMOUS` on a
    /// listener without SASL.
    pub principal: std::rc::Rc<str>,
    /// `peer` as ACL hosts name it ("127.0.0.1"), made once per connection.
    pub host: std::rc::Rc<str>,
    /// The requests the connection has read (shared by the clones a re-authentication
    /// makes).
    pub arrivals: std::rc::Rc<arrivals::Arrivals>,
}

impl Request {
    fn client(&self) -> context::Client {
        context::Client {
            id: self.client_id.clone(),
            host: self.peer.map(|ip| format!("/{ip}")).unwrap_or_default(),
        }
    }
}

/// Decode the body, call the API's handler, encode its response.
async fn dispatch(ctx: &Context, r: &Request, body: &mut Bytes) -> Result<Reply, ProtocolError> {
    let (key, v, cid) = (r.key, r.version, r.correlation_id);
    let az = &authorized::Authz::new(&ctx.cluster, &r.principal, &r.host);
    // Every handler gets the shard's context, the request's authorization, the request
    // and its version, then what else it names: the listener or the client.
    macro_rules! call {
        ($handler:expr, with az $(, $extra:ident)?) => {{
            let req = decode(key, body, v)?;
            let resp = $handler(ctx, az, req, v $(, call!(@ $extra))?).await;
            Reply::Frame(encode_frame(key, v, cid, &resp)?)
        }};
        (@ listener) => { r.listener };
        (@ client) => { r.client() };
        (@ later) => { &r.later };
    }
    Ok(match key {
        ApiKey::ApiVersions => {
            let req: ApiVersionsRequest = decode(key, body, v)?;
            Reply::Frame(encode_frame(key, v, cid, &api_versions::handle(req, v))?)
        }
        ApiKey::Produce => {
            let req = decode(key, body, v)?;
            match produce::handle(ctx, az, req, v, r.throttle_time_ms).await {
                Some(resp) => Reply::Frame(encode_frame(key, v, cid, &resp)?),
                None => Reply::None,
            }
        }
        ApiKey::Fetch => {
            let req = decode(key, body, v)?;
            let (topics, hold) = fetch::handle(ctx, az, req, v).await;
            Reply::Parts(fetch_response::encode(v, cid, topics), hold)
        }
        ApiKey::Metadata => call!(metadata::handle, with az, listener),
        ApiKey::ListOffsets => call!(list_offsets::handle, with az),
        ApiKey::FindCoordinator => call!(find_coordinator::handle, with az, listener),
        ApiKey::DescribeCluster => call!(describe_cluster::handle, with az, listener),
        ApiKey::InitProducerId => call!(init_producer_id::handle, with az),
        ApiKey::AddPartitionsToTxn => call!(txn::add_partitions, with az),
        ApiKey::AddOffsetsToTxn => call!(txn::add_offsets, with az),
        ApiKey::EndTxn => call!(txn::end_txn, with az),
        ApiKey::TxnOffsetCommit => call!(txn::txn_offset_commit, with az),
        ApiKey::CreateTopics => call!(admin::create_topics, with az),
        ApiKey::DeleteTopics => call!(admin::delete_topics, with az),
        ApiKey::CreatePartitions => call!(admin::create_partitions, with az),
        ApiKey::DeleteRecords => call!(admin::delete_records, with az),
        ApiKey::DescribeLogDirs => call!(admin::describe_log_dirs, with az),
        ApiKey::DescribeTopicPartitions => call!(admin::describe_topic_partitions, with az),
        ApiKey::ElectLeaders => call!(admin::elect_leaders, with az),
        ApiKey::ListPartitionReassignments => call!(admin::list_partition_reassignments, with az),
        ApiKey::AlterPartitionReassignments => call!(admin::alter_partition_reassignments, with az),
        ApiKey::DescribeClientQuotas => call!(configs::describe_client_quotas, with az),
        ApiKey::AlterClientQuotas => call!(configs::alter_client_quotas, with az),
        ApiKey::OffsetForLeaderEpoch => call!(offset_for_leader_epoch::handle, with az),
        ApiKey::DescribeProducers => call!(txn::describe_producers, with az),
        ApiKey::ListTransactions => call!(txn::list_transactions, with az),
        ApiKey::DescribeTransactions => call!(txn::describe_transactions, with az),
        ApiKey::DescribeConfigs => call!(configs::describe_configs, with az),
        ApiKey::AlterConfigs => call!(configs::alter_configs, with az),
        ApiKey::IncrementalAlterConfigs => call!(configs::incremental_alter_configs, with az),
        ApiKey::JoinGroup => call!(groups::join_group, with az, client),
        ApiKey::SyncGroup => call!(groups::sync_group, with az),
        ApiKey::Heartbeat => call!(groups::heartbeat, with az),
        ApiKey::LeaveGroup => call!(groups::leave_group, with az),
        ApiKey::OffsetCommit => call!(groups::offset_commit, with az),
        ApiKey::OffsetFetch => call!(groups::offset_fetch, with az),
        ApiKey::DescribeGroups => call!(groups::describe_groups, with az),
        ApiKey::ListGroups => call!(groups::list_groups, with az),
        ApiKey::DeleteGroups => call!(groups::delete_groups, with az),
        ApiKey::OffsetDelete => call!(groups::offset_delete, with az),
        ApiKey::ConsumerGroupHeartbeat => call!(groups::consumer_group_heartbeat, with az, client),
        ApiKey::ConsumerGroupDescribe => call!(groups::consumer_group_describe, with az),
        ApiKey::ShareGroupHeartbeat => call!(share::share_group_heartbeat, with az, client),
        ApiKey::ShareGroupDescribe => call!(share::share_group_describe, with az),
        ApiKey::ShareFetch => call!(share::share_fetch, with az, later),
        ApiKey::ShareAcknowledge => call!(share::share_acknowledge, with az),
        ApiKey::DescribeShareGroupOffsets => call!(share::describe_share_group_offsets, with az),
        ApiKey::AlterShareGroupOffsets => call!(share::alter_share_group_offsets, with az),
        ApiKey::DeleteShareGroupOffsets => call!(share::delete_share_group_offsets, with az),
        ApiKey::DescribeUserScramCredentials => {
            call!(sasl::credentials::describe_user_scram_credentials, with az)
        }
        ApiKey::AlterUserScramCredentials => {
            call!(sasl::credentials::alter_user_scram_credentials, with az)
        }
        ApiKey::CreateAcls => call!(admin::create_acls, with az),
        ApiKey::DescribeAcls => call!(admin::describe_acls, with az),
        ApiKey::DeleteAcls => call!(admin::delete_acls, with az),
        ApiKey::SaslHandshake => {
            let _: SaslHandshakeRequest = decode(key, body, v)?;
            let resp = SaslHandshakeResponse::default()
                .with_error_code(crate::kafka::ErrorCode::IllegalSaslState as i16);
            Reply::Frame(encode_frame(key, v, cid, &resp)?)
        }
        ApiKey::SaslAuthenticate => {
            let _: SaslAuthenticateRequest = decode(key, body, v)?;
            let resp = SaslAuthenticateResponse::default()
                .with_error_code(crate::kafka::ErrorCode::IllegalSaslState as i16)
                .with_error_message(Some(metadata::str_bytes(
                    "not expected: no SASL on this listener, or already authenticated",
                )));
            Reply::Frame(encode_frame(key, v, cid, &resp)?)
        }
        other => {
            return Err(ProtocolError(format!("API {other:?} is not supported")));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(peer: Option<std::net::IpAddr>) -> Request {
        Request {
            key: ApiKey::ShareGroupHeartbeat,
            version: 1,
            correlation_id: 7,
            client_id: "worker-1".into(),
            peer,
            listener: 0,
            throttle_time_ms: 0,
            principal: "User:ANONYMOUS".into(),
            host: "".into(),
            later: Default::default(),
        }
    }

    #[test]
    fn a_member_is_described_with_its_host_as_kafka_writes_it() {
        let v4 = request(Some("127.0.0.1".parse().unwrap())).client();
        assert_eq!(
            (v4.id.as_str(), v4.host.as_str()),
            ("worker-1", "/127.0.0.1")
        );
        let v6 = request(Some("::1".parse().unwrap())).client();
        assert_eq!(v6.host, "/::1");
        assert_eq!(request(None).client().host, "");
    }
}
