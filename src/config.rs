//! Broker configuration: embedded defaults, then an optional TOML file, then
//! environment variables (`SLUICE_*`), then command-line flags — the last one wins.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use crate::log::FlushPolicy;

pub mod listeners;
pub mod principal;
pub use listeners::{Listener, SecurityProtocol, TlsFiles};
pub use principal::PrincipalRules;

/// Everything `sluice serve` can be told. Field names are the TOML keys.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    pub listen: SocketAddr,
    /// host:port that clients are told to connect to (Metadata brokers list).
    pub advertised_listener: String,
    pub data_dir: PathBuf,
    pub shards: usize,
    pub flush: FlushPolicy,
    pub admin_addr: SocketAddr,
    pub max_frame_bytes: usize,
    pub max_inflight_requests: usize,
    pub max_connections: usize,
    /// Whether max_connections was set (file, env or flag) rather than left at its
    /// default: a default one is fitted to the open-files limit at start, a set one is not.
    pub max_connections_explicit: bool,
    /// Fetch sends cached record bytes with sendfile; false reads them into memory
    /// first (kept to measure zero copy against).
    pub fetch_zero_copy: bool,
    pub auto_create_topics: bool,
    pub default_partitions: i32,
    pub segment_bytes: u64,
    pub retention_ms: Option<u64>,
    pub retention_bytes: Option<u64>,
    pub retention_check_interval_ms: u64,
    pub producer_id_expiration_ms: u64,
    pub transactional_id_expiration_ms: u64,
    pub io_memory_bytes: usize,
    /// Bytes the broker may hold in memory for clients' data; see `produce_budget_bytes_per_shard`.
    pub memory_budget: u64,
    /// A connection with no request for this long is closed (Kafka's
    /// connections.max.idle.ms); 0 never closes idle connections.
    pub idle_connection_timeout_ms: u64,
    /// A request whose bytes have not all arrived this long after its first byte
    /// (plus a second per MB of its size) closes its connection; 0 never does.
    pub request_read_timeout_ms: u64,
    /// Produce quota per client id and shard in bytes/s (Kafka's producer_byte_rate);
    /// 0 is no quota.
    pub producer_byte_rate: u64,
    /// Memory of one cleaning pass's key → offset map, per shard (Kafka's
    /// log.cleaner.dedupe.buffer.size); a dirty log with more keys is cleaned in passes.
    pub cleaner_map_bytes: usize,
    /// Read plus written bytes per second one shard's cleaner may use; 0 is no limit
    /// (Kafka's log.cleaner.io.max.bytes.per.second).
    pub cleaner_io_bytes_per_sec: u64,
    /// How long the cleaner sleeps when no compacted partition is due (Kafka's
    /// log.cleaner.backoff.ms).
    pub cleaner_backoff_ms: u64,
    /// Kafka's `listeners`: `NAME://HOST:PORT,...`; unset, one PLAINTEXT listener on `listen`.
    pub listeners: Option<String>,
    /// Kafka's `advertised.listeners`: `NAME://HOST:PORT,...` by listener name.
    pub advertised_listeners: Option<String>,
    /// Kafka's `listener.security.protocol.map`: `NAME:PROTOCOL,...`.
    pub listener_security_protocol_map: Option<String>,
    /// The listeners resolved from the four settings above (`validate`); never empty.
    pub endpoints: Vec<Listener>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub tls_client_ca_file: Option<PathBuf>,
    /// A TLS handshake not done within this long closes the connection.
    pub tls_handshake_timeout_ms: u64,
    /// How often the TLS files are checked for a change (a changed certificate, key or
    /// CA bundle is loaded for the handshakes that follow; SIGHUP checks at once); 0: never.
    pub tls_reload_interval_ms: u64,
    /// Kafka's `ssl.principal.mapping.rules`: the principal of a client certificate on
    /// an SSL listener, from its subject (`principal`); unset, `DEFAULT`.
    pub ssl_principal_mapping_rules: Option<String>,
    /// The rules above, parsed (`validate`).
    pub principal_rules: PrincipalRules,
    /// Check every request against the ACLs (Kafka's `authorizer.class.name` set to
    /// its StandardAuthorizer).
    pub authorizer: bool,
    /// Principals allowed everything, `User:<name>` separated by `;` (Kafka's
    /// `super.users`).
    pub super_users: String,
    /// With the authorizer on: a resource no ACL names is open to everyone (Kafka's
    /// `allow.everyone.if.no.acl.found`, default false).
    pub allow_everyone_if_no_acl_found: bool,
    /// A SASL session lasts this long; the client re-authenticates before it ends or is
    /// disconnected (KIP-368, Kafka's `connections.max.reauth.ms`); 0: forever.
    pub connections_max_reauth_ms: u64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            listen: "127.0.0.1:9092".parse().expect("literal address"),
            advertised_listener: String::new(),
            data_dir: PathBuf::from("./data"),
            shards: default_shards(),
            flush: FlushPolicy::Interval(Duration::from_millis(1000)),
            admin_addr: "127.0.0.1:9644".parse().expect("literal address"),
            max_frame_bytes: 100 * 1024 * 1024,
            max_inflight_requests: 64,
            max_connections: 10_000,
            max_connections_explicit: false,
            fetch_zero_copy: true,
            auto_create_topics: true,
            default_partitions: 1,
            segment_bytes: 1 << 30,
            retention_ms: Some(7 * 24 * 3600 * 1000),
            retention_bytes: None,
            retention_check_interval_ms: 30_000,
            producer_id_expiration_ms: 24 * 3600 * 1000,
            transactional_id_expiration_ms: 7 * 24 * 3600 * 1000,
            io_memory_bytes: 1 << 20,
            memory_budget: 512 << 20,
            idle_connection_timeout_ms: 600_000,
            request_read_timeout_ms: 30_000,
            producer_byte_rate: 0,
            cleaner_map_bytes: 32 << 20,
            cleaner_io_bytes_per_sec: 0,
            cleaner_backoff_ms: 15_000,
            listeners: None,
            advertised_listeners: None,
            listener_security_protocol_map: None,
            endpoints: Vec::new(),
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
            tls_handshake_timeout_ms: 10_000,
            tls_reload_interval_ms: 30_000,
            ssl_principal_mapping_rules: None,
            principal_rules: PrincipalRules::default(),
            authorizer: false,
            super_users: String::new(),
            allow_everyone_if_no_acl_found: false,
            connections_max_reauth_ms: 0,
        }
    }
}

