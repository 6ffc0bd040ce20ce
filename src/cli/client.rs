//! A small synchronous Kafka admin client on `kafka-protocol` frames over plain TCP: what
//! the operator commands need that librdkafka's admin API lacks (share groups, group
//! offsets without joining, DescribeLogDirs, the advertised API table), and errors that
//! keep the Kafka error code. It works against any Kafka-protocol broker: requests go to
//! the node that must answer them (the controller for topic changes, the group's
//! coordinator for group requests, a partition's leader for ListOffsets).

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, FindCoordinatorRequest, GroupId,
    ListOffsetsRequest, MetadataRequest, MetadataResponse, RequestHeader, ResponseHeader,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};

use super::error::CliError;
use crate::kafka::ErrorCode;

pub const CLIENT_ID: &str = "sluice-cli";
/// ListOffsets timestamps with a special meaning.
pub const LATEST: i64 = -1;
pub const EARLIEST: i64 = -2;

pub fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

pub fn topic_name(v: impl Into<String>) -> TopicName {
    TopicName(s(v))
}

pub fn group_id(v: impl Into<String>) -> GroupId {
    GroupId(s(v))
}

/// One connection to one broker, with the API versions it advertised.
pub struct Conn {
    stream: TcpStream,
    pub addr: String,
    next_id: i32,
    /// api key → (min, max) as the broker advertised them.
    pub versions: BTreeMap<i16, (i16, i16)>,
}

impl Conn {
    pub fn connect(addr: &str, timeout: Duration) -> Result<Conn, CliError> {
        let unreachable = |why: String| {
            CliError::unreachable(format!(
                "cannot reach broker {addr}: {why} (is it running? set --brokers or SLUICE_BROKERS)"
            ))
        };
        let addrs: Vec<_> = addr
            .to_socket_addrs()
            .map_err(|e| unreachable(e.to_string()))?
            .collect();
        let mut last = String::from("no address");
        let mut stream = None;
        for a in addrs {
            match TcpStream::connect_timeout(&a, timeout) {
                Ok(st) => {
                    stream = Some(st);
                    break;
                }
                Err(e) => last = e.to_string(),
            }
        }
        let stream = stream.ok_or_else(|| unreachable(last))?;
        stream.set_read_timeout(Some(timeout)).ok();
        stream.set_write_timeout(Some(timeout)).ok();
        stream.set_nodelay(true).ok();
        let mut conn = Conn {
            stream,
            addr: addr.to_string(),
            next_id: 1,
            versions: BTreeMap::new(),
        };
        conn.negotiate()?;
        Ok(conn)
    }

    /// ApiVersions v3, or v0 if the broker does not speak v3.
    fn negotiate(&mut self) -> Result<(), CliError> {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(s(CLIENT_ID))
            .with_client_software_version(s(env!("CARGO_PKG_VERSION")));
        let mut resp: ApiVersionsResponse = self.call_at(&req, 3)?;
        if resp.error_code == ErrorCode::UnsupportedVersion.code() {
            resp = self.call_at(&ApiVersionsRequest::default(), 0)?;
        }
        if let Some(e) = CliError::kafka_opt(resp.error_code, None, "ApiVersions") {
            return Err(e);
        }
        self.versions = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(())
    }

    /// The version to send `R` at: the highest both sides know, at most `cap`.
    pub fn version_for<R: Request>(&self, cap: i16) -> Result<i16, CliError> {
        let name = ApiKey::try_from(R::KEY)
            .map(|k| format!("{k:?}"))
            .unwrap_or_else(|_| R::KEY.to_string());
        let Some(&(min, max)) = self.versions.get(&R::KEY) else {
            return Err(CliError::unsupported(format!(
                "broker {} does not support the {name} API (key {})",
                self.addr,
                R::KEY
            )));
        };
        let v = max.min(cap).min(R::VERSIONS.max);
        if v < min || v < R::VERSIONS.min {
            return Err(CliError::unsupported(format!(
                "broker {} supports {name} v{min}-v{max}, this client v{}-v{}",
                self.addr,
                R::VERSIONS.min,
                cap.min(R::VERSIONS.max)
            )));
        }
        Ok(v)
    }

    pub fn supports<R: Request>(&self) -> bool {
        self.versions.contains_key(&R::KEY)
    }

    /// Send `req` at the best version up to `cap` and wait for its answer.
    pub fn call<R: Request>(&mut self, req: &R, cap: i16) -> Result<R::Response, CliError> {
        let v = self.version_for::<R>(cap)?;
        self.call_at(req, v)
    }

