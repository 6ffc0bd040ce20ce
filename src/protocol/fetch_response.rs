//! The Fetch response, encoded by hand because it is the hot path: the record sets are
//! not bytes in memory but file ranges that the connection sends with `sendfile`, so
//! the response is a list of parts — encoded headers in memory around file ranges.
//! Field for field the same bytes as `kafka-protocol`'s `FetchResponse` (v4–v16; the
//! tests below decode one with the other for every version).

use bytes::{BufMut, Bytes, BytesMut};

pub use crate::partition::Records;
use crate::protocol::frame::Part;

/// Record bytes smaller than this are copied into the header buffer: one copy is
/// cheaper than a separate send.
const INLINE_RECORDS_BYTES: usize = 4096;

#[derive(Debug, Default)]
pub struct PartitionOut {
    pub partition_index: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// `None` is a null array (read_uncommitted); `Some` lists (producer id, first offset).
    pub aborted_transactions: Option<Vec<(i64, i64)>>,
    pub records: Records,
}

#[derive(Debug, Default)]
pub struct TopicOut {
    pub topic: String,
    pub topic_id: [u8; 16],
    pub partitions: Vec<PartitionOut>,
}

/// Builds the parts of one response frame.
struct Writer {
    parts: Vec<Part>,
    cur: BytesMut,
    /// The first memory part, kept mutable until the frame length is patched into it.
    head: Option<BytesMut>,
    flexible: bool,
}

impl Writer {
    fn put_uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.cur.put_u8((v as u8) | 0x80);
            v >>= 7;
        }
        self.cur.put_u8(v as u8);
    }

    /// Array or compact array length; `None` is null.
    fn put_len(&mut self, n: Option<usize>) {
        match (self.flexible, n) {
            (true, None) => self.put_uvarint(0),
            (true, Some(n)) => self.put_uvarint(n as u64 + 1),
            (false, None) => self.cur.put_i32(-1),
            (false, Some(n)) => self.cur.put_i32(n as i32),
        }
    }

    fn put_no_tags(&mut self) {
        if self.flexible {
            self.cur.put_u8(0);
        }
    }

    fn put_string(&mut self, s: &str) {
        if self.flexible {
            self.put_uvarint(s.len() as u64 + 1);
        } else {
            self.cur.put_i16(s.len() as i16);
        }
        self.cur.put_slice(s.as_bytes());
    }

    fn flush_cur(&mut self) {
        if !self.cur.is_empty() {
            let next = BytesMut::with_capacity(256);
            let done = std::mem::replace(&mut self.cur, next);
            if self.parts.is_empty() && self.head.is_none() {
                self.head = Some(done); // parts[0], filled in by `finish`
                self.parts.push(Part::Mem(Bytes::new()));
            } else {
                self.parts.push(Part::Mem(done.freeze()));
            }
        }
    }

    /// Patch the frame length (all bytes after it) into the head and hand out the parts.
    fn finish(mut self) -> Vec<Part> {
        self.flush_cur();
        let mut head = self
            .head
            .take()
            .expect("the response header is never empty");
        let len = head.len() - 4 + self.parts[1..].iter().map(Part::len).sum::<usize>();
        head[..4].copy_from_slice(&(len as i32).to_be_bytes());
        self.parts[0] = Part::Mem(head.freeze());
        self.parts
    }

    fn put_records(&mut self, records: Records) {
        self.put_len(Some(records.len()));
        match records {
            Records::Empty => {}
            Records::Mem(b) if b.len() < INLINE_RECORDS_BYTES => self.cur.put_slice(&b),
            Records::Mem(b) => {
                self.flush_cur();
                self.parts.push(Part::Mem(b));
            }
            Records::Files { ranges, .. } => {
                self.flush_cur();
                self.parts.extend(ranges.into_iter().map(Part::File));
            }
        }
    }
}

/// Encode a Fetch response frame (length prefix, response header, body) of `version`.
pub fn encode(version: i16, correlation_id: i32, topics: Vec<TopicOut>) -> Vec<Part> {
    let flexible = version >= 12;
    let mut w = Writer {
        parts: Vec::new(),
        cur: BytesMut::with_capacity(256),
        head: None,
        flexible,
    };
    w.cur.put_i32(0); // frame length, patched by `finish`
    w.cur.put_i32(correlation_id);
    w.put_no_tags(); // response header v1 from v12
    w.cur.put_i32(0); // throttle_time_ms
    if version >= 7 {
        w.cur.put_i16(0); // error_code
        w.cur.put_i32(0); // session_id: always sessionless (KIP-227)
    }
    w.put_len(Some(topics.len()));
    for t in topics {
        if version <= 12 {
            w.put_string(&t.topic);
        }
        if version >= 13 {
            w.cur.put_slice(&t.topic_id);
        }
        w.put_len(Some(t.partitions.len()));
        for p in t.partitions {
            w.cur.put_i32(p.partition_index);
            w.cur.put_i16(p.error_code);
            w.cur.put_i64(p.high_watermark);
            w.cur.put_i64(p.last_stable_offset);
            if version >= 5 {
                w.cur.put_i64(p.log_start_offset);
            }
            w.put_len(p.aborted_transactions.as_ref().map(Vec::len));
            for (producer_id, first_offset) in p.aborted_transactions.iter().flatten() {
                w.cur.put_i64(*producer_id);
                w.cur.put_i64(*first_offset);
                w.put_no_tags();
            }
            if version >= 11 {
                w.cur.put_i32(-1); // preferred_read_replica
            }
            w.put_records(p.records);
            w.put_no_tags();
        }
        w.put_no_tags();
    }
    w.put_no_tags();
    w.finish()
}

