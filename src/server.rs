//! `sluice serve`: load the durable state, start the shards, stop on SIGINT/SIGTERM.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use futures_channel::oneshot;
use tracing::{error, info, warn};

use crate::broker::{shard_main, ShardInit};
use crate::cluster::{
    quotas_path, registry_path, ClientQuotas, QuotaRecord, Registry, RegistryRecord,
    TopicConfigDefaults,
};
use crate::config::BrokerConfig;
use crate::net::certs::TlsSource;
use crate::runtime::{self, RuntimeSpec};
use crate::store::atomic as store;

/// Run the broker until a signal stops it. Errors name what went wrong (and which file).
pub fn serve(config: BrokerConfig) -> Result<(), String> {
    let running = start(config)?;
    spawn_signal_thread(running.stopper(), running.tls.clone())?;
    running.join()
}

/// A broker started by `start`: its shards run on their own threads until stopped.
pub struct Running {
    stopper: Stopper,
    shards: std::thread::JoinHandle<Result<(), String>>,
    /// The TLS configuration of the TLS listeners, when any (reloaded at SIGHUP).
    tls: Option<Arc<TlsSource>>,
    /// Held for as long as the broker runs.
    _lock: File,
}

/// Fires every shard's shutdown (once; later calls do nothing). Cheap to clone and
/// usable from any thread.
#[derive(Clone)]
pub struct Stopper(Arc<std::sync::Mutex<Vec<oneshot::Sender<()>>>>);

impl Stopper {
    pub fn stop(&self) {
        // A poisoned lock means a panic elsewhere already: stop anyway.
        let senders = match self.0.lock() {
            Ok(mut s) => std::mem::take(&mut *s),
            Err(p) => std::mem::take(&mut *p.into_inner()),
        };
        for s in senders {
            let _ = s.send(());
        }
    }
}

impl Running {
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Wait until every shard has stopped.
    pub fn join(self) -> Result<(), String> {
        let r = self
            .shards
            .join()
            .unwrap_or_else(|_| Err("the shards' thread panicked".to_string()));
        info!("sluice stopped");
        r
    }

    /// Stop gracefully and wait.
    pub fn stop(self) -> Result<(), String> {
        self.stopper.stop();
        self.join()
    }
}

/// Load the durable state and start the shards (in the background); the broker serves
/// once every shard is ready. Errors name what went wrong (and which file).
pub fn start(config: BrokerConfig) -> Result<Running, String> {
    std::fs::create_dir_all(config.data_dir.join("meta")).map_err(|e| {
        format!(
            "cannot create data directory {}: {e}",
            config.data_dir.display()
        )
    })?;
    let lock = lock_data_dir(&config)?;
    let mut config = config;
    raise_open_files_limit(&mut config);
    let registry = load_registry(&config)?;
    let quotas = load_quotas(&config)?;
    let scram = load_scram(&config)?;
    let acls = load_acls(&config)?;
    let tls = if config.endpoints.iter().any(|l| l.protocol.tls()) {
        Some(TlsSource::load(&config.tls_files())?)
    } else {
        None
    };
    if let Some(source) = &tls {
        spawn_tls_watch(source, config.tls_reload_interval_ms)?;
    }
    info!(
        data_dir = %config.data_dir.display(),
        topics = registry.topics.len(),
        shards = config.shards,
        flush = %config.flush,
        "starting sluice"
    );
    let mut stops = Vec::new();
    let mut senders = Vec::new();
    for _ in 0..config.shards {
        let (tx, rx) = oneshot::channel::<()>();
        senders.push(tx);
        stops.push(rx);
    }
    let groups = crate::coordinator::group::recover(&config.data_dir, config.shards)?;
    let txns = crate::coordinator::txn::store::recover(&config.data_dir, config.shards)?;
    let share_configs =
        crate::coordinator::share::configs::recover(&config.data_dir, config.shards)?;
    let shares =
        crate::partition::share::store::recover(&config.data_dir, config.shards, |t, p| {
            registry
                .topic(t)
                .and_then(|m| m.owner(p))
                .map_or(0, |s| s.0)
        })?;
    let spec = RuntimeSpec {
        shards: config.shards,
        io_memory_bytes: config.io_memory_bytes,
    };
    let (config, registry) = (Arc::new(config), Arc::new(registry));
    let inits = groups
        .into_iter()
        .zip(txns)
        .zip(share_configs.into_iter().zip(shares))
        .map(|((groups, txns), (share_configs, shares))| ShardInit {
            config: config.clone(),
            registry: registry.clone(),
            quotas: quotas.clone(),
            groups,
            txns,
            share_configs,
            shares,
            tls: tls.clone(),
            scram: scram.clone(),
            acls: acls.clone(),
        })
        .collect();
    let shards = std::thread::Builder::new()
        .name("shards".into())
        .spawn(move || runtime::run(spec, inits, stops, shard_main))
        .map_err(|e| format!("cannot start the shards: {e}"))?;
    Ok(Running {
        stopper: Stopper(Arc::new(std::sync::Mutex::new(senders))),
        shards,
        tls,
        _lock: lock,
    })
}