    pub fn call_at<R: Request>(&mut self, req: &R, version: i16) -> Result<R::Response, CliError> {
        let key = ApiKey::try_from(R::KEY).map_err(|_| CliError::other("unknown api key"))?;
        let id = self.next_id;
        self.next_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(id)
            .with_client_id(Some(s(CLIENT_ID)));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, key.request_header_version(version))
            .and_then(|_| req.encode(&mut body, version))
            .map_err(|e| CliError::other(format!("encoding {key:?} v{version}: {e}")))?;
        let mut frame = Vec::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        let io = |e: std::io::Error| {
            CliError::unreachable(format!("broker {}: {key:?} failed: {e}", self.addr))
        };
        self.stream.write_all(&frame).map_err(io)?;
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).map_err(io)?;
        let n = i32::from_be_bytes(len);
        if !(0..=256 << 20).contains(&n) {
            return Err(CliError::other(format!(
                "broker {}: bad frame length {n}",
                self.addr
            )));
        }
        let mut buf = vec![0u8; n as usize];
        self.stream.read_exact(&mut buf).map_err(io)?;
        let mut bytes = Bytes::from(buf);
        let h = ResponseHeader::decode(&mut bytes, key.response_header_version(version))
            .map_err(|e| CliError::other(format!("decoding {key:?} header: {e}")))?;
        if h.correlation_id != id {
            return Err(CliError::other(format!(
                "broker {}: answer to request {} where {id} was expected",
                self.addr, h.correlation_id
            )));
        }
        let resp = R::Response::decode(&mut bytes, version)
            .map_err(|e| CliError::other(format!("decoding {key:?} v{version}: {e}")))?;
        if bytes.has_remaining() {
            // Unknown trailing bytes: tolerated (a newer broker), nothing to do.
        }
        Ok(resp)
    }
}

/// The cluster as one client sees it: the bootstrap connection, the brokers of the last
/// Metadata answer and a connection per node, opened on first use.
pub struct Client {
    pub timeout: Duration,
    bootstrap: Conn,
    brokers: BTreeMap<i32, String>,
    controller: i32,
    nodes: HashMap<i32, Conn>,
}

/// What the CLI needs of one topic's metadata.
#[derive(Debug, Clone)]
pub struct TopicInfo {
    pub name: String,
    pub id: String,
    pub internal: bool,
    /// (partition, leader node, replicas, isr)
    pub partitions: Vec<(i32, i32, Vec<i32>, Vec<i32>)>,
}

