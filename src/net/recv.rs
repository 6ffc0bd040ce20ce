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

    /// For an idle connection: waits until bytes are there, holding no buffer, then
    /// appends at most `n` of them to `buf` (`Ok(0)` is the end of the stream); dropped
    /// while it waits, it leaves `buf` as it was. Here a read of a few bytes on the stack.
    async fn read_idle(&mut self, buf: &mut BytesMut, _n: usize) -> io::Result<usize> {
        let mut small = [0u8; IDLE_READ_BYTES];
        let k = self.read(&mut small).await?;
        buf.extend_from_slice(&small[..k]);
        Ok(k)
    }
}

/// Bytes the default `read_idle` waits on: a request's first bytes, on the stack.
const IDLE_READ_BYTES: usize = 64;

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

    /// The one-byte peek, then a read of up to `n` bytes into `buf`, which grows only
    /// once bytes are there: one recv for the request instead of a few bytes on the
    /// stack and then the rest. (glommio's peek still tries a non-blocking
    /// `MSG_PEEK` before it waits in io_uring.)
    async fn read_idle(&mut self, buf: &mut BytesMut, n: usize) -> io::Result<usize> {
        self.read_some(buf, n).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::BytesMut;
    use futures_lite::AsyncWriteExt;
    use glommio::net::{TcpListener, TcpStream};

    use super::ReadNow;

    /// A connected loopback pair: (the side read, the side written).
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = glommio::spawn_local(async move { TcpStream::connect(addr).await });
        let server = listener.accept().await.expect("accept");
        (server, client.await.expect("connect"))
    }

    #[test]
    fn read_idle_waits_without_a_buffer_then_reads_the_request_at_once() {
        crate::runtime::test_run(|| async {
            let (mut read, mut write) = pair().await;
            let mut buf = BytesMut::new();
            assert!(
                read.read_now(&mut buf, 64).await.is_none(),
                "nothing sent yet"
            );
            let writer = glommio::spawn_local(async move {
                glommio::timer::sleep(Duration::from_millis(20)).await;
                write.write_all(&[7u8; 3000]).await.expect("write");
                write
            });
            let n = read.read_idle(&mut buf, 64 * 1024).await.expect("read");
            assert_eq!(
                n, 3000,
                "the whole request in one read, not its first bytes"
            );
            assert_eq!(&buf[..], &[7u8; 3000][..]);
            drop(writer.await);
            buf.clear();
            assert_eq!(
                read.read_idle(&mut buf, 64).await.expect("eof"),
                0,
                "end of stream"
            );
        });
    }

    #[test]
    fn read_idle_dropped_while_it_waits_leaves_the_buffer_empty_and_loses_nothing() {
        crate::runtime::test_run(|| async {
            let (mut read, mut write) = pair().await;
            let mut buf = BytesMut::new();
            let waited = glommio::timer::timeout(Duration::from_millis(20), async {
                Ok(read.read_idle(&mut buf, 64 * 1024).await)
            })
            .await;
            assert!(waited.is_err(), "no bytes: the wait times out");
            assert!(
                buf.is_empty() && buf.capacity() == 0,
                "no buffer held while idle"
            );
            write.write_all(&[9u8; 3000]).await.expect("write");
            let n = read.read_idle(&mut buf, 64 * 1024).await.expect("read");
            assert_eq!(
                n, 3000,
                "the bytes sent after the cancelled wait, all of them"
            );
            assert_eq!(&buf[..], &[9u8; 3000][..]);
        });
    }
}
