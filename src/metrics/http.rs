//! A minimal HTTP/1.1 server for the admin endpoint (GET /metrics), run on shard 0.
//! It is not on the data path: one request per connection, bounded sizes and times.

use std::rc::Rc;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use tracing::{info, warn};

use super::{render, Snapshot};
use crate::shard::Shard;

const MAX_REQUEST_BYTES: usize = 8192;

/// Serve until shutdown.
pub async fn serve_admin(shard: Rc<Shard>) {
    let listener = match TcpListener::bind(shard.config.admin_addr) {
        Ok(l) => l,
        Err(e) => {
            warn!(addr = %shard.config.admin_addr, "admin endpoint disabled: cannot bind: {e}");
            return;
        }
    };
    info!(addr = %shard.config.admin_addr, "admin endpoint listening (/metrics)");
    loop {
        let accept = async { Some(listener.accept().await) };
        let stop = async {
            shard.shutdown.wait().await;
            None
        };
        match futures_lite::future::or(accept, stop).await {
            None => return,
            Some(Ok(stream)) => {
                let shard = shard.clone();
                glommio::spawn_local(async move {
                    let _ = glommio::timer::timeout(Duration::from_secs(10), async {
                        serve_one(shard, stream).await;
                        Ok(())
                    })
                    .await;
                })
                .detach();
            }
            Some(Err(e)) => warn!("admin accept failed: {e}"),
        }
    }
}

async fn serve_one(shard: Rc<Shard>, mut stream: TcpStream) {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > MAX_REQUEST_BYTES {
            return;
        }
    }
    let line = String::from_utf8_lossy(&buf);
    let path = line.split_whitespace().nth(1).unwrap_or("/");
    let (status, body) = if path == "/metrics" {
        ("200 OK", render(&collect(&shard).await))
    } else {
        ("404 Not Found", "try /metrics\n".to_string())
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(resp.as_bytes()).await;
    let _ = stream.close().await;
}

/// A snapshot from every shard.
pub async fn collect(shard: &Rc<Shard>) -> Vec<Snapshot> {
    let mut out = Vec::with_capacity(shard.count);
    for s in 0..shard.count {
        let snap = shard
            .invoke_on(s, |sh| async move {
                let (counters, requests) = sh.metrics.snapshot();
                let partitions = sh
                    .owned_logs()
                    .into_iter()
                    .map(|(t, p, l)| {
                        (
                            t.to_string(),
                            p,
                            l.high_watermark(),
                            l.log_start_offset(),
                            l.size_bytes(),
                        )
                    })
                    .collect();
                Snapshot {
                    shard: sh.id,
                    counters,
                    requests,
                    partitions,
                    connections: sh.connections.get(),
                    group_offsets: sh.groups.committed(),
                    produce_credit_in_use_bytes: sh.produce_credit.in_use() as u64,
                    fsync: crate::log::sync_latency::snapshot(),
                    queued: sh.metrics.queued_snapshot(),
                }
            })
            .await;
        if let Ok(snap) = snap {
            out.push(snap);
        }
    }
    out
}