/// The cores this process may run on (taskset/cgroup aware), at least 1.
pub fn default_shards() -> usize {
    core_affinity::get_core_ids()
        .map(|ids| ids.len())
        .unwrap_or(1)
        .max(1)
}

/// `sluice serve` flags. Every flag also reads `SLUICE_<NAME>` from the environment.
#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// TOML file with any of the settings below (keys use underscores: data_dir = "...").
    #[arg(long, env = "SLUICE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address the Kafka listener binds, on every shard (SO_REUSEPORT). Default 127.0.0.1:9092.
    #[arg(long, env = "SLUICE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// host:port given to clients in Metadata. Default: the listen address.
    #[arg(long, env = "SLUICE_ADVERTISED_LISTENER")]
    pub advertised_listener: Option<String>,
    /// Directory holding the logs and the broker's own state. Default ./data.
    #[arg(long, env = "SLUICE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Number of shards (one pinned thread each). Default: the cores available to the process.
    #[arg(long, env = "SLUICE_SHARDS")]
    pub shards: Option<usize>,
    /// Default durability of topics: always (fdatasync before acks=all is answered; group
    /// commit), interval:MS (sync every MS milliseconds), or never (leave it to the kernel).
    /// Default interval:1000.
    #[arg(long, env = "SLUICE_FLUSH")]
    pub flush: Option<FlushPolicy>,
    /// Address of the admin HTTP endpoint (Prometheus text at /metrics). Default 127.0.0.1:9644.
    #[arg(long, env = "SLUICE_ADMIN_ADDR")]
    pub admin_addr: Option<SocketAddr>,
    /// Largest request frame accepted; a larger one closes the connection. Default 104857600.
    #[arg(long, env = "SLUICE_MAX_FRAME_BYTES")]
    pub max_frame_bytes: Option<usize>,
    /// Requests a connection may have in flight before the broker stops reading it. Default 64.
    #[arg(long, env = "SLUICE_MAX_INFLIGHT_REQUESTS")]
    pub max_inflight_requests: Option<usize>,
    /// Connections per shard; more are refused with a log line. Default 10000.
    #[arg(long, env = "SLUICE_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Send fetched record bytes from the page cache with sendfile (zero copy); false reads
    /// them into memory first, for comparison. Default true.
    #[arg(long, env = "SLUICE_FETCH_ZERO_COPY")]
    pub fetch_zero_copy: Option<bool>,
    /// Create a topic on first use (Metadata or Produce of an unknown topic). Default true.
    #[arg(long, env = "SLUICE_AUTO_CREATE_TOPICS")]
    pub auto_create_topics: Option<bool>,
    /// Partitions of an auto-created topic, or of CreateTopics with num_partitions = -1. Default 1.
    #[arg(long, env = "SLUICE_DEFAULT_PARTITIONS")]
    pub default_partitions: Option<i32>,
    /// Default segment size before a roll (topic config segment.bytes). Default 1073741824.
    #[arg(long, env = "SLUICE_SEGMENT_BYTES")]
    pub segment_bytes: Option<u64>,
    /// Default retention by age (topic config retention.ms); -1 keeps forever. Default 604800000.
    #[arg(long, env = "SLUICE_RETENTION_MS")]
    pub retention_ms: Option<i64>,
    /// Default retention by size per partition (retention.bytes); -1 is unlimited. Default -1.
    #[arg(long, env = "SLUICE_RETENTION_BYTES")]
    pub retention_bytes: Option<i64>,
    /// How often background work runs (retention, producer-state snapshots and
    /// expiry), in milliseconds. Default 30000.
    #[arg(long, env = "SLUICE_RETENTION_CHECK_INTERVAL_MS")]
    pub retention_check_interval_ms: Option<u64>,
    /// Forget an idempotent producer's sequence state after this long without writes
    /// (Kafka's producer.id.expiration.ms). Default 86400000.
    #[arg(long, env = "SLUICE_PRODUCER_ID_EXPIRATION_MS")]
    pub producer_id_expiration_ms: Option<u64>,
    /// Forget a transactional id after this long without a transaction (Kafka's
    /// transactional.id.expiration.ms). Default 604800000.
    #[arg(long, env = "SLUICE_TRANSACTIONAL_ID_EXPIRATION_MS")]
    pub transactional_id_expiration_ms: Option<u64>,
    /// io_uring registered-buffer memory per shard (bytes). The locked-memory limit must
    /// hold shards × this. Default 1048576.
    #[arg(long, env = "SLUICE_IO_MEMORY_BYTES")]
    pub io_memory_bytes: Option<usize>,
    /// Bytes of memory the broker may use for clients' data in flight, split among shards:
    /// a quarter is produce credit (produce data accepted but not yet appended, or not yet
    /// synced for acks=all under flush=always), a quarter is for fetch responses, the
    /// rest covers read buffers and the log's copies in flight. Default 536870912.
    #[arg(long, env = "SLUICE_MEMORY_BUDGET")]
    pub memory_budget: Option<u64>,
    /// Close a connection that sent no request for this long (ms); 0 never does. Default 600000.
    #[arg(long, env = "SLUICE_IDLE_CONNECTION_TIMEOUT_MS")]
    pub idle_connection_timeout_ms: Option<u64>,
    /// Close a connection whose request has not all arrived this long (ms) after its first
    /// byte, plus a second per MB of the request (a client sending a byte at a time);
    /// 0 never does. Default 30000.
    #[arg(long, env = "SLUICE_REQUEST_READ_TIMEOUT_MS")]
    pub request_read_timeout_ms: Option<u64>,
    /// Produce quota per client id (on each shard), bytes/s; over it, responses carry
    /// throttle_time_ms and the connection is not read for that long. 0: no quota. Default 0.
    #[arg(long, env = "SLUICE_PRODUCER_BYTE_RATE")]
    pub producer_byte_rate: Option<u64>,
    /// Memory per shard for the compaction cleaner's key → offset map (bytes; about 40
    /// per key). Default 33554432.
    #[arg(long, env = "SLUICE_CLEANER_MAP_BYTES")]
    pub cleaner_map_bytes: Option<usize>,
    /// Read plus written bytes per second one shard's cleaner may use; 0 is no limit.
    /// Default 0.
    #[arg(long, env = "SLUICE_CLEANER_IO_BYTES_PER_SEC")]
    pub cleaner_io_bytes_per_sec: Option<u64>,
    /// How long the cleaner waits before looking for a compacted partition to clean
    /// again when none is due (ms). Default 15000.
    #[arg(long, env = "SLUICE_CLEANER_BACKOFF_MS")]
    pub cleaner_backoff_ms: Option<u64>,
    /// Listeners, as Kafka's `listeners`: NAME://HOST:PORT,... (a name that is a protocol,
    /// e.g. SASL_SSL://127.0.0.1:9093, needs no map entry). Default: one PLAINTEXT
    /// listener on --listen.
    #[arg(long, env = "SLUICE_LISTENERS")]
    pub listeners: Option<String>,
    /// Addresses given to clients, by listener: NAME://HOST:PORT,... Default: the bound address.
    #[arg(long, env = "SLUICE_ADVERTISED_LISTENERS")]
    pub advertised_listeners: Option<String>,
    /// Protocol of each named listener: NAME:PROTOCOL,... (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL).
    #[arg(long, env = "SLUICE_LISTENER_SECURITY_PROTOCOL_MAP")]
    pub listener_security_protocol_map: Option<String>,
    /// PEM certificate chain of the TLS listeners (SSL, SASL_SSL).
    #[arg(long, env = "SLUICE_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of that certificate (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "SLUICE_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// PEM CA bundle; set, TLS clients must present a certificate it signed (mutual TLS).
    #[arg(long, env = "SLUICE_TLS_CLIENT_CA_FILE")]
    pub tls_client_ca_file: Option<PathBuf>,
    /// A TLS handshake not finished within this long (ms) closes the connection. Default 10000.
    #[arg(long, env = "SLUICE_TLS_HANDSHAKE_TIMEOUT_MS")]
    pub tls_handshake_timeout_ms: Option<u64>,
    /// How often (ms) the TLS files are checked for a change, loaded for new handshakes
    /// when changed (SIGHUP checks at once); 0: never. Default 30000.
    #[arg(long, env = "SLUICE_TLS_RELOAD_INTERVAL_MS")]
    pub tls_reload_interval_ms: Option<u64>,
    /// Principal of a client certificate on an SSL listener, from its subject (Kafka's
    /// ssl.principal.mapping.rules), e.g. "RULE:^CN=([^,]*).*$/$1/,DEFAULT". Default DEFAULT.
    #[arg(long, env = "SLUICE_SSL_PRINCIPAL_MAPPING_RULES")]
    pub ssl_principal_mapping_rules: Option<String>,
    /// Check every request against the ACLs (CreateAcls, `sluice acl`); unauthorized
    /// requests get Kafka's *_AUTHORIZATION_FAILED codes. Default false.
    #[arg(long, env = "SLUICE_AUTHORIZER")]
    pub authorizer: Option<bool>,
    /// Principals allowed everything, e.g. "User:admin;User:ops" (Kafka's super.users).
    #[arg(long, env = "SLUICE_SUPER_USERS")]
    pub super_users: Option<String>,
    /// With the authorizer on, a resource no ACL names is open to everyone. Default false.
    #[arg(long, env = "SLUICE_ALLOW_EVERYONE_IF_NO_ACL_FOUND")]
    pub allow_everyone_if_no_acl_found: Option<bool>,
    /// SASL sessions last this long (ms): clients re-authenticate before the end
    /// (KIP-368) or are disconnected at their next request. 0: forever. Default 0.
    #[arg(long, env = "SLUICE_CONNECTIONS_MAX_REAUTH_MS")]
    pub connections_max_reauth_ms: Option<u64>,
}

