//! The protocol's own cost around the record bytes: decoding a Produce request frame with
//! kafka-protocol the way `protocol::handle` does (request header, then the body; the
//! records blob stays a `Bytes` slice of the frame), and encoding Produce and Fetch
//! responses with `protocol::encode_frame`.
//!
//! cargo bench --bench protocol -- --warm-up-time 1 --measurement-time 3

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, FetchResponse, ProduceRequest, ProduceResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use sluice::log::batch;
use sluice::protocol;

/// librdkafka sends Produce v9 (flexible) to a broker that offers it.
const PRODUCE_VERSION: i16 = 9;
/// Fetch v12: the version librdkafka 2.x sends.
const FETCH_VERSION: i16 = 12;

fn topic(name: &'static str) -> TopicName {
    TopicName(StrBytes::from_static_str(name))
}

/// A Produce request frame (without the length prefix) with one batch of `records`
/// records of `value_len` bytes to each of `partitions` partitions.
fn produce_frame(partitions: i32, records: usize, value_len: usize) -> Bytes {
    let v = vec![0x5au8; value_len];
    let vals: Vec<&[u8]> = (0..records).map(|_| v.as_slice()).collect();
    let blob = Bytes::from(batch::build_batch(1_700_000_000_000, &vals));
    let data = (0..partitions)
        .map(|p| {
            PartitionProduceData::default()
                .with_index(p)
                .with_records(Some(blob.clone()))
        })
        .collect();
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic("bench-topic"))
            .with_partition_data(data)]);
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Produce as i16)
        .with_request_api_version(PRODUCE_VERSION)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("rdkafka")));
    let mut buf = BytesMut::new();
    header
        .encode(
            &mut buf,
            ApiKey::Produce.request_header_version(PRODUCE_VERSION),
        )
        .unwrap();
    req.encode(&mut buf, PRODUCE_VERSION).unwrap();
    buf.freeze()
}

fn decode_produce(frame: &Bytes) -> usize {
    let mut f = frame.clone();
    let start = protocol::peek_start(&f).unwrap();
    let header = RequestHeader::decode(
        &mut f,
        ApiKey::Produce.request_header_version(start.version),
    )
    .unwrap();
    let req = ProduceRequest::decode(&mut f, header.request_api_version).unwrap();
    req.topic_data[0].partition_data.len()
}

fn frame_decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("protocol_decode_produce");
    for (name, partitions, records, value_len) in [
        ("1p_x_990x1000B", 1, 990, 1000),
        ("1p_x_10x100B", 1, 10, 100),
        ("100p_x_10x100B", 100, 10, 100),
    ] {
        // No throughput figure: the records blob is sliced, not read, so bytes per second
        // would only say how big the frame was.
        let frame = produce_frame(partitions, records, value_len);
        g.bench_with_input(BenchmarkId::new("frame", name), &frame, |b, f| {
            b.iter(|| decode_produce(black_box(f)))
        });
    }
    g.finish();
}

fn produce_response(partitions: i32) -> ProduceResponse {
    let parts = (0..partitions)
        .map(|p| {
            PartitionProduceResponse::default()
                .with_index(p)
                .with_base_offset(1_000_000 + i64::from(p))
                .with_log_append_time_ms(-1)
                .with_log_start_offset(0)
        })
        .collect();
    ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
        .with_name(topic("bench-topic"))
        .with_partition_responses(parts)])
}

fn fetch_response(partitions: i32, records: &Bytes) -> FetchResponse {
    let parts = (0..partitions)
        .map(|p| {
            PartitionData::default()
                .with_partition_index(p)
                .with_high_watermark(2_000_000)
                .with_last_stable_offset(2_000_000)
                .with_log_start_offset(0)
                .with_records(Some(records.clone()))
        })
        .collect();
    FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
        .with_topic(topic("bench-topic"))
        .with_partitions(parts)])
}

fn response_encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("protocol_encode_response");
    for partitions in [1, 100] {
        let resp = produce_response(partitions);
        g.bench_function(BenchmarkId::new("produce", format!("{partitions}p")), |b| {
            b.iter(|| {
                protocol::encode_frame(ApiKey::Produce, PRODUCE_VERSION, 7, black_box(&resp))
                    .unwrap()
                    .len()
            })
        });
    }
    let v = vec![0x5au8; 1000];
    let vals: Vec<&[u8]> = (0..990).map(|_| v.as_slice()).collect();
    let blob = Bytes::from(batch::build_batch(1_700_000_000_000, &vals));
    for partitions in [1, 8] {
        let resp = fetch_response(partitions, &blob);
        g.throughput(Throughput::Bytes(blob.len() as u64 * partitions as u64));
        g.bench_function(
            BenchmarkId::new("fetch_990x1000B", format!("{partitions}p")),
            |b| {
                b.iter(|| {
                    protocol::encode_frame(ApiKey::Fetch, FETCH_VERSION, 7, black_box(&resp))
                        .unwrap()
                        .len()
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, frame_decode, response_encode);
criterion_main!(benches);
