//! Sending a response made of parts: encoded headers in memory, and record bytes as
//! ranges of segment files sent with `sendfile` straight from the page cache, never
//! through a user-space buffer.
//!
//! glommio 0.9 exposes neither sendfile nor a "socket writable" wait, so the socket
//! is non-blocking and every send is tried at once. When the socket is full
//! (EAGAIN), the next byte goes through glommio's own `write_all`, which parks the
//! task on io_uring until the socket drains (the shard keeps serving everything
//! else meanwhile); then sendfile resumes. The only bytes copied through user space
//! are those single bytes, one per wait (counted in `fetch_socket_waits`).
//!
//! Resources per response: one `sendmsg` per run of memory parts (gathered, with
//! MSG_MORE while more follows) and one `sendfile` per file range in the common case
//! of a socket with room; no allocation.

use std::io;
use std::os::fd::AsRawFd;

use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;

use crate::log::SendRange;
use crate::protocol::Part;

/// iovecs per `sendmsg` (well under IOV_MAX).
const MAX_IOVECS: usize = 64;
/// Bytes per `sendfile` call (Linux caps one call just under 2 GiB).
const MAX_SENDFILE_BYTES: usize = 1 << 30;

/// What one response cost, for the metrics.
#[derive(Debug, Default, Clone, Copy)]
pub struct SendStats {
    pub sendfile_bytes: usize,
    /// Times the socket was full and the send waited for it to drain.
    pub socket_waits: u64,
}

/// Make the socket non-blocking, so `sendfile` and `sendmsg` never block the shard's
/// thread. glommio's own reads and writes try non-blocking syscalls first anyway.
pub fn set_nonblocking(stream: &TcpStream) -> io::Result<()> {
    let fd = stream.as_raw_fd();
    // SAFETY: fcntl on a descriptor the stream owns; no memory is passed.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Send every part, in order.
pub async fn send_parts(stream: &mut TcpStream, parts: &[Part]) -> io::Result<SendStats> {
    let mut stats = SendStats::default();
    let mut i = 0;
    while i < parts.len() {
        // A large response to a fast client must not hold the shard for long.
        glommio::yield_if_needed().await;
        match &parts[i] {
            Part::Mem(_) => {
                let run = parts[i..]
                    .iter()
                    .take_while(|p| matches!(p, Part::Mem(_)))
                    .count();
                let more = i + run < parts.len();
                send_mem(stream, &parts[i..i + run], more, &mut stats).await?;
                i += run;
            }
            Part::File(r) => {
                send_file(stream, r, &mut stats).await?;
                i += 1;
            }
        }
    }
    Ok(stats)
}

/// Send a run of memory parts with gathered `sendmsg` calls (iovecs on the stack).
async fn send_mem(
    stream: &mut TcpStream,
    parts: &[Part],
    more: bool,
    stats: &mut SendStats,
) -> io::Result<()> {
    let bytes = |i: usize| match &parts[i] {
        Part::Mem(b) => &b[..],
        Part::File(_) => &[][..], // not in a memory run
    };
    let (mut idx, mut skip) = (0usize, 0usize); // next part, bytes of it already sent
    while idx < parts.len() {
        if bytes(idx).len() == skip {
            idx += 1;
            skip = 0;
            continue;
        }
        let mut iov = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; MAX_IOVECS];
        let mut n_iov = 0;
        let mut end = idx;
        while end < parts.len() && n_iov < MAX_IOVECS {
            let b = if end == idx {
                &bytes(end)[skip..]
            } else {
                bytes(end)
            };
            if !b.is_empty() {
                iov[n_iov] = libc::iovec {
                    iov_base: b.as_ptr() as *mut libc::c_void,
                    iov_len: b.len(),
                };
                n_iov += 1;
            }
            end += 1;
        }
        let mut flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
        if more || end < parts.len() {
            flags |= libc::MSG_MORE;
        }
        // SAFETY: the first `n_iov` iovecs point into `Bytes` borrowed for this call;
        // the msghdr carries no address and no control data.
        let n = unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = iov.as_mut_ptr();
            msg.msg_iovlen = n_iov;
            libc::sendmsg(stream.as_raw_fd(), &msg, flags)
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => {
                    // Full: let glommio wait for room and send the rest of this part.
                    stats.socket_waits += 1;
                    stream.write_all(&bytes(idx)[skip..]).await?;
                    idx += 1;
                    skip = 0;
                    continue;
                }
                _ => return Err(e),
            }
        }
        let mut n = n as usize;
        while n > 0 {
            let left = bytes(idx).len() - skip;
            if n >= left {
                n -= left;
                idx += 1;
                skip = 0;
            } else {
                skip += n;
                n = 0;
            }
        }
    }
    Ok(())
}

/// Send one file range with `sendfile`.
async fn send_file(stream: &mut TcpStream, r: &SendRange, stats: &mut SendStats) -> io::Result<()> {
    let sock = stream.as_raw_fd();
    let file = r.fd.as_raw_fd();
    let mut offset = r.position as libc::off_t;
    let mut left = r.len;
    while left > 0 {
        // SAFETY: both descriptors are open (the stream's, and the range's `Arc<OwnedFd>`
        // held by `r`); `offset` is a valid, exclusively borrowed off_t.
        let n = unsafe { libc::sendfile(sock, file, &mut offset, left.min(MAX_SENDFILE_BYTES)) };
        if n > 0 {
            left -= n as usize;
            stats.sendfile_bytes += n as usize;
            continue;
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("segment file ended {left} bytes before the fetched range"),
            ));
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => {}
            io::ErrorKind::WouldBlock => {
                stats.socket_waits += 1;
                let byte = read_byte(file, offset as u64)?;
                stream.write_all(&[byte]).await?;
                offset += 1;
                left -= 1;
            }
            _ => return Err(e),
        }
    }
    Ok(())
}

/// One byte of the file: the range was in the page cache when the fetch was read, so
/// this is a cache hit in all but a race with eviction.
fn read_byte(fd: i32, position: u64) -> io::Result<u8> {
    let mut byte = 0u8;
    // SAFETY: reads one byte into a local that outlives the call.
    let n = unsafe {
        libc::pread(
            fd,
            (&mut byte as *mut u8).cast(),
            1,
            position as libc::off_t,
        )
    };
    match n {
        1 => Ok(byte),
        0 => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "segment file ended inside a fetched range",
        )),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Fill `dst` from the file at `position` (a fetched range, read for a TLS connection,
/// which cannot use `sendfile`).
pub fn pread(fd: &std::os::fd::OwnedFd, position: u64, dst: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < dst.len() {
        let rest = &mut dst[done..];
        // SAFETY: reads at most `rest.len()` bytes into `rest`, borrowed for the call,
        // from a descriptor `fd` keeps open.
        let n = unsafe {
            libc::pread(
                fd.as_raw_fd(),
                rest.as_mut_ptr().cast(),
                rest.len(),
                (position + done as u64) as libc::off_t,
            )
        };
        match n {
            n if n > 0 => done += n as usize,
            0 => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "segment file ended inside a fetched range",
                ))
            }
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}