/// The TOML file: every key optional.
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    advertised_listener: Option<String>,
    data_dir: Option<PathBuf>,
    shards: Option<usize>,
    flush: Option<String>,
    admin_addr: Option<SocketAddr>,
    max_frame_bytes: Option<usize>,
    max_inflight_requests: Option<usize>,
    max_connections: Option<usize>,
    fetch_zero_copy: Option<bool>,
    auto_create_topics: Option<bool>,
    default_partitions: Option<i32>,
    segment_bytes: Option<u64>,
    retention_ms: Option<i64>,
    retention_bytes: Option<i64>,
    retention_check_interval_ms: Option<u64>,
    producer_id_expiration_ms: Option<u64>,
    transactional_id_expiration_ms: Option<u64>,
    io_memory_bytes: Option<usize>,
    memory_budget: Option<u64>,
    idle_connection_timeout_ms: Option<u64>,
    request_read_timeout_ms: Option<u64>,
    producer_byte_rate: Option<u64>,
    cleaner_map_bytes: Option<usize>,
    cleaner_io_bytes_per_sec: Option<u64>,
    cleaner_backoff_ms: Option<u64>,
    listeners: Option<String>,
    advertised_listeners: Option<String>,
    listener_security_protocol_map: Option<String>,
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
    tls_client_ca_file: Option<PathBuf>,
    tls_handshake_timeout_ms: Option<u64>,
    tls_reload_interval_ms: Option<u64>,
    ssl_principal_mapping_rules: Option<String>,
    authorizer: Option<bool>,
    super_users: Option<String>,
    allow_everyone_if_no_acl_found: Option<bool>,
    connections_max_reauth_ms: Option<u64>,
}

