//! One client connection: a reader that cuts frames and starts a task per request
//! (requests are pipelined), and a writer that sends responses strictly in request
//! order. At most `max_inflight_requests` requests are in flight; past that the
//! reader stops reading and TCP pushes back on the client. A Produce frame takes
//! produce credit (`net::credit`) before its body is read; without credit the
//! reader waits, and TCP pushes back the same way; any other frame over
//! `UNCREDITED_FRAME_BYTES` takes credit to be read, so that what a connection holds
//! outside the budget is small. A connection with no request for
//! `idle_connection_timeout_ms` is closed, and so is one whose request has not all
//! arrived `request_read_timeout_ms` after its first byte (a byte-a-second client).
//! Closing lines are logged at most once a second (`metrics::log_limit`).

use std::cell::Cell;
use std::os::fd::{AsRawFd, FromRawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use futures_lite::AsyncWriteExt;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::TcpStream;
use glommio::task::JoinHandle;
use kafka_protocol::messages::ApiKey;
use tracing::{debug, info, warn};

use super::credit::{ConnCredit, CreditGuard};
use super::recv::ReadNow;
use super::send::SendStats;
use super::Net;
use crate::metrics::log_limit::LogLimit;
use crate::protocol::{self, ProtocolError, Reply};

type Pending = JoinHandle<Result<Reply, ProtocolError>>;

/// Read buffer growth step.
const READ_CHUNK: usize = 64 * 1024;
/// The largest non-Produce frame read without taking credit: what a connection can
/// hold outside the memory budget while its request trickles in.
const UNCREDITED_FRAME_BYTES: usize = 8 * 1024;
/// Bytes per second a request of any size may take to arrive beyond
/// `request_read_timeout_ms` (a second per MB).
const MIN_REQUEST_BYTES_PER_SEC: u64 = 1_000_000;

/// "closing connection" lines, whatever the reason: a client can cause them at any rate.
static CLOSING_LOG: LogLimit = LogLimit::per_second();
/// "authentication failed" lines.
static AUTH_LOG: LogLimit = LogLimit::per_second();

/// The principal of a connection without SASL (Kafka's name for it).
const ANONYMOUS: &str = "User:ANONYMOUS";

/// Serve one accepted connection of listener `listener` (an index in
/// `BrokerConfig::endpoints`) until it closes.
pub async fn run(net: Rc<Net>, mut stream: TcpStream, listener: usize) {
    let peer = stream.peer_addr().ok();
    let _ = stream.set_nodelay(true);
    let mut conn = protocol::Conn {
        peer: peer.map(|a| a.ip()),
        host: peer.map_or_else(String::new, |a| a.ip().to_string()).into(),
        listener,
        principal: ANONYMOUS.into(),
        arrivals: Rc::default(),
    };
    let tls = match &net.tls {
        Some(source) if net.config.endpoints[listener].protocol.tls() => {
            match secure(&net, source, &mut stream, listener).await {
                Ok((tls, principal)) => {
                    conn.principal = principal;
                    Some(Rc::new(std::cell::RefCell::new(tls)))
                }
                Err(reason) => {
                    let m = &net.metrics.protocol_errors;
                    m.set(m.get() + 1);
                    if let Some(held_back) = CLOSING_LOG.admit() {
                        warn!(?peer, held_back, "closing connection: {reason}");
                    }
                    return;
                }
            }
        }
        _ => None,
    };
    let Some(writer) = dup_stream(&stream) else {
        return;
    };
    // A client that stops reading its responses for this long is closed: its queued
    // responses would otherwise hold fetch budget and deleted segments for ever.
    if let Err(e) = writer.set_write_timeout(net.config.idle_connection_timeout()) {
        warn!(?peer, "cannot set the write timeout: {e}");
    }
    match tls {
        Some(tls) => {
            let reader = super::tls::TlsReader::new(tls.clone(), stream);
            let writer = super::tls::TlsWriter::new(tls, writer);
            serve(net, reader, writer, conn).await
        }
        None => {
            if let Err(e) = super::send::set_nonblocking(&writer) {
                warn!(?peer, "cannot make socket non-blocking: {e}");
                return;
            }
            serve(net, stream, writer, conn).await
        }
    }
}

/// The TLS handshake of a connection to a TLS listener, and its principal: on an SSL
/// listener, the subject of the client's certificate (mutual TLS) mapped by
/// `ssl_principal_mapping_rules`, as in Kafka; `User:ANONYMOUS` without one. On
/// SASL_SSL the principal is SASL's, set when the client authenticates.
async fn secure(
    net: &Net,
    source: &crate::net::certs::TlsSource,
    stream: &mut TcpStream,
    listener: usize,
) -> Result<(rustls::ServerConnection, Rc<str>), String> {
    let limit = Duration::from_millis(net.config.tls_handshake_timeout_ms.max(1));
    let tls = super::tls::handshake(&source.config(), stream, limit).await?;
    let cert = tls.peer_certificates().and_then(|chain| chain.first());
    let principal = match cert {
        Some(cert) if !net.config.endpoints[listener].protocol.sasl() => {
            let dn = super::x500::subject_name(cert)?;
            let name = net.config.principal_rules.name(&dn).ok_or_else(|| {
                format!(
                    "no ssl_principal_mapping_rules rule applies to the client certificate {dn:?}"
                )
            })?;
            format!("User:{name}").into()
        }
        _ => ANONYMOUS.into(),
    };
    Ok((tls, principal))
}

/// The writer's own handle on the socket: a dup of the fd, so reads and writes
/// proceed independently without a lock around one stream.
fn dup_stream(stream: &TcpStream) -> Option<TcpStream> {
    // SAFETY: `dup` returns a new descriptor (or -1, checked) that nothing else owns;
    // the TcpStream built from it becomes its only owner and closes it on drop.
    unsafe {
        let fd = libc::dup(stream.as_raw_fd());
        if fd < 0 {
            warn!(
                peer = ?stream.peer_addr().ok(),
                "cannot dup socket: {}",
                std::io::Error::last_os_error()
            );
            return None;
        }
        Some(TcpStream::from_raw_fd(fd))
    }
}

/// Read requests and write their responses until the connection ends.
async fn serve<S: ReadNow, W: Sink + 'static>(
    net: Rc<Net>,
    stream: S,
    writer: W,
    conn: protocol::Conn,
) {
    let peer = conn.peer;
    let (tx, rx) = local_channel::new_bounded::<Pending>(net.config.max_inflight_requests);
    let writer = glommio::spawn_local(write_loop(net.clone(), writer, rx));
    if let Err(reason) = read_loop(&net, stream, tx, Rc::new(conn)).await {
        net.metrics
            .protocol_errors
            .set(net.metrics.protocol_errors.get() + 1);
        if let Some(held_back) = CLOSING_LOG.admit() {
            warn!(?peer, held_back, "closing connection: {reason}");
        }
    }
    writer.await;
    debug!(?peer, "connection closed");
}

