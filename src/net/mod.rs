//! Listeners and connections. Every net accepts on the same address (SO_REUSEPORT,
//! set by glommio's `TcpListener::bind`); a connection lives on the net that
//! accepted it, which owns its framing, its response queue and its socket.

pub mod certs;
mod connection;
pub mod credit;
pub mod quota;
mod recv;
mod send;
pub mod tls;
mod x500;

pub use credit::CreditPool;
pub use quota::ProduceQuotas;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use glommio::net::TcpListener;
use glommio::sync::Gate;
use tracing::{info, warn};

use crate::config::BrokerConfig;
use crate::kafka::ShardId;
use crate::metrics::ShardMetrics;
use crate::runtime::Signal;

/// What one shard's listener and connections work with.
pub struct Net {
    pub shard: ShardId,
    pub shards: usize,
    pub config: Arc<BrokerConfig>,
    pub metrics: Rc<ShardMetrics>,
    pub shutdown: Rc<Signal>,
    /// Produce credit of this shard's connections (`credit`).
    pub credit: Rc<CreditPool>,
    /// Produce byte-rate quotas of this shard's clients (`quota`).
    pub quotas: ProduceQuotas,
    /// Connections open on this shard now.
    pub connections: Cell<usize>,
    /// What requests are handed to.
    pub protocol: Rc<crate::protocol::Context>,
    /// The TLS side of the SSL and SASL_SSL listeners (`certs`), when any.
    pub tls: Option<Arc<certs::TlsSource>>,
    /// Recent SASL failures by address (count, last): repeated ones are answered slower.
    pub auth_failures: RefCell<HashMap<IpAddr, (u32, Instant)>>,
}

/// A failure this long after the last one of its address counts as the first again.
const AUTH_FAILURE_MEMORY: Duration = Duration::from_secs(60);
/// The first failure's delay, doubled with each further one up to `AUTH_FAILURE_MAX_DELAY`.
const AUTH_FAILURE_DELAY: Duration = Duration::from_millis(100);
const AUTH_FAILURE_MAX_DELAY: Duration = Duration::from_secs(5);
/// Addresses remembered per shard (the oldest are forgotten past it).
const AUTH_FAILURE_ADDRESSES: usize = 10_000;

impl Net {
    /// Count a failed authentication from `peer`; how long to wait before answering it.
    pub fn auth_failed(&self, peer: Option<IpAddr>) -> Duration {
        let Some(ip) = peer else {
            return AUTH_FAILURE_DELAY;
        };
        let now = Instant::now();
        let mut map = self.auth_failures.borrow_mut();
        if map.len() >= AUTH_FAILURE_ADDRESSES {
            map.retain(|_, (_, last)| now.duration_since(*last) < AUTH_FAILURE_MEMORY);
            if map.len() >= AUTH_FAILURE_ADDRESSES {
                map.clear();
            }
        }
        let entry = map.entry(ip).or_insert((0, now));
        if now.duration_since(entry.1) >= AUTH_FAILURE_MEMORY {
            entry.0 = 0;
        }
        *entry = (entry.0.saturating_add(1), now);
        let doublings = (entry.0 - 1).min(8);
        (AUTH_FAILURE_DELAY * (1 << doublings)).min(AUTH_FAILURE_MAX_DELAY)
    }
}

/// A connection's place in `Net::connections`: taken at accept, given back on drop.
struct Slot(Rc<Net>);

impl Slot {
    fn take(net: &Rc<Net>) -> Slot {
        net.connections.set(net.connections.get() + 1);
        Slot(net.clone())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let open = &self.0.connections;
        open.set(open.get() - 1);
    }
}

/// "refusing connection" lines: a client opening connections in a loop causes them.
static REFUSED_LOG: crate::metrics::log_limit::LogLimit =
    crate::metrics::log_limit::LogLimit::per_second();

/// How long graceful shutdown waits for open connections to finish in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Accept Kafka connections on every listener until shutdown, then drain them.
pub async fn serve(net: Rc<Net>) -> Result<(), String> {
    let mut bound = Vec::new();
    for (index, l) in net.config.endpoints.iter().enumerate() {
        let addr = l.addr;
        let listener =
            TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        if net.shard.0 == 0 {
            info!(%addr, listener = %l.name, protocol = l.protocol.name(), shards = net.shards, "listening for Kafka clients");
        }
        bound.push((index, listener));
    }
    let gate = Gate::new();
    let loops = bound
        .iter()
        .map(|(index, listener)| accept_loop(&net, *index, listener, &gate));
    futures_util::future::join_all(loops).await;
    drop(bound);
    if glommio::timer::timeout(DRAIN_TIMEOUT, async {
        let _ = gate.close().await;
        Ok(())
    })
    .await
    .is_err()
    {
        warn!(
            net = net.shard.0,
            "connections still open after the drain timeout"
        );
    }
    Ok(())
}

/// Accept the connections of one listener until shutdown.
async fn accept_loop(net: &Rc<Net>, index: usize, listener: &TcpListener, gate: &Gate) {
    let mut last_accept_warning: Option<std::time::Instant> = None;
    loop {
        let accept = async { Some(listener.accept().await) };
        let stop = async {
            net.shutdown.wait().await;
            None
        };
        let stream = match futures_lite::future::or(accept, stop).await {
            None => break,
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                // Out of descriptors (EMFILE/ENFILE) lasts until connections close:
                // back off, and say so at most once a second.
                let now = std::time::Instant::now();
                if last_accept_warning.is_none_or(|t| now - t >= Duration::from_secs(1)) {
                    let hint = match e.raw_os_error() {
                        Some(libc::EMFILE) | Some(libc::ENFILE) => {
                            " (out of file descriptors: raise the open-files limit, or lower max_connections)"
                        }
                        _ => "",
                    };
                    warn!("accept failed: {e}{hint}");
                    last_accept_warning = Some(now);
                }
                glommio::timer::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if net.connections.get() >= net.config.max_connections {
            net.metrics
                .connections_refused
                .set(net.metrics.connections_refused.get() + 1);
            if let Some(held_back) = REFUSED_LOG.admit() {
                warn!(
                    peer = ?stream.peer_addr().ok(),
                    limit = net.config.max_connections,
                    held_back,
                    "refusing connection: this net is at max_connections"
                );
            }
            continue;
        }
        net.metrics
            .connections_accepted
            .set(net.metrics.connections_accepted.get() + 1);
        // Counted here, not in the connection's task: a burst of accepts runs before
        // any of their tasks does, and must not slip past max_connections.
        let slot = Slot::take(net);
        if gate
            .spawn(async move {
                connection::run(slot.0.clone(), stream, index).await;
                drop(slot);
            })
            .map(|t| t.detach())
            .is_err()
        {
            break;
        }
    }
}
