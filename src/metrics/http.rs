//! A minimal HTTP/1.1 server for the admin endpoint (GET /metrics), run on shard 0.
//! It is not on the data path: one request per connection, bounded sizes and times.

use std::rc::Rc;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use tracing::{info, warn};

use futures_util::future::LocalBoxFuture;

use super::{render, Snapshot};
use crate::runtime::Signal;

const MAX_REQUEST_BYTES: usize = 8192;

/// Gathers a snapshot from every shard (given by `broker.rs`, which knows them all).
pub type Collect = Rc<dyn Fn() -> LocalBoxFuture<'static, Vec<Snapshot>>>;

/// Serve until shutdown.
pub async fn serve_admin(addr: std::net::SocketAddr, shutdown: Rc<Signal>, collect: Collect) {
    let listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            warn!(%addr, "admin endpoint disabled: cannot bind: {e}");
            return;
        }
    };
    info!(%addr, "admin endpoint listening (/metrics)");
    loop {
        let accept = async { Some(listener.accept().await) };
        let stop = async {
            shutdown.wait().await;
            None
        };
        match futures_lite::future::or(accept, stop).await {
            None => return,
            Some(Ok(stream)) => {
                let collect = collect.clone();
                glommio::spawn_local(async move {
                    let _ = glommio::timer::timeout(Duration::from_secs(10), async {
                        serve_one(&collect, stream).await;
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

async fn serve_one(collect: &Collect, mut stream: TcpStream) {
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
        ("200 OK", render(&collect().await))
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
