//! One client connection: a reader that cuts frames and starts a task per request
//! (requests are pipelined), and a writer that sends responses strictly in request
//! order. At most `max_inflight_requests` requests are in flight; past that the
//! reader stops reading and TCP pushes back on the client.

use std::os::fd::{AsRawFd, FromRawFd};
use std::rc::Rc;

use bytes::{Buf, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::TcpStream;
use glommio::task::JoinHandle;
use tracing::{debug, warn};

use crate::protocol::{self, ProtocolError, Reply};
use crate::shard::Shard;

type Pending = JoinHandle<Result<Reply, ProtocolError>>;

/// Read buffer growth step.
const READ_CHUNK: usize = 64 * 1024;

pub async fn run(shard: Rc<Shard>, stream: TcpStream) {
    let peer = stream.peer_addr().ok();
    let _ = stream.set_nodelay(true);
    // The writer gets its own handle on the socket: a dup of the fd, so reads and
    // writes proceed independently without a lock around one stream.
    // SAFETY: `dup` returns a new descriptor (or -1, checked) that nothing else owns;
    // the TcpStream built from it becomes its only owner and closes it on drop.
    let writer = unsafe {
        let fd = libc::dup(stream.as_raw_fd());
        if fd < 0 {
            warn!(
                ?peer,
                "cannot dup socket: {}",
                std::io::Error::last_os_error()
            );
            return;
        }
        TcpStream::from_raw_fd(fd)
    };
    shard.connections.set(shard.connections.get() + 1);
    let (tx, rx) = local_channel::new_bounded::<Pending>(shard.config.max_inflight_requests);
    let writer = glommio::spawn_local(write_loop(writer, rx));
    if let Err(reason) = read_loop(&shard, stream, tx).await {
        shard
            .metrics
            .protocol_errors
            .set(shard.metrics.protocol_errors.get() + 1);
        warn!(?peer, "closing connection: {reason}");
    }
    writer.await;
    shard.connections.set(shard.connections.get() - 1);
    debug!(?peer, "connection closed");
}

/// Cut frames off the socket and start their handlers, until EOF, shutdown or a
/// protocol error. Dropping `tx` lets the writer finish the queued responses.
async fn read_loop(
    shard: &Rc<Shard>,
    mut stream: TcpStream,
    tx: LocalSender<Pending>,
) -> Result<(), String> {
    let max_frame = shard.config.max_frame_bytes;
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        // Every complete frame in the buffer.
        while buf.len() >= 4 {
            let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
            if len < 0 {
                return Err(format!("negative frame length {len}"));
            }
            let len = len as usize;
            if len > max_frame {
                return Err(format!(
                    "frame of {len} bytes is over max_frame_bytes ({max_frame})"
                ));
            }
            if buf.len() < 4 + len {
                break;
            }
            buf.advance(4);
            let frame = buf.split_to(len).freeze();
            let cut_at = std::time::Instant::now();
            let start = protocol::peek_start(&frame).map_err(|e| e.0)?;
            let task = match protocol::precheck(&start).map_err(|e| e.0)? {
                Some(immediate) => glommio::spawn_local(async move { Ok(Reply::Frame(immediate)) }),
                None => glommio::spawn_local(protocol::handle(shard.clone(), frame, cut_at)),
            };
            if tx.send(task.detach()).await.is_err() {
                return Ok(()); // the writer stopped (it logged why)
            }
        }
        // Need more bytes: at least the rest of the current frame.
        let want = if buf.len() >= 4 {
            4 + i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize
        } else {
            4
        };
        let had = buf.len();
        let n = {
            let target = want.max(had + READ_CHUNK);
            buf.resize(target, 0);
            let read = async { Some(stream.read(&mut buf[had..]).await) };
            let stop = async {
                shard.shutdown.wait().await;
                None
            };
            let r = futures_lite::future::or(read, stop).await;
            match r {
                None => {
                    buf.truncate(had);
                    return Ok(());
                }
                Some(Ok(n)) => n,
                Some(Err(e)) => {
                    buf.truncate(had);
                    return Err(format!("read failed: {e}"));
                }
            }
        };
        buf.truncate(had + n);
        if n == 0 {
            if had > 0 {
                return Err(format!(
                    "client disconnected in the middle of a request ({had} bytes unread)"
                ));
            }
            return Ok(());
        }
    }
}

/// Send responses in request order.
async fn write_loop(mut stream: TcpStream, rx: LocalReceiver<Pending>) {
    while let Some(pending) = rx.recv().await {
        let reply = match pending.await {
            Some(r) => r,
            None => break, // the handler task was cancelled (shutdown)
        };
        match reply {
            Ok(Reply::Frame(bytes)) => {
                if let Err(e) = stream.write_all(&bytes).await {
                    debug!("write failed: {e}");
                    break;
                }
            }
            Ok(Reply::None) => {}
            Err(e) => {
                warn!("closing connection: {e}");
                break;
            }
        }
    }
    // Wake the reader if it is still waiting for bytes.
    let _ = stream.shutdown(std::net::Shutdown::Both).await;
}
