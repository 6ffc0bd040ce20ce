//! The operator commands: Kafka clients, so they work the same against Sluice, Kafka or
//! Redpanda. Admin requests are `kafka-protocol` frames on a plain socket ([`client`]);
//! records go through librdkafka (`rdkafka`).
//!
//! - [`topic`]: `sluice topic create|list|describe|delete|add-partitions|alter-config`
//! - [`group`]: `sluice group list|describe|lag|reset-offsets|delete`
//! - [`share`]: `sluice share-group list|describe|reset|delete` (KIP-932)
//! - [`produce`], [`consume`]: `sluice produce`, `sluice consume` (kcat-like)
//! - [`cluster`]: `sluice cluster info`
//! - [`dlq`]: `sluice dlq inspect|redrive` ([`redrive`]: also `sluice redrive`)
//! - [`mirror`]: `sluice mirror`, copy topics and group offsets to another cluster
//! - [`user`]: `sluice user list|create|delete` (SCRAM users, KIP-554)
//! - [`acl`]: `sluice acl list|create|delete` (ACLs, KIP-140)
//!
//! Every command takes `--brokers` (env `SLUICE_BROKERS`, default 127.0.0.1:9092),
//! `--output table|json` and `--timeout`; exit codes are in [`error`].

pub mod acl;
pub mod client;
pub mod cluster;
pub mod consume;
pub mod dlq;
pub mod error;
pub mod group;
pub mod mirror;
pub mod output;
pub mod produce;
pub mod redrive;
pub mod share;
pub mod spec;
pub mod topic;
pub mod user;

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use clap::{Args, Subcommand};

use client::Client;
use error::CliError;
use output::Format;

/// Options every client command takes, before or after its subcommand.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Bootstrap brokers, host:port[,host:port...].
    #[arg(
        short = 'b',
        long,
        alias = "bootstrap",
        env = "SLUICE_BROKERS",
        default_value = "127.0.0.1:9092",
        global = true
    )]
    pub brokers: String,
    /// table (for people) or json (for scripts).
    #[arg(long, value_enum, default_value_t = Format::Table, global = true)]
    pub output: Format,
    /// Seconds to wait for a broker's answer.
    #[arg(long, default_value_t = 10.0, global = true)]
    pub timeout: f64,
    /// Sluice's admin endpoint host:port (its /api/ adds shards, share-partition states);
    /// default: port 9644 on the first broker's host, used only if it answers as Sluice.
    #[arg(long, env = "SLUICE_ADMIN", global = true)]
    pub admin: Option<String>,
}

/// What a command runs with.
pub struct Ctx {
    pub brokers: String,
    pub format: Format,
    pub timeout: Duration,
    pub admin: Option<String>,
}

impl Ctx {
    pub fn new(c: &Common) -> Ctx {
        Ctx {
            brokers: c.brokers.clone(),
            format: c.output,
            timeout: Duration::from_secs_f64(c.timeout.clamp(0.1, 3600.0)),
            admin: c.admin.clone(),
        }
    }

    pub fn client(&self) -> Result<Client, CliError> {
        Client::connect(&self.brokers, self.timeout)
    }

    pub fn timeout_ms(&self) -> i32 {
        self.timeout.as_millis().min(i32::MAX as u128) as i32
    }

    /// GET a JSON document of Sluice's admin API; None when there is no Sluice admin
    /// endpoint there (another broker, or none).
    pub fn admin_json(&self, path: &str) -> Option<serde_json::Value> {
        let (addr, explicit) = match &self.admin {
            Some(a) => (
                a.trim_start_matches("http://")
                    .trim_end_matches('/')
                    .to_string(),
                true,
            ),
            None => {
                let first = self.brokers.split(',').next()?.trim();
                let host = first.rsplit_once(':').map_or(first, |(h, _)| h);
                (format!("{host}:9644"), false)
            }
        };
        let wait = if explicit {
            self.timeout
        } else {
            Duration::from_millis(300)
        };
        let sock = addr.to_socket_addrs().ok()?.next()?;
        let mut s = TcpStream::connect_timeout(&sock, wait).ok()?;
        s.set_read_timeout(Some(self.timeout)).ok();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).ok()?;
        let text = String::from_utf8_lossy(&buf);
        let (head, body) = text.split_once("\r\n\r\n")?;
        if !head.starts_with("HTTP/1.1 200") {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(body).ok()?;
        (v["broker"] == "sluice").then_some(v)
    }
}