/// Below this the produce credit of a shard could not hold a few typical batches.
const MIN_MEMORY_BUDGET: u64 = 4 << 20;

fn negative_is_none(v: i64) -> Option<u64> {
    u64::try_from(v).ok()
}

/// The settings a flag and a config-file key set alike, replacing the default whole: one
/// list for both sources (`flush` and the retention settings are parsed on their own).
macro_rules! plain_settings {
    ($m:ident) => {
        $m!(
            listen,
            advertised_listener,
            data_dir,
            shards,
            admin_addr,
            max_frame_bytes,
            max_inflight_requests,
            max_connections,
            fetch_zero_copy,
            auto_create_topics,
            default_partitions,
            segment_bytes,
            retention_check_interval_ms,
            producer_id_expiration_ms,
            transactional_id_expiration_ms,
            io_memory_bytes,
            memory_budget,
            idle_connection_timeout_ms,
            request_read_timeout_ms,
            producer_byte_rate,
            cleaner_map_bytes,
            cleaner_io_bytes_per_sec,
            cleaner_backoff_ms,
            tls_handshake_timeout_ms,
            tls_reload_interval_ms,
            authorizer,
            super_users,
            allow_everyone_if_no_acl_found,
            connections_max_reauth_ms
        )
    };
}

/// The settings that stay unset (None) unless a flag or the file gives them.
macro_rules! optional_settings {
    ($m:ident) => {
        $m!(
            listeners,
            advertised_listeners,
            listener_security_protocol_map,
            tls_cert_file,
            tls_key_file,
            tls_client_ca_file,
            ssl_principal_mapping_rules
        )
    };
}

