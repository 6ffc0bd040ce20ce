//! The in-process harness: a real broker (`sluice::server::start`, every shard, real files
//! in a temp dir) on free loopback ports inside the test process, and a client that
//! speaks raw Kafka frames through `kafka-protocol`, so a test sees exactly the bytes and
//! the order the broker answers with. Brokers in one test process run one at a time (the
//! io_uring buffers of every executor count against one locked-memory limit).

#![allow(dead_code)] // each test file uses its own part of the harness

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};

use sluice::config::BrokerConfig;
use sluice::server::{self, Running};

/// One broker at a time per test process.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A port nothing listens on right now (the kernel picks it; closed before use).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

pub struct Broker {
    running: Option<Running>,
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub config: BrokerConfig,
    _dir: Option<tempfile::TempDir>,
    _turn: MutexGuard<'static, ()>,
}

impl Broker {
    /// A broker with `shards` shards on fresh ports and a fresh data directory.
    pub fn start(shards: usize) -> Broker {
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        let dir = tempfile::tempdir().expect("a temp dir");
        let mut config = BrokerConfig {
            shards,
            listen: SocketAddr::from(([127, 0, 0, 1], free_port())),
            admin_addr: SocketAddr::from(([127, 0, 0, 1], free_port())),
            data_dir: dir.path().to_path_buf(),
            ..BrokerConfig::default()
        };
        // The listeners are resolved by `BrokerConfig::resolve` for `sluice serve`.
        config
            .resolve_listeners()
            .expect("the default PLAINTEXT listener");
        let mut b = Broker {
            running: None,
            addr: config.listen,
            admin_addr: config.admin_addr,
            config,
            _dir: Some(dir),
            _turn: turn,
        };
        b.boot();
        b
    }

    fn boot(&mut self) {
        let running = server::start(self.config.clone()).expect("the broker starts");
        self.running = Some(running);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(self.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "the broker did not listen in 30 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop gracefully and start again on the same data directory and ports.
    pub fn restart(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop().expect("a clean stop");
        }
        self.boot();
    }

    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }

    /// The Prometheus text of the admin endpoint.
    pub fn metrics(&self) -> String {
        let mut s = TcpStream::connect(self.admin_addr).expect("admin endpoint");
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("request");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("response");
        out
    }

    /// The sum of a metric's samples (every label set) in `/metrics`.
    pub fn metric_sum(&self, name: &str) -> f64 {
        self.metrics()
            .lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = r.stop();
        }
    }
}

/// A client speaking raw Kafka frames.
pub struct Client {
    pub stream: TcpStream,
    next_correlation_id: i32,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        Client {
            stream,
            next_correlation_id: 1,
        }
    }

    /// The bytes of one request frame (length prefix included).
    pub fn frame<R: Request>(&mut self, version: i16, req: &R) -> (i32, Vec<u8>) {
        let cid = self.next_correlation_id;
        self.next_correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(cid)
            .with_client_id(Some(StrBytes::from_static_str("harness")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .expect("header encodes");
        req.encode(&mut body, version).expect("request encodes");
        let mut out = Vec::with_capacity(body.len() + 4);
        out.put_i32(body.len() as i32);
        out.extend_from_slice(&body);
        (cid, out)
    }

    /// Send a request without waiting for its answer; returns its correlation id.
    pub fn send<R: Request>(&mut self, version: i16, req: &R) -> i32 {
        let (cid, bytes) = self.frame(version, req);
        self.stream.write_all(&bytes).expect("send");
        cid
    }

    /// Read one response frame: its correlation id and body.
    pub fn read_frame(&mut self, header_version: i16) -> std::io::Result<(i32, Bytes)> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut buf)?;
        let mut bytes = Bytes::from(buf);
        let header = ResponseHeader::decode(&mut bytes, header_version)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok((header.correlation_id, bytes))
    }

    /// Read the response to a request of type `R` sent at `version`.
    pub fn recv<R: Request>(&mut self, version: i16) -> (i32, R::Response) {
        let key = ApiKey::try_from(R::KEY).expect("a known api key");
        let (cid, mut body) = self
            .read_frame(key.response_header_version(version))
            .expect("a response");
        let resp = R::Response::decode(&mut body, version).expect("the response decodes");
        assert!(!body.has_remaining(), "{key:?} v{version}: trailing bytes");
        (cid, resp)
    }

    /// Send a request and wait for its response.
    pub fn call<R: Request>(&mut self, version: i16, req: &R) -> R::Response {
        let cid = self.send(version, req);
        let (got, resp) = self.recv::<R>(version);
        assert_eq!(got, cid, "the response answers the request");
        resp
    }

    /// True when the broker closed the connection (EOF or reset) within `wait`; false
    /// when it is still open (nothing arrived) or sent bytes.
    pub fn closed_within(&mut self, wait: Duration) -> bool {
        self.stream.set_read_timeout(Some(wait)).expect("timeout");
        let mut b = [0u8; 1];
        match self.stream.read(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        }
    }
}
