//! A minimal HTTP/1.1 server for the admin endpoint, run on shard 0: Prometheus text at
//! `/metrics`, the console's JSON API under `/api/` (`api.rs`) and the console itself at
//! `/` (static files embedded in the binary, `console/`). Read-only; not on the data
//! path: one request per connection, bounded sizes and times.

use std::rc::Rc;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use tracing::{info, warn};

use futures_util::future::LocalBoxFuture;

use std::cell::RefCell;
use std::sync::Arc;

use super::api::{self, ApiState};
use super::{render, Snapshot};
use crate::config::BrokerConfig;
use crate::runtime::Signal;

/// The console: (path, content type, body), embedded at build time.
const STATIC: &[(&str, &str, &str)] = &[
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("console/index.html"),
    ),
    (
        "/index.html",
        "text/html; charset=utf-8",
        include_str!("console/index.html"),
    ),
    (
        "/app.js",
        "text/javascript; charset=utf-8",
        include_str!("console/app.js"),
    ),
    (
        "/style.css",
        "text/css; charset=utf-8",
        include_str!("console/style.css"),
    ),
];

const MAX_REQUEST_BYTES: usize = 8192;

/// Gathers a snapshot from every shard (given by `broker.rs`, which knows them all).
pub type Collect = Rc<dyn Fn() -> LocalBoxFuture<'static, Vec<Snapshot>>>;

/// Serve until shutdown.
pub async fn serve_admin(config: Arc<BrokerConfig>, shutdown: Rc<Signal>, collect: Collect) {
    let addr = config.admin_addr;
    let state = Rc::new(RefCell::new(ApiState::default()));
    let listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            warn!(%addr, "admin endpoint disabled: cannot bind: {e}");
            return;
        }
    };
    info!(%addr, "admin endpoint listening (console at /, /metrics, /api/)");
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
                let (config, state) = (config.clone(), state.clone());
                glommio::spawn_local(async move {
                    let _ = glommio::timer::timeout(Duration::from_secs(10), async {
                        serve_one(&collect, &config, &state, stream).await;
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

async fn serve_one(
    collect: &Collect,
    config: &BrokerConfig,
    state: &RefCell<ApiState>,
    mut stream: TcpStream,
) {
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
    let mut words = line.split_whitespace();
    let method = words.next().unwrap_or("GET");
    let target = words.next().unwrap_or("/");
    let path = target.split(['?', '#']).next().unwrap_or("/");
    let (status, kind, body): (&str, &str, std::borrow::Cow<'static, str>) = if method != "GET"
        && method != "HEAD"
    {
        (
            "405 Method Not Allowed",
            "text/plain",
            "the admin endpoint is read-only\n".into(),
        )
    } else if path == "/metrics" {
        (
            "200 OK",
            "text/plain; version=0.0.4",
            render(&collect().await).into(),
        )
    } else if path == "/api" || path.starts_with("/api/") {
        let snaps = collect().await;
        match api::document(path, &snaps, config, &mut state.borrow_mut()) {
            Some(doc) => ("200 OK", "application/json", doc.to_string().into()),
            None => (
                "404 Not Found",
                "application/json",
                r#"{"error":"unknown API path: try /api/all, /api/overview, /api/topics, /api/groups, /api/shares, /api/shards"}"#.into(),
            ),
        }
    } else if let Some((_, kind, body)) = STATIC.iter().find(|(p, _, _)| *p == path) {
        ("200 OK", *kind, (*body).into())
    } else {
        (
            "404 Not Found",
            "text/plain",
            "try / (the console), /metrics or /api/all\n".into(),
        )
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    if method != "HEAD" {
        let _ = stream.write_all(body.as_bytes()).await;
    }
    let _ = stream.close().await;
}