/// Cut frames off the socket and start their handlers, until EOF, shutdown, idle
/// timeout or a protocol error. Dropping `tx` lets the writer finish the queued
/// responses.
async fn read_loop<S: ReadNow>(
    net: &Rc<Net>,
    stream: S,
    tx: LocalSender<Pending>,
    conn: Rc<protocol::Conn>,
) -> Result<(), String> {
    let sasl = net.config.endpoints[conn.listener].protocol.sasl();
    let lifetime = net.config.connections_max_reauth_ms;
    let mut r = Reader {
        net,
        auth: sasl.then(|| protocol::sasl::Authenticator::with_session_lifetime(lifetime)),
        session_ends: None,
        reauthenticating: false,
        stream,
        buf: BytesMut::new(),
        conn_credit: ConnCredit::new(),
        credit: None,
        busy: Rc::new(Cell::new(0)),
        last_activity: Instant::now(),
        conn,
        front_since: Instant::now(),
    };
    loop {
        while let Some(len) = r.front_frame_len()? {
            if r.front_needs_credit(len) && !r.acquire_credit(len).await {
                return Ok(()); // shutdown
            }
            if r.buf.len() < 4 + len {
                break;
            }
            r.buf.advance(4);
            let frame = r.buf.split_to(len).freeze();
            // What is left came with the last read.
            r.front_since = r.last_activity;
            let cut_at = Instant::now();
            if !r.start_request(frame, cut_at, &tx).await? {
                return Ok(());
            }
        }
        if !r.fill().await? {
            return Ok(());
        }
    }
}

