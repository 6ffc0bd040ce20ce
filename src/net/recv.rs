//! Reading a connection's bytes into the spare room of its read buffer.
//!
//! A plain TCP socket is read with `recv(2)` straight into the buffer's unused capacity,
//! and waited on with a one-byte peek. Reading through `AsyncRead` needs an initialised
//! slice, so the buffer had to be zeroed first: the rest of the frame whenever a Produce
//! request had not all arrived, a chunk otherwise, ~5% of the broker's CPU when it
//! receives 100 MB/s of Produce requests (perf/RESULTS.md). TLS decrypts into whatever
//! it is given and keeps that path.

use std::io;
use std::os::fd::AsRawFd;

use bytes::BytesMut;
use futures_lite::{AsyncRead, AsyncReadExt};
use glommio::net::TcpStream;

/// A connection's read side that can be read without waiting.
pub(super) trait ReadNow: AsyncRead + Unpin {
    /// Appends to `buf` what the connection has now, at most `n` bytes; None when
    /// nothing is there yet (`Some(Ok(0))` is the end of the stream).
    async fn read_now(&mut self, buf: &mut BytesMut, n: usize) -> Option<io::Result<usize>> {
        let had = buf.len();
        buf.resize(had + n, 0);
        let r = futures_lite::future::poll_once(self.read(&mut buf[had..])).await;
        let got = match r {
            Some(Ok(k)) => k,
            _ => 0,
        };
        buf.truncate(had + got);
        r
    }

    /// Appends to `buf` at most `n` bytes, waiting until some are there (`Ok(0)` is the
    /// end of the stream). Dropped while it waits, it may leave `n` zeroed bytes at the
    /// end of `buf`: the caller cuts `buf` back to what it had.
    async fn read_some(&mut self, buf: &mut BytesMut, n: usize) -> io::Result<usize> {
        let had = buf.len();
        buf.resize(had + n, 0);
        let r = self.read(&mut buf[had..]).await;
        buf.truncate(had + *r.as_ref().unwrap_or(&0));
        r
    }
}

impl ReadNow for super::tls::TlsReader {}

impl ReadNow for TcpStream {
    async fn read_now(&mut self, buf: &mut BytesMut, n: usize) -> Option<io::Result<usize>> {
        buf.reserve(n);
        let spare = buf.spare_capacity_mut();
        let n = n.min(spare.len());
        // SAFETY: the pointer is to `n` bytes of `buf`'s spare capacity, which `buf` owns
        // and nothing borrows while the call runs; recv writes at most `n` bytes there
        // and does not block (MSG_DONTWAIT).
        let r = unsafe {
            libc::recv(
                self.as_raw_fd(),
                spare.as_mut_ptr().cast(),
                n,
                libc::MSG_DONTWAIT,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => None,
                _ => Some(Err(e)),
            };
        }
        let got = r as usize;
        // SAFETY: recv returned `got` <= `n`: it wrote the first `got` bytes of the spare
        // capacity, so they are initialised.
        unsafe { buf.set_len(buf.len() + got) };
        Some(Ok(got))
    }

    /// Waits with a one-byte peek (an io_uring recv with MSG_PEEK), then reads what is
    /// there into the spare room; dropped while it waits, it leaves `buf` as it was.
    async fn read_some(&mut self, buf: &mut BytesMut, n: usize) -> io::Result<usize> {
        loop {
            self.peek(&mut [0u8; 1]).await?;
            if let Some(r) = self.read_now(buf, n).await {
                return r;
            }
        }
    }
}