impl BrokerConfig {
    /// Defaults, overlaid by the TOML file (if any), overlaid by env and flags (clap merged those).
    pub fn resolve(args: &ServeArgs) -> Result<BrokerConfig, String> {
        let mut c = BrokerConfig::default();
        if let Some(path) = &args.config {
            c.apply_file(path)?;
        }
        c.max_connections_explicit |= args.max_connections.is_some();
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = args.$f.clone() { c.$f = v; } )* };
        }
        set!(flush);
        plain_settings!(set);
        macro_rules! set_some {
            ($($f:ident),*) => { $( if args.$f.is_some() { c.$f = args.$f.clone(); } )* };
        }
        optional_settings!(set_some);
        if let Some(v) = args.retention_ms {
            c.retention_ms = negative_is_none(v);
        }
        if let Some(v) = args.retention_bytes {
            c.retention_bytes = negative_is_none(v);
        }
        c.validate()?;
        Ok(c)
    }

    fn apply_file(&mut self, path: &Path) -> Result<(), String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        let f: FileConfig =
            toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))?;
        self.max_connections_explicit |= f.max_connections.is_some();
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = f.$f { self.$f = v; } )* };
        }
        plain_settings!(set);
        macro_rules! set_some {
            ($($f:ident),*) => { $( if f.$f.is_some() { self.$f = f.$f; } )* };
        }
        optional_settings!(set_some);
        if let Some(v) = f.flush {
            self.flush = v
                .parse()
                .map_err(|e| format!("config file {}: flush: {e}", path.display()))?;
        }
        if let Some(v) = f.retention_ms {
            self.retention_ms = negative_is_none(v);
        }
        if let Some(v) = f.retention_bytes {
            self.retention_bytes = negative_is_none(v);
        }
        Ok(())
    }

    fn validate(&mut self) -> Result<(), String> {
        // Relative paths are resolved once, here: glommio's directory operations (the
        // fsync of a state file's directory) fail on a relative path.
        self.data_dir = std::path::absolute(&self.data_dir)
            .map_err(|e| format!("cannot resolve data_dir {}: {e}", self.data_dir.display()))?;
        if let Some(bad) = self
            .super_user_list()
            .into_iter()
            .find(|u| !u.starts_with("User:") || u.len() == "User:".len())
        {
            return Err(format!("super_users: {bad:?} is not User:<name>"));
        }
        if self.shards == 0 || self.shards > 256 {
            return Err(format!("shards must be 1..=256, got {}", self.shards));
        }
        if self.default_partitions < 1 {
            return Err("default_partitions must be at least 1".into());
        }
        if self.max_inflight_requests == 0 {
            return Err("max_inflight_requests must be at least 1".into());
        }
        if self.memory_budget < MIN_MEMORY_BUDGET {
            return Err(format!(
                "memory_budget must be at least {MIN_MEMORY_BUDGET} bytes, got {}",
                self.memory_budget
            ));
        }
        if self.advertised_listener.is_empty() {
            if self.listen.ip().is_unspecified() {
                return Err(
                    "listening on an unspecified address needs --advertised-listener".into(),
                );
            }
            self.advertised_listener = self.listen.to_string();
        }
        let (host, port) = self
            .advertised_listener
            .rsplit_once(':')
            .ok_or("advertised_listener must be HOST:PORT")?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(format!(
                "advertised_listener must be HOST:PORT, got {}",
                self.advertised_listener
            ));
        }
        if let Some(spec) = &self.ssl_principal_mapping_rules {
            self.principal_rules = PrincipalRules::parse(spec)?;
        }
        self.resolve_listeners()
    }

    /// `endpoints` from `listeners` (or `listen` and `advertised_listener`), and the TLS
    /// files a TLS listener needs.
    pub fn resolve_listeners(&mut self) -> Result<(), String> {
        self.endpoints = match &self.listeners {
            Some(spec) => listeners::resolve(
                spec,
                self.advertised_listeners.as_deref(),
                self.listener_security_protocol_map.as_deref(),
            )?,
            None => vec![Listener {
                name: "PLAINTEXT".into(),
                protocol: SecurityProtocol::Plaintext,
                addr: self.listen,
                advertised: self.advertised(),
            }],
        };
        if self.endpoints.iter().any(|l| l.protocol.tls())
            && (self.tls_cert_file.is_none() || self.tls_key_file.is_none())
        {
            return Err("an SSL or SASL_SSL listener needs tls_cert_file and tls_key_file".into());
        }
        Ok(())
    }

    /// The super users, parsed from `super_users` (`User:a;User:b`).
    pub fn super_user_list(&self) -> Vec<String> {
        self.super_users
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }

    pub fn tls_files(&self) -> TlsFiles {
        TlsFiles {
            cert: self.tls_cert_file.clone(),
            key: self.tls_key_file.clone(),
            client_ca: self.tls_client_ca_file.clone(),
        }
    }

    /// (host, port) advertised to the clients of listener `index` (of `endpoints`).
    pub fn advertised_on(&self, index: usize) -> (String, i32) {
        match self.endpoints.get(index) {
            Some(l) => l.advertised.clone(),
            None => self.advertised(),
        }
    }

    /// Produce credit of one shard: a quarter of `memory_budget`, split evenly among
    /// shards. Counts Produce frame bytes from the moment their length is read until
    /// their append (and, for acks=all under flush=always, the covering sync) is done.
    pub fn produce_budget_bytes_per_shard(&self) -> usize {
        self.budget_quarter_per_shard()
    }

    /// Bytes of fetch responses one shard may hold in memory at once: a quarter of
    /// `memory_budget`, split evenly among shards (for the fetch path to enforce).
    pub fn fetch_budget_bytes_per_shard(&self) -> usize {
        self.budget_quarter_per_shard()
    }

    fn budget_quarter_per_shard(&self) -> usize {
        let per_shard = self.memory_budget / 4 / self.shards.max(1) as u64;
        usize::try_from(per_shard).unwrap_or(usize::MAX).max(1)
    }

    /// `request_read_timeout_ms` as a duration, `None` when disabled.
    pub fn request_read_timeout(&self) -> Option<Duration> {
        (self.request_read_timeout_ms > 0)
            .then(|| Duration::from_millis(self.request_read_timeout_ms))
    }

    /// `idle_connection_timeout_ms` as a duration, `None` when disabled.
    pub fn idle_connection_timeout(&self) -> Option<Duration> {
        (self.idle_connection_timeout_ms > 0)
            .then(|| Duration::from_millis(self.idle_connection_timeout_ms))
    }

    /// (host, port) advertised to clients: `advertised_listener` (validated by
    /// `resolve`), or the listen address when it is unset.
    pub fn advertised(&self) -> (String, i32) {
        let parsed = self
            .advertised_listener
            .rsplit_once(':')
            .and_then(|(h, p)| {
                let host = h.trim_start_matches('[').trim_end_matches(']');
                Some((host.to_string(), p.parse().ok()?))
            });
        parsed.unwrap_or_else(|| (self.listen.ip().to_string(), i32::from(self.listen.port())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example deploy/sluice.toml is a valid config file with what it says.
    #[test]
    fn the_example_config_file_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/sluice.toml");
        let args = ServeArgs {
            config: Some(path),
            ..ServeArgs::default()
        };
        let c = BrokerConfig::resolve(&args).expect("deploy/sluice.toml loads");
        assert_eq!(c.listen.to_string(), "0.0.0.0:9092");
        assert_eq!(c.admin_addr.to_string(), "127.0.0.1:9644");
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/sluice"));
        assert_eq!(c.retention_bytes, None);
        assert!(
            !c.max_connections_explicit,
            "the example leaves max_connections to fit"
        );
    }

    #[test]
    fn max_connections_set_anywhere_is_explicit() {
        let args = ServeArgs {
            max_connections: Some(100),
            ..ServeArgs::default()
        };
        let c = BrokerConfig::resolve(&args).unwrap();
        assert!(c.max_connections_explicit && c.max_connections == 100);
        assert!(
            !BrokerConfig::resolve(&ServeArgs::default())
                .unwrap()
                .max_connections_explicit
        );
    }
}