/// The reading half of a connection.
struct Reader<'a, S> {
    net: &'a Rc<Net>,
    /// Until a SASL listener's connection has authenticated (and while it
    /// re-authenticates).
    auth: Option<protocol::sasl::Authenticator>,
    /// When the SASL session ends (KIP-368, `connections_max_reauth_ms`).
    session_ends: Option<Instant>,
    /// The authenticator renews an authenticated session (KIP-368).
    reauthenticating: bool,
    stream: S,
    /// Bytes read and not yet cut into frames. Empty (no allocation) while idle.
    buf: BytesMut,
    conn_credit: Rc<ConnCredit>,
    /// Credit taken for the Produce frame at the front of `buf` before its body was
    /// read, and how long it waited for it.
    credit: Option<(CreditGuard, Duration)>,
    /// Requests whose handler has not finished (an idle connection has none).
    busy: Rc<Cell<usize>>,
    /// When bytes last arrived.
    last_activity: Instant,
    /// What every request of the connection is told (`protocol::Conn`).
    conn: Rc<protocol::Conn>,
    /// When the first bytes of the frame at the front of `buf` arrived.
    front_since: Instant,
}

impl<S> Drop for Reader<'_, S> {
    /// Long polls waiting for a later request (`protocol::Request::later`) end with it.
    fn drop(&mut self) {
        self.conn.arrivals.stop();
    }
}

/// Why waiting for bytes ended without any.
enum Stop {
    Shutdown,
    Idle,
    Failed(std::io::Error),
}

