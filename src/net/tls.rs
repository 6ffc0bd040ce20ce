//! TLS on the SSL and SASL_SSL listeners, with rustls (ring provider; TLS 1.2 and 1.3).
//!
//! A connection's handshake runs on its own task with a deadline
//! (`tls_handshake_timeout_ms`): a plaintext client (its first bytes are no TLS
//! record) fails at once, a silent one at the deadline; either is closed with a log
//! line and no shard waits on it. After the handshake the reading and the writing half
//! of the connection each have their own descriptor, as on a plaintext connection,
//! and share the one `rustls::ServerConnection` through a `RefCell` that neither
//! holds across an await. There is no kernel TLS here, so every byte is copied
//! through user space: fetched file ranges are read (`pread`, page cache) and
//! encrypted in chunks, where a plaintext listener sends them with `sendfile`.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use rustls::{ServerConfig, ServerConnection};

use super::send::{pread, SendStats};
use crate::protocol::Part;

/// Plaintext bytes encrypted before the records are written to the socket: bounds what
/// a connection holds in ciphertext (and a file range in its read buffer).
const CHUNK: usize = 64 * 1024;
/// Ciphertext read from the socket at once.
const READ_BYTES: usize = 32 * 1024;

/// Run the server side of the handshake on `stream`, within `limit`.
pub async fn handshake(
    config: &Arc<ServerConfig>,
    stream: &mut TcpStream,
    limit: Duration,
) -> Result<ServerConnection, String> {
    let mut conn = ServerConnection::new(config.clone()).map_err(|e| format!("TLS: {e}"))?;
    let work = async {
        let mut buf = vec![0u8; READ_BYTES];
        let mut out = Vec::new();
        loop {
            while conn.wants_write() {
                out.clear();
                conn.write_tls(&mut out).map_err(|e| e.to_string())?;
                stream.write_all(&out).await.map_err(|e| e.to_string())?;
            }
            if !conn.is_handshaking() {
                return Ok(());
            }
            let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("the client closed the connection during the TLS handshake".into());
            }
            let mut rest = &buf[..n];
            while !rest.is_empty() {
                conn.read_tls(&mut rest).map_err(|e| e.to_string())?;
                if let Err(e) = conn.process_new_packets() {
                    // Tell the client why (an alert), then give up.
                    out.clear();
                    let _ = conn.write_tls(&mut out);
                    let _ = stream.write_all(&out).await;
                    return Err(format!("TLS handshake failed: {e}"));
                }
            }
        }
    };
    let late = async {
        glommio::timer::sleep(limit).await;
        Err(format!(
            "TLS handshake not done within {} ms (tls_handshake_timeout_ms)",
            limit.as_millis()
        ))
    };
    futures_lite::future::or(work, late).await?;
    // Responses are written in chunks of `CHUNK` and flushed after each.
    conn.set_buffer_limit(None);
    Ok(conn)
}

pub type Shared = Rc<RefCell<ServerConnection>>;

/// The reading half: ciphertext from its descriptor in, plaintext out.
pub struct TlsReader {
    tls: Shared,
    stream: TcpStream,
    buf: Box<[u8]>,
    /// Ciphertext in `buf[start..end]` not yet given to rustls.
    start: usize,
    end: usize,
    eof: bool,
}

impl TlsReader {
    pub fn new(tls: Shared, stream: TcpStream) -> TlsReader {
        TlsReader {
            tls,
            stream,
            buf: vec![0u8; READ_BYTES].into_boxed_slice(),
            start: 0,
            end: 0,
            eof: false,
        }
    }
}

impl AsyncRead for TlsReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        dst: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            {
                let mut conn = this.tls.borrow_mut();
                match conn.reader().read(dst) {
                    Ok(n) => return Poll::Ready(Ok(n)),
                    // A peer that closes without close_notify: EOF all the same.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        return Poll::Ready(Ok(0))
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Poll::Ready(Err(e)),
                }
                if this.eof {
                    return Poll::Ready(Ok(0));
                }
            }
            if this.start == this.end {
                let n = match Pin::new(&mut this.stream).poll_read(cx, &mut this.buf) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(r) => r?,
                };
                if n == 0 {
                    this.eof = true;
                    continue;
                }
                (this.start, this.end) = (0, n);
            }
            let mut conn = this.tls.borrow_mut();
            let mut rest = &this.buf[this.start..this.end];
            let before = rest.len();
            conn.read_tls(&mut rest)?;
            this.start += before - rest.len();
            conn.process_new_packets()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        }
    }
}

/// The writing half: plaintext in, TLS records out on its descriptor.
pub struct TlsWriter {
    tls: Shared,
    stream: TcpStream,
    out: Vec<u8>,
    scratch: Vec<u8>,
}

impl TlsWriter {
    pub fn new(tls: Shared, stream: TcpStream) -> TlsWriter {
        TlsWriter {
            tls,
            stream,
            out: Vec::new(),
            scratch: Vec::new(),
        }
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Encrypt `data` and send it, a chunk at a time.
    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        for chunk in data.chunks(CHUNK) {
            self.tls.borrow_mut().writer().write_all(chunk)?;
            self.flush().await?;
        }
        Ok(())
    }

    /// Send every part: memory as it is, file ranges read into a chunk first.
    pub async fn send_parts(&mut self, parts: &[Part]) -> io::Result<SendStats> {
        for part in parts {
            glommio::yield_if_needed().await;
            match part {
                Part::Mem(b) => self.write_all(b).await?,
                Part::File(r) => {
                    let mut scratch = std::mem::take(&mut self.scratch);
                    scratch.resize(CHUNK.min(r.len), 0);
                    let mut done = 0;
                    while done < r.len {
                        let want = (r.len - done).min(CHUNK);
                        pread(&r.fd, r.position + done as u64, &mut scratch[..want])?;
                        self.write_all(&scratch[..want]).await?;
                        done += want;
                    }
                    self.scratch = scratch;
                }
            }
        }
        Ok(SendStats::default())
    }

    /// Write out every TLS record rustls has ready.
    async fn flush(&mut self) -> io::Result<()> {
        loop {
            self.out.clear();
            {
                let mut conn = self.tls.borrow_mut();
                while conn.wants_write() && self.out.len() < CHUNK {
                    conn.write_tls(&mut self.out)?;
                }
            }
            if self.out.is_empty() {
                return Ok(());
            }
            self.stream.write_all(&self.out).await?;
        }
    }

    /// Say close_notify and shut the socket (which wakes the reading half).
    pub async fn close(&mut self) {
        self.tls.borrow_mut().send_close_notify();
        let _ = self.flush().await;
        let _ = self.stream.shutdown(std::net::Shutdown::Both).await;
    }
}
