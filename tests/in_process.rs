//! The rooms no client test looks into, tested in process: framing, pipelining order,
//! the mesh between shards, and the controller. A real broker (2 shards, real files)
//! runs inside the test process; the client speaks raw Kafka frames (`harness`).

mod harness;

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

use harness::Broker;
use sluice::log::batch::{BatchBuilder, Record};

fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn create_topics(b: &Broker, names: &[&str], partitions: i32) -> CreateTopicsResponse {
    let topics = names
        .iter()
        .map(|n| {
            CreatableTopic::default()
                .with_name(topic_name(n))
                .with_num_partitions(partitions)
                .with_replication_factor(1)
        })
        .collect();
    let req = CreateTopicsRequest::default()
        .with_topics(topics)
        .with_timeout_ms(10_000);
    b.client().call(5, &req)
}

/// One batch of `n` records whose values say which request and record they are.
fn records(request: usize, n: usize) -> Bytes {
    let values: Vec<String> = (0..n)
        .map(|i| format!("request {request} record {i}"))
        .collect();
    let recs: Vec<Record<'_>> = values
        .iter()
        .map(|v| Record {
            value: Some(v.as_bytes()),
            ..Default::default()
        })
        .collect();
    Bytes::from(BatchBuilder::new(1_700_000_000_000).build(&recs))
}

fn produce(topic: &str, partitions: &[i32], request: usize) -> ProduceRequest {
    let data = partitions
        .iter()
        .map(|&p| {
            PartitionProduceData::default()
                .with_index(p)
                .with_records(Some(records(request, 3)))
        })
        .collect();
    ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(data)])
}

fn metadata(topics: &[&str]) -> MetadataRequest {
    MetadataRequest::default().with_topics(Some(
        topics
            .iter()
            .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t))))
            .collect(),
    ))
}

#[test]
fn a_request_sent_a_byte_at_a_time_and_two_requests_in_one_write_are_both_answered() {
    let b = Broker::start(2);
    let mut c = b.client();
    // One ApiVersions request, a byte per write.
    let (cid, bytes) = c.frame(3, &ApiVersionsRequest::default());
    for byte in &bytes {
        c.stream.write_all(&[*byte]).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    let (got, resp) = c.recv::<ApiVersionsRequest>(3);
    assert_eq!(got, cid);
    assert_eq!(resp.error_code, 0);
    assert!(resp
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::Produce as i16));
    // Two requests in one write: both answered, in order.
    let (a, mut first) = c.frame(3, &ApiVersionsRequest::default());
    let (m, second) = c.frame(12, &metadata(&[]));
    first.extend_from_slice(&second);
    c.stream.write_all(&first).unwrap();
    assert_eq!(c.recv::<ApiVersionsRequest>(3).0, a);
    assert_eq!(c.recv::<MetadataRequest>(12).0, m);
}

#[test]
fn a_frame_longer_than_the_limit_or_of_an_unknown_api_closes_only_its_connection() {
    let b = Broker::start(2);
    let mut bystander = b.client();
    let mut oversized = b.client();
    oversized.stream.write_all(&i32::MAX.to_be_bytes()).unwrap();
    assert!(
        oversized.closed_within(Duration::from_secs(10)),
        "an oversized frame closes the connection"
    );
    let mut unknown = b.client();
    let frame = [0, 0, 0, 8, 0x7f, 0x00, 0, 0, 0, 0, 0, 1];
    unknown.stream.write_all(&frame).unwrap();
    assert!(
        unknown.closed_within(Duration::from_secs(10)),
        "an unknown api key closes the connection"
    );
    let resp = bystander.call(3, &ApiVersionsRequest::default());
    assert_eq!(resp.error_code, 0, "other connections are unaffected");
}

#[test]
fn an_api_versions_request_of_a_future_version_gets_the_v0_answer_with_unsupported_version() {
    let b = Broker::start(1);
    let mut c = b.client();
    let (cid, mut bytes) = c.frame(3, &ApiVersionsRequest::default());
    bytes[6..8].copy_from_slice(&99i16.to_be_bytes()); // the version field of the header
    c.stream.write_all(&bytes).unwrap();
    let (got, mut body) = c.read_frame(0).unwrap();
    assert_eq!(got, cid);
    let resp =
        <ApiVersionsResponse as kafka_protocol::protocol::Decodable>::decode(&mut body, 0).unwrap();
    assert_eq!(resp.error_code, 35, "UNSUPPORTED_VERSION");
    assert!(
        !resp.api_keys.is_empty(),
        "with the table, so the client can pick"
    );
}