impl<S: ReadNow> Reader<'_, S> {
    /// Length of the frame at the front of the buffer, once its length is there.
    fn front_frame_len(&self) -> Result<Option<usize>, String> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = i32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        let len = usize::try_from(len).map_err(|_| format!("negative frame length {len}"))?;
        let max_frame = self.net.config.max_frame_bytes;
        if len > max_frame {
            return Err(format!(
                "frame of {len} bytes is over max_frame_bytes ({max_frame})"
            ));
        }
        Ok(Some(len))
    }

    /// Whether the frame at the front (of `len` bytes) must take credit before its
    /// body is read: a Produce, whose credit is held until it is appended, or any
    /// other request larger than a read chunk, whose credit covers only reading it
    /// (so that large requests of any kind cannot pile up in read buffers).
    fn front_needs_credit(&self, len: usize) -> bool {
        self.credit.is_none()
            && self.buf.len() >= 6
            && (len > UNCREDITED_FRAME_BYTES
                || i16::from_be_bytes([self.buf[4], self.buf[5]]) == ApiKey::Produce as i16)
    }

    /// How long the frame at the front may still take to arrive; `None` between
    /// frames or without `request_read_timeout_ms`.
    fn request_time_left(&self) -> Option<Duration> {
        if self.buf.is_empty() {
            return None;
        }
        let base = self.net.config.request_read_timeout()?;
        let len = self.front_frame_len().ok().flatten().unwrap_or(0) as u64;
        let allowed = base + Duration::from_micros(len * 1_000_000 / MIN_REQUEST_BYTES_PER_SEC);
        Some(allowed.saturating_sub(self.front_since.elapsed()))
    }

    /// Wait for credit for a Produce frame of `len` bytes, before reading its body:
    /// while this waits the socket is not read, so TCP pushes back on the producer.
    /// False on shutdown.
    async fn acquire_credit(&mut self, len: usize) -> bool {
        let started = Instant::now();
        let acquire = async { Some(self.net.credit.acquire(&self.conn_credit, 4 + len).await) };
        let stop = async {
            self.net.shutdown.wait().await;
            None
        };
        let Some((guard, waited)) = futures_lite::future::or(acquire, stop).await else {
            return false;
        };
        let waited = if waited {
            let m = &self.net.metrics.produce_credit_waits;
            m.set(m.get() + 1);
            started.elapsed()
        } else {
            Duration::ZERO
        };
        self.credit = Some((guard, waited));
        true
    }

    /// Start the handler of one request and queue it for the writer. The request's
    /// credit travels with its task and returns when the handler is done (append and
    /// sync included) or dropped. False when the writer has stopped.
    async fn start_request(
        &mut self,
        frame: Bytes,
        cut_at: Instant,
        tx: &LocalSender<Pending>,
    ) -> Result<bool, String> {
        if let Some(ends) = self.session_ends.filter(|_| self.auth.is_none()) {
            if !self.session_goes_on(&frame, ends)? {
                return Ok(false);
            }
        }
        if self.auth.is_some() {
            if let Some(go_on) = self.authenticate(&frame, tx).await {
                return Ok(go_on);
            }
        }
        let start = protocol::peek_start(&frame).map_err(|e| e.0)?;
        let is_produce = start.api_key == ApiKey::Produce as i16;
        // The credit of a large non-Produce request covered only reading it.
        let credit = self.credit.take().filter(|_| is_produce);
        let mut throttle = credit.as_ref().map(|c| c.1).unwrap_or_default();
        let mut mute = Duration::ZERO;
        if is_produce {
            let ms = self.produce_throttle_ms(&frame);
            mute = Duration::from_millis(ms);
            throttle = throttle.max(mute);
        }
        let throttle_ms = i32::try_from(throttle.as_millis()).unwrap_or(i32::MAX);
        let seq = self.conn.arrivals.arrived();
        let task = match protocol::precheck(&start).map_err(|e| e.0)? {
            Some(immediate) => glommio::spawn_local(async move { Ok(Reply::Frame(immediate)) }),
            None => {
                let busy = Busy::new(&self.busy);
                let net = self.net.clone();
                let conn = self.conn.clone();
                glommio::spawn_local(async move {
                    let _busy = busy;
                    let _credit = credit;
                    protocol::handle(&net.protocol, frame, throttle_ms, cut_at, &conn, seq).await
                })
            }
        };
        if tx.send(task.detach()).await.is_err() {
            return Ok(false); // the writer stopped (it logged why)
        }
        if !mute.is_zero() {
            // KIP-219: over its quota, the client is answered at once and its
            // connection is not read for the throttle time.
            return Ok(self.net.shutdown.sleep(mute).await);
        }
        Ok(true)
    }

    /// KIP-368 on an authenticated connection whose session ends at `ends`: a
    /// SaslHandshake starts a re-authentication; any other request after the end
    /// closes the connection (false), as Kafka does.
    fn session_goes_on(&mut self, frame: &Bytes, ends: Instant) -> Result<bool, String> {
        let start = protocol::peek_start(frame).map_err(|e| e.0)?;
        if start.api_key == ApiKey::SaslHandshake as i16 {
            let lifetime = self.net.config.connections_max_reauth_ms;
            self.auth = Some(protocol::sasl::Authenticator::with_session_lifetime(
                lifetime,
            ));
            self.reauthenticating = true;
            return Ok(true);
        }
        if Instant::now() < ends {
            return Ok(true);
        }
        let m = &self.net.metrics.sasl_sessions_expired;
        m.set(m.get() + 1);
        if let Some(held_back) = AUTH_LOG.admit() {
            info!(peer = ?self.conn.peer, principal = %self.conn.principal, held_back,
                "SASL session expired without re-authentication (connections_max_reauth_ms), closing the connection");
        }
        Ok(false)
    }

    /// The connection authenticated as `user` (again, when re-authenticating: then it
    /// must be the same principal). False: it may not go on.
    fn authenticated(&mut self, user: &str) -> bool {
        let principal = format!("User:{user}");
        let lifetime = self.net.config.connections_max_reauth_ms;
        self.session_ends =
            (lifetime > 0).then(|| Instant::now() + Duration::from_millis(lifetime));
        if std::mem::take(&mut self.reauthenticating) {
            if principal != *self.conn.principal {
                warn!(peer = ?self.conn.peer, was = %self.conn.principal, now = %principal,
                    "re-authentication as another principal, closing the connection");
                return false;
            }
            let m = &self.net.metrics.sasl_reauthentications;
            m.set(m.get() + 1);
            debug!(peer = ?self.conn.peer, user, "re-authenticated");
            return true;
        }
        if let Some(ip) = self.conn.peer {
            self.net.auth_failures.borrow_mut().remove(&ip);
        }
        debug!(peer = ?self.conn.peer, user, "authenticated");
        let mut conn = (*self.conn).clone();
        conn.principal = principal.into();
        self.conn = Rc::new(conn);
        true
    }

    /// Give a frame of a connection not yet authenticated to its authenticator; `None`
    /// when it is an ApiVersions request to serve as usual, else whether to go on
    /// reading. A failure is answered (slower for an address that failed before) and
    /// closes the connection.
    async fn authenticate(&mut self, frame: &Bytes, tx: &LocalSender<Pending>) -> Option<bool> {
        use protocol::sasl::Step;
        let users = self.net.protocol.cluster.scram();
        let auth = self.auth.as_mut()?;
        let reply = match auth.handle(&users, frame.clone()) {
            Step::PassThrough => return None,
            Step::Reply(reply) => reply,
            Step::Done { reply, user } => {
                self.auth = None;
                if !self.authenticated(&user) {
                    return Some(false);
                }
                reply
            }
            Step::Fail { reply, reason } => {
                let m = &self.net.metrics.protocol_errors;
                m.set(m.get() + 1);
                let delay = self.net.auth_failed(self.conn.peer);
                if let Some(held_back) = AUTH_LOG.admit() {
                    warn!(peer = ?self.conn.peer, held_back, delay_ms = delay.as_millis() as u64,
                        "SASL authentication failed, closing the connection: {reason}");
                }
                if self.net.shutdown.sleep(delay).await {
                    if let Some(reply) = reply {
                        let task = glommio::spawn_local(async move { Ok(Reply::Frame(reply)) });
                        let _ = tx.send(task.detach()).await;
                    }
                }
                return Some(false);
            }
        };
        let task = glommio::spawn_local(async move { Ok(Reply::Frame(reply)) });
        Some(tx.send(task.detach()).await.is_ok())
    }

    /// Record a Produce frame against the quota of its user and client id (one set with
    /// AlterClientQuotas, by Kafka's precedence, else the broker's `producer_byte_rate`
    /// per client id); the throttle time in ms. Without any quota it looks nothing up.
    fn produce_throttle_ms(&self, frame: &Bytes) -> u64 {
        let cluster = &self.net.protocol.cluster;
        let broker_wide = self.net.config.producer_byte_rate;
        if broker_wide == 0 && !cluster.has_quotas() {
            return 0;
        }
        let client = client_id(frame);
        let principal = &self.conn.principal;
        let user = principal.strip_prefix("User:").unwrap_or(principal);
        let applied = cluster.producer_byte_rate(user, client);
        let (key, rate) = match &applied {
            Some(a) => (a.key.as_ref(), a.bytes_per_s),
            None => (client, broker_wide),
        };
        let now = crate::runtime::now_ms() as u64;
        self.net
            .quotas
            .record(key, 4 + frame.len() as u64, now, rate)
    }

    /// Read more bytes: at least the rest of the current frame. False on EOF,
    /// shutdown or idle timeout.
    async fn fill(&mut self) -> Result<bool, String> {
        let had = self.buf.len();
        if had == 0 {
            return self.fill_idle().await;
        }
        let want = match self.front_frame_len()? {
            Some(len) => 4 + len,
            None => 4,
        };
        // A frame of more than a chunk reads into its own bytes (and holds credit for
        // them): one read as before. A smaller one reads a whole chunk if bytes are
        // there; if not, its rest may trickle in, so it waits holding only the frame.
        let ready = if want >= had + READ_CHUNK {
            None
        } else {
            self.stream.read_now(&mut self.buf, READ_CHUNK).await
        };
        let r = match ready {
            Some(r) => r.map_err(Stop::Failed),
            None => {
                self.room_for_frame(had, want);
                let mut read = ReadCtx::of(self);
                read.wait(self.stream.read_some(&mut self.buf, want - had))
                    .await
            }
        };
        let n = match r {
            Ok(n) => n,
            Err(Stop::Shutdown) => 0,
            Err(Stop::Idle) => {
                self.buf.truncate(had);
                if self.request_time_left() == Some(Duration::ZERO) {
                    return Err(format!(
                        "request not complete {} ms after its first byte ({had} of {want} bytes read; request_read_timeout_ms)",
                        self.front_since.elapsed().as_millis()
                    ));
                }
                return Err(format!(
                    "no bytes for {} ms in the middle of a request ({had} bytes read)",
                    self.last_activity.elapsed().as_millis()
                ));
            }
            Err(Stop::Failed(e)) => {
                self.buf.truncate(had);
                return Err(format!("read failed: {e}"));
            }
        };
        self.buf.truncate(had + n); // a read dropped at shutdown may have left zeros
        if n == 0 {
            if self.net.shutdown.is_fired() {
                return Ok(false);
            }
            return Err(format!(
                "client disconnected in the middle of a request ({had} bytes unread)"
            ));
        }
        self.last_activity = Instant::now();
        Ok(true)
    }

    /// Keeps the `had` bytes read of the front frame in a buffer of the frame's `want`
    /// bytes when the read buffer is larger than that.
    fn room_for_frame(&mut self, had: usize, want: usize) {
        if self.buf.capacity() > want {
            let mut frame = BytesMut::with_capacity(want);
            frame.extend_from_slice(&self.buf[..had]);
            self.buf = frame;
        }
    }

    /// Read with an empty buffer. If bytes are there, read a full chunk; if not, the
    /// connection is idle: release the chunk (an idle connection holds no read
    /// buffer) and wait for bytes without one (`ReadNow::read_idle`).
    async fn fill_idle(&mut self) -> Result<bool, String> {
        let first = self.stream.read_now(&mut self.buf, READ_CHUNK).await;
        let n = match first {
            Some(Ok(n)) => n,
            Some(Err(e)) => return Err(format!("read failed: {e}")),
            None => {
                self.buf = BytesMut::new();
                loop {
                    let mut read = ReadCtx::of(self);
                    match read
                        .wait(self.stream.read_idle(&mut self.buf, READ_CHUNK))
                        .await
                    {
                        Ok(n) => break n,
                        Err(Stop::Shutdown) => return Ok(false),
                        Err(Stop::Failed(e)) => return Err(format!("read failed: {e}")),
                        Err(Stop::Idle) if self.busy.get() > 0 => {
                            // Requests still running (a long poll): not idle.
                            self.last_activity = Instant::now();
                        }
                        Err(Stop::Idle) => {
                            debug!(
                                peer = ?self.conn.peer,
                                timeout_ms = self.net.config.idle_connection_timeout_ms,
                                "closing idle connection: no request within idle_connection_timeout_ms"
                            );
                            return Ok(false);
                        }
                    }
                }
            }
        };
        if n == 0 {
            return Ok(false); // EOF between requests
        }
        self.last_activity = Instant::now();
        self.front_since = self.last_activity;
        Ok(true)
    }
}