fn load_registry(config: &BrokerConfig) -> Result<Registry, String> {
    let path = registry_path(&config.data_dir);
    let record: RegistryRecord = store::load(&path)
        .map_err(|e| e.to_string())?
        .unwrap_or(RegistryRecord { topics: Vec::new() });
    Registry::from_record(
        &record,
        &TopicConfigDefaults::from_broker(config),
        config.shards,
    )
    .map_err(|e| format!("{}: {e}", path.display()))
}

fn load_quotas(config: &BrokerConfig) -> Result<Arc<ClientQuotas>, String> {
    let record: Option<QuotaRecord> =
        store::load(&quotas_path(&config.data_dir)).map_err(|e| e.to_string())?;
    let record = match record {
        Some(r) => r,
        None => store::load::<crate::cluster::LegacyQuotaRecord>(
            &crate::cluster::legacy_quotas_path(&config.data_dir),
        )
        .map_err(|e| e.to_string())?
        .map(QuotaRecord::from)
        .unwrap_or_default(),
    };
    Ok(Arc::new(ClientQuotas::from_record(&record)))
}

fn load_scram(config: &BrokerConfig) -> Result<Arc<crate::cluster::ScramUsers>, String> {
    let record: crate::cluster::ScramRecord =
        store::load(&crate::cluster::scram_path(&config.data_dir))
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
    Ok(Arc::new(crate::cluster::ScramUsers::from_record(&record)))
}

fn load_acls(config: &BrokerConfig) -> Result<Arc<crate::cluster::Acls>, String> {
    let record: crate::cluster::AclRecord =
        store::load(&crate::cluster::acls_path(&config.data_dir))
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
    if config.authorizer {
        info!(
            acls = record.bindings.len(),
            super_users = %config.super_users,
            "authorizer on: every request is checked against the ACLs"
        );
    }
    Ok(Arc::new(crate::cluster::Acls::from_record(&record)))
}

/// Only one broker may use a data directory at a time.
fn lock_data_dir(config: &BrokerConfig) -> Result<File, String> {
    let path = config.data_dir.join(".lock");
    let f = File::create(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    // SAFETY: flock on a descriptor we own; it only reads the fd number.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(format!(
            "data directory {} is in use by another sluice process",
            config.data_dir.display()
        ));
    }
    Ok(f)
}

/// SIGINT and SIGTERM stop the broker (a second one at once); SIGHUP loads changed TLS
/// files.
fn spawn_signal_thread(stopper: Stopper, tls: Option<Arc<TlsSource>>) -> Result<(), String> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut stops = signals.forever().filter(|&sig| {
                if sig != SIGHUP {
                    return true;
                }
                match &tls {
                    Some(source) => reload_tls(source, "SIGHUP"),
                    None => info!("SIGHUP: no TLS listener, nothing to reload"),
                }
                false
            });
            if let Some(sig) = stops.next() {
                info!(
                    signal = sig,
                    "shutting down: finishing in-flight requests and syncing logs"
                );
                stopper.stop();
            }
            // A second signal means "now".
            if stops.next().is_some() {
                warn!("second signal: exiting at once");
                std::process::exit(130);
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    Ok(())
}