/// The client commands of the `sluice` binary.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create, list, describe, delete topics; add partitions; change configs.
    Topic {
        #[command(flatten)]
        common: Common,
        #[command(subcommand)]
        cmd: topic::TopicCmd,
    },
    /// Consumer groups: list, describe, lag, reset offsets, delete.
    Group {
        #[command(flatten)]
        common: Common,
        #[command(subcommand)]
        cmd: group::GroupCmd,
    },
    /// Share groups (KIP-932): list, describe, reset, delete.
    #[command(name = "share-group")]
    ShareGroup {
        #[command(flatten)]
        common: Common,
        #[command(subcommand)]
        cmd: share::ShareCmd,
    },
    /// Write records: lines from stdin or a file, with keys, headers, a partition.
    Produce {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: produce::ProduceArgs,
    },
    /// Read records to stdout, kcat-like (-f format), or as JSON lines.
    Consume {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: consume::ConsumeArgs,
    },
    /// The cluster: brokers, APIs and versions, log dirs (and shards with Sluice).
    Cluster {
        #[command(flatten)]
        common: Common,
        #[command(subcommand)]
        cmd: cluster::ClusterCmd,
    },
    /// Dead-letter topics (KIP-1191): inspect, redrive.
    Dlq {
        #[command(flatten)]
        common: Common,
        #[command(subcommand)]
        cmd: dlq::DlqCmd,
    },
    /// Move dead-letter records back to their source topics (= `sluice dlq redrive`).
    #[command(hide = true)]
    Redrive {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: redrive::RedriveArgs,
    },
    /// SCRAM users: list, create (set a password), delete.
    User {
        #[command(flatten)]
        common: Common,
        #[command(subcommand)]
        cmd: user::UserCmd,
    },
    /// ACLs: list, create, delete.
    Acl {
        #[command(flatten)]
        common: Common,
        #[command(subcommand)]
        cmd: acl::AclCmd,
    },
    /// Copy topics (configs, partitions, records) and group offsets to another cluster,
    /// continuously and resumably: the way from one Sluice to a Kafka cluster.
    Mirror {
        #[command(flatten)]
        args: mirror::MirrorArgs,
    },
}

/// Run a client command; returns the process exit code, having printed any error
/// (as JSON on stderr with `--output json`).
pub fn run(cmd: Command) -> i32 {
    let (common, result) = match cmd {
        Command::Topic { common, cmd } => {
            let r = topic::run(&Ctx::new(&common), cmd);
            (common, r)
        }
        Command::Group { common, cmd } => {
            let r = group::run(&Ctx::new(&common), cmd);
            (common, r)
        }
        Command::ShareGroup { common, cmd } => {
            let r = share::run(&Ctx::new(&common), cmd);
            (common, r)
        }
        Command::Produce { common, args } => {
            let r = produce::run(&Ctx::new(&common), args);
            (common, r)
        }
        Command::Consume { common, args } => {
            let r = consume::run(&Ctx::new(&common), args);
            (common, r)
        }
        Command::Cluster { common, cmd } => {
            let r = cluster::run(&Ctx::new(&common), cmd);
            (common, r)
        }
        Command::User { common, cmd } => {
            let r = user::run(&Ctx::new(&common), cmd);
            (common, r)
        }
        Command::Acl { common, cmd } => {
            let r = acl::run(&Ctx::new(&common), cmd);
            (common, r)
        }
        Command::Dlq { common, cmd } => {
            let r = dlq::run(&Ctx::new(&common), cmd);
            (common, r)
        }
        Command::Redrive { common, args } => {
            let r = redrive::run(&Ctx::new(&common), args);
            (common, r)
        }
        Command::Mirror { args } => {
            let r = mirror::run(args);
            (
                Common {
                    brokers: String::new(),
                    output: Format::Table,
                    timeout: 10.0,
                    admin: None,
                },
                r,
            )
        }
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            let mut err = std::io::stderr().lock();
            let _ = match common.output {
                Format::Json => writeln!(err, "{}", e.to_json()),
                Format::Table => writeln!(err, "sluice: error: {e}"),
            };
            e.exit_code()
        }
    }
}