/// What a wait for bytes races against: shutdown and the idle timeout.
struct ReadCtx<'a> {
    shutdown: &'a crate::runtime::Signal,
    idle_left: Option<Duration>,
}

impl<'a> ReadCtx<'a> {
    fn of<S: ReadNow>(r: &Reader<'a, S>) -> ReadCtx<'a> {
        let net: &'a Rc<Net> = r.net;
        let idle_left = net
            .config
            .idle_connection_timeout()
            .map(|t| t.saturating_sub(r.last_activity.elapsed()));
        // In the middle of a request, the request's own deadline too: a client that
        // sends a byte now and then must not hold its buffer (or its credit) for ever.
        let idle_left = match (idle_left, r.request_time_left()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        ReadCtx {
            shutdown: &net.shutdown,
            idle_left,
        }
    }

    async fn wait(
        &mut self,
        read: impl std::future::Future<Output = std::io::Result<usize>>,
    ) -> Result<usize, Stop> {
        let read = async { read.await.map_err(Stop::Failed) };
        let stop = async {
            self.shutdown.wait().await;
            Err(Stop::Shutdown)
        };
        let idle_left = self.idle_left;
        let idle = async {
            match idle_left {
                Some(d) => glommio::timer::sleep(d).await,
                None => std::future::pending::<()>().await,
            }
            Err(Stop::Idle)
        };
        futures_lite::future::or(read, futures_lite::future::or(stop, idle)).await
    }
}

/// Counts a request whose handler is running.
struct Busy(Rc<Cell<usize>>);

impl Busy {
    fn new(count: &Rc<Cell<usize>>) -> Busy {
        count.set(count.get() + 1);
        Busy(count.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// The client id of a request header (v1 and v2 both start with a nullable STRING
/// after api key, version and correlation id); "" when absent or malformed.
fn client_id(frame: &[u8]) -> &str {
    let Some(len) = frame.get(8..10).map(|b| i16::from_be_bytes([b[0], b[1]])) else {
        return "";
    };
    let Ok(len) = usize::try_from(len) else {
        return "";
    };
    frame
        .get(10..10 + len)
        .and_then(|b| std::str::from_utf8(b).ok())
        .unwrap_or("")
}

/// Send responses in request order. A response the client has not taken within
/// `idle_connection_timeout_ms` closes the connection: a client that never reads
/// must not hold its queued responses (fetch budget, deleted segments) for ever.
async fn write_loop<W: Sink>(net: Rc<Net>, mut stream: W, rx: LocalReceiver<Pending>) {
    let limit = net.config.idle_connection_timeout();
    while let Some(pending) = rx.recv().await {
        let reply = match pending.await {
            Some(r) => r,
            None => break, // the handler task was cancelled (shutdown)
        };
        match reply {
            Ok(Reply::Frame(bytes)) => {
                if let Err(e) = within(limit, stream.send_frame(&bytes)).await {
                    log_write_failure(stream.peer(), &e);
                    break;
                }
            }
            // `_hold` (fetch budget held by copied bytes) is given back once sent.
            Ok(Reply::Parts(parts, _hold)) => {
                match within(limit, stream.send_parts(&parts)).await {
                    Ok(stats) => net
                        .metrics
                        .record_sendfile(stats.sendfile_bytes, stats.socket_waits),
                    Err(e) => {
                        log_write_failure(stream.peer(), &e);
                        break;
                    }
                }
            }
            Ok(Reply::None) => {}
            Err(e) => {
                if let Some(held_back) = CLOSING_LOG.admit() {
                    warn!(held_back, "closing connection: {e}");
                }
                break;
            }
        }
    }
    // Wake the reader if it is still waiting for bytes.
    stream.close().await;
}

/// Where responses go: the socket itself (plaintext, with `sendfile`) or TLS.
trait Sink {
    async fn send_frame(&mut self, bytes: &[u8]) -> std::io::Result<()>;
    async fn send_parts(&mut self, parts: &[protocol::Part]) -> std::io::Result<SendStats>;
    async fn close(&mut self);
    fn peer(&self) -> Option<std::net::SocketAddr>;
}

impl Sink for TcpStream {
    async fn send_frame(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.write_all(bytes).await
    }

    async fn send_parts(&mut self, parts: &[protocol::Part]) -> std::io::Result<SendStats> {
        super::send::send_parts(self, parts).await
    }

    async fn close(&mut self) {
        let _ = self.shutdown(std::net::Shutdown::Both).await;
    }

    fn peer(&self) -> Option<std::net::SocketAddr> {
        self.peer_addr().ok()
    }
}

impl Sink for super::tls::TlsWriter {
    async fn send_frame(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.write_all(bytes).await
    }

    async fn send_parts(&mut self, parts: &[protocol::Part]) -> std::io::Result<SendStats> {
        super::tls::TlsWriter::send_parts(self, parts).await
    }

    async fn close(&mut self) {
        super::tls::TlsWriter::close(self).await
    }

    fn peer(&self) -> Option<std::net::SocketAddr> {
        self.stream().peer_addr().ok()
    }
}

/// `send`, or a TimedOut error once `limit` has passed. (glommio's own write timeout
/// did not fire on a socket whose peer stopped reading: measured with
/// tests/clients/test_hostile.py.)
async fn within<T>(
    limit: Option<Duration>,
    send: impl std::future::Future<Output = std::io::Result<T>>,
) -> std::io::Result<T> {
    let Some(limit) = limit else {
        return send.await;
    };
    let late = async {
        glommio::timer::sleep(limit).await;
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "the client took none of a response for {} ms (idle_connection_timeout_ms)",
                limit.as_millis()
            ),
        ))
    };
    futures_lite::future::or(send, late).await
}

/// A client that stops reading is worth a line (at most one a second); a peer gone
/// away is not.
fn log_write_failure(peer: Option<std::net::SocketAddr>, e: &std::io::Error) {
    if e.kind() != std::io::ErrorKind::TimedOut {
        debug!("write failed: {e}");
    } else if let Some(held_back) = CLOSING_LOG.admit() {
        warn!(?peer, held_back, "closing connection: {e}");
    }
}