#[cfg(test)]
mod tests {
    use crate::log::SendRange;
    use std::io::Write;
    use std::os::fd::OwnedFd;
    use std::sync::Arc;

    use kafka_protocol::messages::{FetchResponse, ResponseHeader};
    use kafka_protocol::protocol::Decodable;

    use super::*;

    /// Concatenate the parts, reading file ranges from their descriptors.
    fn flatten(parts: &[Part]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in parts {
            match p {
                Part::Mem(b) => out.extend_from_slice(b),
                Part::File(r) => {
                    let file = std::fs::File::from(r.fd.try_clone().unwrap());
                    let mut buf = vec![0; r.len];
                    std::os::unix::fs::FileExt::read_exact_at(&file, &mut buf, r.position).unwrap();
                    out.extend_from_slice(&buf);
                }
            }
        }
        out
    }

    fn sample(file: Arc<OwnedFd>) -> Vec<TopicOut> {
        vec![
            TopicOut {
                topic: "orders".into(),
                topic_id: [7; 16],
                partitions: vec![
                    PartitionOut {
                        partition_index: 0,
                        high_watermark: 10,
                        last_stable_offset: 10,
                        log_start_offset: 2,
                        aborted_transactions: Some(vec![(5, 3)]),
                        records: Records::Files {
                            ranges: vec![
                                SendRange {
                                    fd: file.clone(),
                                    position: 3,
                                    len: 5,
                                },
                                SendRange {
                                    fd: file,
                                    position: 10,
                                    len: 6,
                                },
                            ],
                            len: 11,
                        },
                        ..Default::default()
                    },
                    PartitionOut {
                        partition_index: 1,
                        error_code: 1,
                        high_watermark: -1,
                        last_stable_offset: -1,
                        log_start_offset: -1,
                        ..Default::default()
                    },
                ],
            },
            TopicOut {
                topic: "payments".into(),
                topic_id: [9; 16],
                partitions: vec![PartitionOut {
                    partition_index: 3,
                    records: Records::Mem(Bytes::from(vec![0xab; 5000])),
                    ..Default::default()
                }],
            },
        ]
    }

    #[test]
    fn kafka_protocol_decodes_every_version_as_encoded() {
        let mut tmp = tempfile::tempfile().unwrap();
        tmp.write_all(b"0123456789abcdefghij").unwrap();
        let fd: Arc<OwnedFd> = Arc::new(tmp.into());
        for version in 4..=16i16 {
            let bytes = flatten(&encode(version, 42, sample(fd.clone())));
            let len = i32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
            assert_eq!(len, bytes.len() - 4, "v{version} frame length");
            let mut body = Bytes::from(bytes[4..].to_vec());
            let header_version = if version >= 12 { 1 } else { 0 };
            let header = ResponseHeader::decode(&mut body, header_version).unwrap();
            assert_eq!(header.correlation_id, 42);
            let r = FetchResponse::decode(&mut body, version).unwrap();
            assert!(body.is_empty(), "v{version}: {} trailing bytes", body.len());
            assert_eq!(r.responses.len(), 2);
            let t0 = &r.responses[0];
            if version <= 12 {
                assert_eq!(t0.topic.as_str(), "orders");
            } else {
                assert_eq!(t0.topic_id.as_bytes(), &[7; 16]);
            }
            let p0 = &t0.partitions[0];
            assert_eq!(p0.high_watermark, 10);
            assert_eq!(p0.last_stable_offset, 10);
            assert_eq!(p0.log_start_offset, if version >= 5 { 2 } else { -1 });
            assert_eq!(p0.aborted_transactions.as_ref().unwrap().len(), 1);
            assert_eq!(p0.aborted_transactions.as_ref().unwrap()[0].first_offset, 3);
            assert_eq!(p0.records.as_deref(), Some(&b"34567abcdef"[..]));
            let p1 = &t0.partitions[1];
            assert_eq!((p1.partition_index, p1.error_code), (1, 1));
            assert!(p1.aborted_transactions.is_none());
            assert_eq!(p1.records.as_deref(), Some(&b""[..]));
            let p3 = &r.responses[1].partitions[0];
            assert_eq!(p3.records.as_deref(), Some(&vec![0xab; 5000][..]));
        }
    }
}