impl Client {
    /// Connect to the first of the comma-separated bootstrap brokers that answers.
    pub fn connect(brokers: &str, timeout: Duration) -> Result<Client, CliError> {
        let mut last = None;
        for b in brokers.split(',').map(str::trim).filter(|b| !b.is_empty()) {
            match Conn::connect(b, timeout) {
                Ok(conn) => {
                    let mut c = Client {
                        timeout,
                        bootstrap: conn,
                        brokers: BTreeMap::new(),
                        controller: -1,
                        nodes: HashMap::new(),
                    };
                    c.metadata(Some(&[]))?;
                    return Ok(c);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| CliError::usage("--brokers is empty")))
    }

    pub fn bootstrap(&mut self) -> &mut Conn {
        &mut self.bootstrap
    }

    pub fn broker_list(&self) -> &BTreeMap<i32, String> {
        &self.brokers
    }

    pub fn controller_id(&self) -> i32 {
        self.controller
    }

    /// Metadata of `topics` (None: every topic; Some(&[]): none, brokers only).
    pub fn metadata(&mut self, topics: Option<&[String]>) -> Result<MetadataResponse, CliError> {
        let req = MetadataRequest::default()
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t.clone()))))
                    .collect()
            }))
            .with_allow_auto_topic_creation(false);
        let resp = self.bootstrap.call(&req, 12)?;
        self.brokers = resp
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
            .collect();
        self.controller = resp.controller_id.0;
        Ok(resp)
    }

    /// The topics named (or all), checked: an unknown one is a not-found error.
    pub fn topics(&mut self, names: Option<&[String]>) -> Result<Vec<TopicInfo>, CliError> {
        let md = self.metadata(names)?;
        let mut out = Vec::new();
        for t in md.topics {
            let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            if let Some(e) = CliError::kafka_opt(t.error_code, None, &format!("topic {name}")) {
                return Err(e);
            }
            let mut partitions: Vec<_> = t
                .partitions
                .iter()
                .map(|p| {
                    (
                        p.partition_index,
                        p.leader_id.0,
                        p.replica_nodes.iter().map(|b| b.0).collect(),
                        p.isr_nodes.iter().map(|b| b.0).collect(),
                    )
                })
                .collect();
            partitions.sort_by_key(|p: &(i32, i32, Vec<i32>, Vec<i32>)| p.0);
            out.push(TopicInfo {
                name,
                id: t.topic_id.to_string(),
                internal: t.is_internal,
                partitions,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// A connection to node `id` (the bootstrap one when it is that node).
    pub fn node(&mut self, id: i32) -> Result<&mut Conn, CliError> {
        let Some(addr) = self.brokers.get(&id).cloned() else {
            return Ok(&mut self.bootstrap);
        };
        if addr == self.bootstrap.addr || self.brokers.len() == 1 {
            return Ok(&mut self.bootstrap);
        }
        if !self.nodes.contains_key(&id) {
            let c = Conn::connect(&addr, self.timeout)?;
            self.nodes.insert(id, c);
        }
        Ok(self.nodes.get_mut(&id).expect("inserted above"))
    }

    /// Every broker's node id.
    pub fn node_ids(&self) -> Vec<i32> {
        if self.brokers.is_empty() {
            vec![-1]
        } else {
            self.brokers.keys().copied().collect()
        }
    }

    /// The controller (topic changes go there).
    pub fn controller(&mut self) -> Result<&mut Conn, CliError> {
        let id = self.controller;
        self.node(id)
    }

    /// The coordinator of a group (key_type 0) — share groups too.
    pub fn coordinator(&mut self, group: &str) -> Result<&mut Conn, CliError> {
        let req = FindCoordinatorRequest::default()
            .with_key(s(group))
            .with_key_type(0);
        let mut tries = 0;
        loop {
            let resp = self.bootstrap.call(&req, 3)?;
            if resp.error_code == ErrorCode::CoordinatorNotAvailable.code() && tries < 20 {
                tries += 1;
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            if let Some(e) = CliError::kafka_opt(
                resp.error_code,
                resp.error_message.as_deref(),
                &format!("finding the coordinator of group {group}"),
            ) {
                return Err(e);
            }
            let id = resp.node_id.0;
            self.brokers
                .entry(id)
                .or_insert_with(|| format!("{}:{}", resp.host.as_str(), resp.port));
            return self.node(id);
        }
    }

    /// ListOffsets for `ts` (LATEST, EARLIEST or a timestamp in ms) of every partition
    /// given, each asked of its leader: {(topic, partition): offset} (-1 when no record
    /// is at or after the timestamp).
    pub fn list_offsets(
        &mut self,
        parts: &[(String, i32)],
        ts: i64,
    ) -> Result<BTreeMap<(String, i32), i64>, CliError> {
        let mut leaders: BTreeMap<i32, BTreeMap<String, Vec<i32>>> = BTreeMap::new();
        let topics: Vec<String> = {
            let mut t: Vec<String> = parts.iter().map(|(t, _)| t.clone()).collect();
            t.sort();
            t.dedup();
            t
        };
        if topics.is_empty() {
            return Ok(BTreeMap::new());
        }
        let infos = self.topics(Some(&topics))?;
        let leader_of: HashMap<(&str, i32), i32> = infos
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |p| ((t.name.as_str(), p.0), p.1))
            })
            .collect();
        for (t, p) in parts {
            let Some(&leader) = leader_of.get(&(t.as_str(), *p)) else {
                return Err(CliError::not_found(format!(
                    "partition {t}-{p} does not exist (UNKNOWN_TOPIC_OR_PARTITION)"
                )));
            };
            leaders
                .entry(leader)
                .or_default()
                .entry(t.clone())
                .or_default()
                .push(*p);
        }
        let mut out = BTreeMap::new();
        for (leader, topics) in leaders {
            let req = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(
                    topics
                        .iter()
                        .map(|(t, ps)| {
                            ListOffsetsTopic::default()
                                .with_name(topic_name(t.clone()))
                                .with_partitions(
                                    ps.iter()
                                        .map(|&p| {
                                            ListOffsetsPartition::default()
                                                .with_partition_index(p)
                                                .with_current_leader_epoch(-1)
                                                .with_timestamp(ts)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                );
            let resp = self.node(leader)?.call(&req, 7)?;
            for t in resp.topics {
                for p in t.partitions {
                    let what = format!("offsets of {}-{}", t.name.0.as_str(), p.partition_index);
                    if let Some(e) = CliError::kafka_opt(p.error_code, None, &what) {
                        return Err(e);
                    }
                    out.insert((t.name.0.to_string(), p.partition_index), p.offset);
                }
            }
        }
        Ok(out)
    }
}