#[test]
fn pipelined_requests_of_mixed_apis_to_both_shards_are_answered_in_request_order() {
    let b = Broker::start(2);
    let created = create_topics(&b, &["pipelined"], 8);
    assert_eq!(created.topics[0].error_code, 0);
    let mut c = b.client();
    let all: Vec<i32> = (0..8).collect();
    let mut sent = Vec::new();
    for i in 0..300 {
        let cid = match i % 3 {
            0 => c.send(9, &produce("pipelined", &all, i)),
            1 => c.send(12, &metadata(&["pipelined"])),
            _ => c.send(3, &ApiVersionsRequest::default()),
        };
        sent.push((i % 3, cid));
    }
    let mut next_offset = [0i64; 8];
    for (kind, cid) in sent {
        let got = match kind {
            0 => {
                let (got, resp) = c.recv::<ProduceRequest>(9);
                for p in &resp.responses[0].partition_responses {
                    assert_eq!(p.error_code, 0);
                    let slot = &mut next_offset[p.index as usize];
                    assert_eq!(p.base_offset, *slot, "offsets in request order");
                    *slot += 3;
                }
                got
            }
            1 => c.recv::<MetadataRequest>(12).0,
            _ => c.recv::<ApiVersionsRequest>(3).0,
        };
        assert_eq!(got, cid, "responses leave in request order");
    }
    assert!(next_offset.iter().all(|&o| o == 300));
}

#[test]
fn a_produce_to_partitions_of_both_shards_crosses_the_mesh_and_lands_on_every_partition() {
    let b = Broker::start(2);
    create_topics(&b, &["spread"], 4);
    let before = b.metric_sum("sluice_mesh_calls_total{");
    // Connections land on either shard: with 4 partitions over 2 shards, each request
    // has partitions owned by the other shard than its connection's.
    for i in 0..4 {
        let resp = b.client().call(9, &produce("spread", &[0, 1, 2, 3], i));
        let parts = &resp.responses[0].partition_responses;
        assert_eq!(parts.len(), 4);
        for p in parts {
            assert_eq!(p.error_code, 0, "partition {}", p.index);
            assert_eq!(p.base_offset, 3 * i as i64);
        }
    }
    let hops = b.metric_sum("sluice_mesh_calls_total{") - before;
    assert!(
        hops >= 4.0,
        "every request sent its other shard's partitions over the mesh: {hops}"
    );
    let appends = b.metric_sum("sluice_mesh_calls_total{shard=\"0\",message=\"partition.append\"}")
        + b.metric_sum("sluice_mesh_calls_total{shard=\"1\",message=\"partition.append\"}");
    assert!(
        appends >= 4.0,
        "the hops are appends, counted by name: {appends}"
    );
}

#[test]
fn topics_created_at_once_from_many_connections_exist_once_and_survive_a_restart() {
    let mut b = Broker::start(2);
    let names: Vec<String> = (0..12).map(|i| format!("t{i}")).collect();
    let addr = b.addr;
    let handles: Vec<_> = names
        .iter()
        .cloned()
        .map(|n| {
            std::thread::spawn(move || {
                let mut c = harness::Client::connect(addr);
                let req = CreateTopicsRequest::default()
                    .with_topics(vec![
                        CreatableTopic::default()
                            .with_name(topic_name(&n))
                            .with_num_partitions(3)
                            .with_replication_factor(1),
                        CreatableTopic::default()
                            .with_name(topic_name("shared"))
                            .with_num_partitions(1)
                            .with_replication_factor(1),
                    ])
                    .with_timeout_ms(10_000);
                c.call(5, &req)
            })
        })
        .collect();
    let mut shared_created = 0;
    for h in handles {
        let resp = h.join().unwrap();
        assert_eq!(resp.topics[0].error_code, 0);
        match resp.topics[1].error_code {
            0 => shared_created += 1,
            36 => {} // TOPIC_ALREADY_EXISTS
            other => panic!("unexpected code {other}"),
        }
    }
    assert_eq!(
        shared_created, 1,
        "one creation wins, the others are told it exists"
    );
    let ids = |b: &Broker| -> BTreeMap<String, uuid::Uuid> {
        let mut refs: Vec<&str> = names.iter().map(String::as_str).collect();
        refs.push("shared");
        let resp = b.client().call(12, &metadata(&refs));
        resp.topics
            .iter()
            .map(|t| {
                assert_eq!(t.error_code, 0);
                (t.name.as_ref().unwrap().to_string(), t.topic_id)
            })
            .collect()
    };
    let before = ids(&b);
    assert_eq!(before.len(), 13);
    b.restart();
    assert_eq!(ids(&b), before, "the registry is durable, ids and all");
}

#[test]
fn a_deleted_then_recreated_topic_has_a_new_id_and_an_empty_log() {
    let b = Broker::start(2);
    create_topics(&b, &["again"], 2);
    let first = b.client().call(12, &metadata(&["again"])).topics[0].topic_id;
    let resp = b.client().call(9, &produce("again", &[0, 1], 0));
    assert_eq!(resp.responses[0].partition_responses[1].base_offset, 0);
    let del = DeleteTopicsRequest::default()
        .with_topics(vec![
            DeleteTopicState::default().with_name(Some(topic_name("again")))
        ])
        .with_timeout_ms(10_000);
    let deleted = b.client().call(6, &del);
    assert_eq!(deleted.responses[0].error_code, 0);
    create_topics(&b, &["again"], 2);
    let second = b.client().call(12, &metadata(&["again"])).topics[0].topic_id;
    assert_ne!(first, second, "a recreated topic is a new topic");
    let resp = b.client().call(9, &produce("again", &[0, 1], 1));
    for p in &resp.responses[0].partition_responses {
        assert_eq!(p.base_offset, 0, "its log starts empty");
    }
}