/// Look for changed TLS files every `interval_ms` (0: never), for as long as a shard
/// holds the configuration.
fn spawn_tls_watch(source: &Arc<TlsSource>, interval_ms: u64) -> Result<(), String> {
    if interval_ms == 0 {
        return Ok(());
    }
    let source = Arc::downgrade(source);
    std::thread::Builder::new()
        .name("tls-watch".into())
        .spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_millis(interval_ms));
            match source.upgrade() {
                Some(source) => reload_tls(&source, "tls_reload_interval_ms"),
                None => return,
            }
        })
        .map_err(|e| format!("cannot start the TLS file watch: {e}"))?;
    Ok(())
}

fn reload_tls(source: &TlsSource, why: &str) {
    match source.reload_if_changed() {
        Ok(true) => info!(by = why, "TLS files changed: new handshakes use them"),
        Ok(false) => {}
        Err(e) => error!(
            by = why,
            "TLS files changed but do not load ({e}); keeping the previous ones"
        ),
    }
}

/// Raise the soft limit on open files to the hard limit: every connection takes two
/// descriptors (reader and writer) and every fetched segment one more (its shared
/// dup). When even the hard limit is below what `max_connections` allows, a default
/// `max_connections` is lowered to fit (one line at info); one that was set is kept, with
/// a warning.
fn raise_open_files_limit(config: &mut BrokerConfig) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write one local `rlimit`.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                lim.rlim_cur = 0;
                libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
            }
        }
    }
    if let Some(fitted) = fit_max_connections(config, lim.rlim_cur) {
        info!(
            open_files_limit = lim.rlim_cur,
            max_connections = fitted,
            "max_connections (per shard) fitted to the open-files limit; raise the limit \
             (LimitNOFILE=, ulimit -n) or set max_connections to allow more"
        );
        config.max_connections = fitted;
        return;
    }
    let wanted = open_files_wanted(config);
    if lim.rlim_cur < wanted {
        tracing::warn!(
            open_files_limit = lim.rlim_cur,
            wanted,
            "the open-files limit is below 2 per allowed connection (max_connections x shards); \
             connections past it will be refused by accept with EMFILE"
        );
    }
}

/// Descriptors the broker may need: two per allowed connection and 1024 to spare
/// (segments, indexes, journals, listeners).
fn open_files_wanted(config: &BrokerConfig) -> u64 {
    (config.max_connections * config.shards * 2 + 1024) as u64
}

/// The max_connections that fits `limit` open files, when the configured one does not
/// and was left at its default; None otherwise.
fn fit_max_connections(config: &BrokerConfig, limit: u64) -> Option<usize> {
    if config.max_connections_explicit || limit >= open_files_wanted(config) {
        return None;
    }
    let per_shard = limit.saturating_sub(1024) / (2 * config.shards.max(1) as u64);
    Some((per_shard as usize).max(16))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_max_connections_is_fitted_to_the_open_files_limit() {
        let mut c = BrokerConfig {
            shards: 2,
            ..BrokerConfig::default()
        };
        // 10000 x 2 shards x 2 + 1024 = 41024 wanted.
        assert_eq!(fit_max_connections(&c, 1 << 20), None);
        assert_eq!(fit_max_connections(&c, 20_000), Some((20_000 - 1024) / 4));
        assert_eq!(fit_max_connections(&c, 1024), Some(16));
        c.max_connections_explicit = true;
        assert_eq!(
            fit_max_connections(&c, 20_000),
            None,
            "a set value is the user's"
        );
    }
}
