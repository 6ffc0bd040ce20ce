//! The broker of one shard: the only type that knows every service. Built at start-up
//! on each shard (`shard_main`), it creates the services, registers them on the mesh so
//! other shards can reach them, loads their state, runs their background work and the
//! listener, and closes them at shutdown. Nothing below it names it.
//!
//! The two messages only a whole shard can answer live here too: installing a new
//! registry (partitions open or go, then the shard routes with it) and collecting the
//! shard's metrics for a scrape.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use tracing::info;

use crate::cluster::{ClientQuotas, Cluster, Controller, Installer, Registry, TopicConfigDefaults};
use crate::config::BrokerConfig;
use crate::coordinator::{group, share, txn};
use crate::kafka::{ErrorCode, KafkaError};
use crate::metrics::{ShardMetrics, Snapshot};
use crate::net::{CreditPool, Net, ProduceQuotas};
use crate::partition::manager::ManagerConfig;
use crate::partition::PartitionManager;
use crate::protocol::{self, FetchBudget};
use crate::runtime::{Message, ShardContext};

/// What each shard starts from: the config, the registry as loaded from disk, and the
/// journals of the groups and transactional ids it owns (read before the shards start).
pub struct ShardInit {
    pub config: Arc<BrokerConfig>,
    pub registry: Arc<Registry>,
    pub quotas: Arc<ClientQuotas>,
    pub groups: group::Recovered,
    pub txns: txn::store::Recovered,
    pub share_configs: share::configs::Recovered,
    pub shares: crate::partition::share::store::Recovered,
    /// The TLS side of the TLS listeners (`net::certs`), when any.
    pub tls: Option<Arc<crate::net::certs::TlsSource>>,
    /// The SCRAM credentials (`cluster::scram`), loaded at start.
    pub scram: Arc<crate::cluster::ScramUsers>,
    /// The ACLs (`cluster::acl`), loaded at start.
    pub acls: Arc<crate::cluster::Acls>,
}

/// Every service of one shard.
pub struct Broker {
    pub ctx: ShardContext,
    pub config: Arc<BrokerConfig>,
    pub metrics: Rc<ShardMetrics>,
    pub cluster: Rc<Cluster>,
    pub partitions: Rc<PartitionManager>,
    pub groups: Rc<group::Coordinator>,
    pub txns: Rc<txn::Coordinator>,
    pub shares: Rc<share::Coordinator>,
    pub net: Rc<Net>,
}

/// What `runtime::run` runs on every shard.
pub fn shard_main(
    ctx: ShardContext,
    init: ShardInit,
) -> Pin<Box<dyn Future<Output = Result<(), String>>>> {
    Box::pin(async move {
        let broker = Rc::new(Broker::build(ctx, init.config.clone(), init.tls.clone()));
        broker.cluster.set_quotas(init.quotas);
        broker.cluster.set_scram(init.scram);
        broker.cluster.set_acls(init.acls);
        broker
            .cluster
            .set_authorizer(init.config.authorizer.then(|| crate::cluster::Authorizer {
                super_users: init.config.super_user_list(),
                allow_everyone_if_no_acl_found: init.config.allow_everyone_if_no_acl_found,
            }));
        let loaded = broker.load(init.registry, init.groups, init.txns).await;
        let loaded = match loaded {
            Ok(()) => broker.load_shares(init.share_configs, init.shares).await,
            e => e,
        };
        let ready = broker.ctx.ready(loaded.is_ok()).await;
        loaded?;
        ready?;
        info!(
            shard = broker.ctx.id.0,
            partitions = broker.partitions.owned().len(),
            "shard ready"
        );
        broker.serve().await;
        // Other shards may still forward in-flight requests to our partitions: close
        // them only once every shard has drained its connections.
        broker.ctx.drained().await;
        broker.partitions.close_all().await;
        Ok(())
    })
}

impl Broker {
    /// Create the services of shard `ctx.id` and register them on the mesh.
    fn build(
        ctx: ShardContext,
        config: Arc<BrokerConfig>,
        tls: Option<Arc<crate::net::certs::TlsSource>>,
    ) -> Broker {
        let (id, count, mesh) = (ctx.id, ctx.count, ctx.mesh.clone());
        let metrics = Rc::new(ShardMetrics::new(id.0));
        let cluster = Rc::new(Cluster::new(
            mesh.clone(),
            TopicConfigDefaults::from_broker(&config),
        ));
        let manager = ManagerConfig {
            data_dir: config.data_dir.clone(),
            fetch_zero_copy: config.fetch_zero_copy,
            producer_id_expiration_ms: config.producer_id_expiration_ms as i64,
            retention_check_interval_ms: config.retention_check_interval_ms,
            cleaner: crate::partition::cleaner::CleanerConfig {
                map_bytes: config.cleaner_map_bytes,
                io_bytes_per_sec: config.cleaner_io_bytes_per_sec,
            },
            cleaner_backoff_ms: config.cleaner_backoff_ms,
        };
        let partitions = Rc::new(PartitionManager::new(
            id,
            manager,
            metrics.clone(),
            ctx.shutdown.clone(),
        ));
        let topics = {
            let cluster = cluster.clone();
            Rc::new(move || cluster.registry()) as group::TopicSource
        };
        let groups = Rc::new(group::Coordinator::new(id, count, topics.clone()));
        let shares = Rc::new(share::Coordinator::new(id, count, topics));
        let peers = Rc::new(txn::MeshPeers {
            mesh: mesh.clone(),
            cluster: cluster.clone(),
        });
        let expiration = i64::try_from(config.transactional_id_expiration_ms).unwrap_or(i64::MAX);
        let txns = Rc::new(txn::Coordinator::new(id, count, expiration, peers));
        let protocol = Rc::new(protocol::Context {
            config: config.clone(),
            cluster: cluster.clone(),
            mesh: mesh.clone(),
            metrics: metrics.clone(),
            shutdown: ctx.shutdown.clone(),
            fetch_budget: FetchBudget::new(config.fetch_budget_bytes_per_shard()),
            share_sessions: Default::default(),
            fetch_waits: Default::default(),
        });
        let net = Rc::new(Net {
            shard: id,
            shards: count,
            config: config.clone(),
            metrics: metrics.clone(),
            shutdown: ctx.shutdown.clone(),
            credit: CreditPool::new(config.produce_budget_bytes_per_shard()),
            quotas: ProduceQuotas::default(),
            connections: std::cell::Cell::new(0),
            protocol,
            tls,
            auth_failures: Default::default(),
        });
        partitions.shares().set_dlq_sink(dlq_sink(
            cluster.clone(),
            mesh.clone(),
            config.auto_create_topics,
        ));
        mesh.register(cluster.clone());
        mesh.register(partitions.clone());
        mesh.register(groups.clone());
        mesh.register(txns.clone());
        mesh.register(shares.clone());
        if id == crate::cluster::CONTROLLER_SHARD {
            let controller = Controller::new(
                cluster.clone(),
                config.data_dir.clone(),
                config.default_partitions,
                installer(&ctx),
            );
            mesh.register(Rc::new(controller));
        }
        Broker {
            ctx,
            config,
            metrics,
            cluster,
            partitions,
            groups,
            txns,
            shares,
            net,
        }
    }

    /// Load the share group configs and the share partitions this shard owns.
    async fn load_shares(
        &self,
        configs: share::configs::Recovered,
        states: crate::partition::share::store::Recovered,
    ) -> Result<(), String> {
        let dir = &self.config.data_dir;
        self.shares
            .load(dir, configs)
            .await
            .map_err(|e| format!("loading share group configs failed: {e}"))?;
        self.shares.spawn_tick(self.ctx.shutdown.clone());
        self.partitions
            .shares()
            .load(dir, self.ctx.id.0, states)
            .await
            .map_err(|e| format!("loading share partitions failed: {e}"))?;
        // A topic deleted just before a crash may have left share partitions behind.
        let reg = self.cluster.registry();
        self.partitions
            .shares()
            .forget_topics(&|t: &str| reg.topic(t).is_none())
            .await
            .map_err(|e| {
                format!(
                    "removing share partitions of deleted topics failed: {}",
                    e.message
                )
            })
    }

    /// Open the partitions this shard owns (recovering them), load its groups and
    /// transactions. Registers the broker itself for the shard-wide messages.
    async fn load(
        self: &Rc<Self>,
        registry: Arc<Registry>,
        groups: group::Recovered,
        txns: txn::store::Recovered,
    ) -> Result<(), String> {
        self.ctx.mesh.register(self.clone());
        self.install(registry)
            .await
            .map_err(|e| format!("recovering partitions failed: {}", e.message))?;
        self.groups
            .load(&self.config.data_dir, groups)
            .await
            .map_err(|e| format!("loading consumer groups failed: {e}"))?;
        self.groups.spawn_tick(self.ctx.shutdown.clone());
        self.txns
            .load(&self.config.data_dir, txns)
            .await
            .map_err(|e| format!("loading transactions failed: {e}"))?;
        // A topic deleted just before a crash may have left offsets behind.
        let reg = self.cluster.registry();
        self.forget_topics(&|t: &str| reg.topic(t).is_none())
            .await
            .map_err(|e| format!("removing offsets of deleted topics failed: {}", e.message))
    }

    /// Serve until shutdown: the admin endpoint (shard 0), background work, the
    /// listener with its connections.
    async fn serve(self: &Rc<Self>) {
        if self.ctx.id.0 == 0 {
            // Every shard has imported what it owns of the old transaction state files.
            if let Err(e) = txn::store::remove_legacy(&self.config.data_dir) {
                tracing::warn!("{e}");
            }
            let collect = collector(&self.ctx);
            let shutdown = self.ctx.shutdown.clone();
            let config = self.config.clone();
            glommio::spawn_local(crate::metrics::serve_admin(config, shutdown, collect)).detach();
        }
        self.partitions.spawn_background();
        self.partitions.spawn_cleaner();
        self.txns.spawn_background(self.ctx.shutdown.clone());
        if let Err(e) = crate::net::serve(self.net.clone()).await {
            tracing::error!("{e}");
            std::process::exit(1);
        }
    }

    /// Follow the registry to `next`: open and remove partitions, then route with it.
    /// Committed offsets (and offsets of open transactions) of a deleted topic go with
    /// it, before DeleteTopics is answered: a re-created topic starts without them.
    async fn install(&self, next: Arc<Registry>) -> Result<(), KafkaError> {
        let prev = self.cluster.registry();
        self.partitions.apply(&prev, &next).await?;
        let gone: std::collections::HashSet<Arc<str>> = prev
            .topics
            .iter()
            .filter(|(name, old)| next.topic(name).is_none_or(|t| t.id != old.id))
            .map(|(name, _)| name.clone())
            .collect();
        self.cluster.set_registry(next);
        if !gone.is_empty() {
            self.forget_topics(&|t: &str| gone.contains(t)).await?;
        }
        Ok(())
    }

    /// Remove what the group and transaction coordinators hold of the topics `gone`.
    async fn forget_topics(&self, gone: &dyn Fn(&str) -> bool) -> Result<(), KafkaError> {
        let storage = |e: String| KafkaError::new(ErrorCode::KafkaStorageError, e);
        self.groups.forget_topics(gone).await.map_err(storage)?;
        self.txns.forget_topics(gone).await.map_err(storage)?;
        self.partitions.shares().forget_topics(gone).await
    }

    /// This shard's metrics, for a scrape.
    fn snapshot(&self) -> Snapshot {
        let mesh_calls = self.ctx.mesh.hops();
        let hops = mesh_calls.iter().map(|(_, n)| n).sum();
        self.metrics.cross_shard_calls.set(hops);
        let (counters, requests) = self.metrics.snapshot();
        let partitions = self
            .partitions
            .owned()
            .into_iter()
            .map(|(t, p, part)| {
                let l = &part.log;
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
            shard: self.ctx.id.0,
            counters,
            requests,
            partitions,
            connections: self.net.connections.get(),
            group_offsets: self.groups.committed(),
            produce_credit_in_use_bytes: self.net.credit.in_use() as u64,
            fsync: crate::runtime::sync_latency::snapshot(
                crate::runtime::sync_latency::Synced::Segment,
            ),
            journal_fsync: crate::runtime::sync_latency::snapshot(
                crate::runtime::sync_latency::Synced::Journal,
            ),
            queued: self.metrics.queued_snapshot(),
            mesh_calls,
            shares: self
                .partitions
                .share_views(None)
                .into_iter()
                .map(|v| crate::metrics::ShareMetric {
                    group: v.group.to_string(),
                    topic: v.topic.to_string(),
                    partition: v.partition,
                    start_offset: v.start,
                    available: v.counts.available,
                    acquired: v.counts.acquired,
                    archived_total: v.archived_total,
                    delivery_limit_hits: v.delivery_limit_hits,
                    lock_expiries: v.lock_expiries,
                })
                .collect(),
            dlq_writes: self.partitions.shares().dlq_writes.get(),
            dlq_failures: self.partitions.shares().dlq_failures.get(),
            dirty_ratios: self.partitions.dirty_ratios(),
            cleaner_bytes_per_sec: self.metrics.cleaner_last_bytes_per_sec.get(),
            partition_fetched: self
                .partitions
                .owned()
                .into_iter()
                .map(|(t, p, part)| (t.to_string(), p, part.fetched_bytes.get()))
                .collect(),
            share_dlqs: self.shares.dlq_topics(),
        }
    }
}

/// Where the share partitions of this shard write dead-letter records (KIP-1191): the
/// DLQ topic must start with `dlq.` and have `errors.deadletterqueue.group.enable=true`;
/// one that does not exist is created so (one partition) when auto-creation is on. The
/// batch is appended to partition 0 with acks=all.
fn dlq_sink(
    cluster: Rc<Cluster>,
    mesh: Rc<crate::runtime::Mesh>,
    auto_create: bool,
) -> crate::partition::share::dlq::DlqSink {
    use crate::cluster::topic_config::DLQ_GROUP_ENABLE;
    use crate::cluster::{Change, NewTopic};
    Rc::new(move |topic: String, batch: bytes::Bytes| {
        let (cluster, mesh) = (cluster.clone(), mesh.clone());
        Box::pin(async move {
            let refuse = |m: String| Err(KafkaError::new(ErrorCode::InvalidConfig, m));
            if !topic.starts_with(share::configs::DLQ_PREFIX) {
                return refuse(format!(
                    "DLQ topic {topic} does not start with the DLQ prefix"
                ));
            }
            if cluster.registry().topic(&topic).is_none() && auto_create {
                let configs = [(DLQ_GROUP_ENABLE.to_string(), "true".to_string())].into();
                let create = Change::Create(NewTopic {
                    name: topic.clone(),
                    partitions: 1,
                    configs,
                });
                let _ = cluster.change(vec![create], false).await;
            }
            let reg = cluster.registry();
            let Some(meta) = reg.topic(&topic) else {
                return refuse(format!("DLQ topic {topic} does not exist"));
            };
            if meta.overrides.get(DLQ_GROUP_ENABLE).map(String::as_str) != Some("true") {
                return refuse(format!("topic {topic} has {DLQ_GROUP_ENABLE}=false"));
            }
            let Some(owner) = meta.owner(0) else {
                return refuse(format!("DLQ topic {topic} has no partition 0"));
            };
            let append = crate::partition::messages::Append {
                topic: meta.name.clone(),
                partition: 0,
                records: batch,
                acks: -1,
            };
            mesh.call(owner, append)
                .await
                .map_err(|_| KafkaError::new(ErrorCode::NotLeaderOrFollower, "shutting down"))?
                .map(|_| ())
        })
    })
}

/// The controller installs a saved registry on every shard through this.
fn installer(ctx: &ShardContext) -> Installer {
    let mesh = ctx.mesh.clone();
    Rc::new(move |next: Arc<Registry>| {
        let mesh = mesh.clone();
        Box::pin(async move {
            for r in mesh.call_all(InstallRegistry(next)).await {
                match r {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        return Err(KafkaError::new(ErrorCode::KafkaStorageError, e.message))
                    }
                    Err(_) => {
                        return Err(KafkaError::new(
                            ErrorCode::UnknownServerError,
                            "broker is shutting down",
                        ))
                    }
                }
            }
            Ok(())
        })
    })
}

/// The admin endpoint gathers every shard's metrics through this.
fn collector(ctx: &ShardContext) -> crate::metrics::http::Collect {
    let mesh = ctx.mesh.clone();
    Rc::new(move || {
        let mesh = mesh.clone();
        Box::pin(async move {
            mesh.call_all(CollectMetrics)
                .await
                .into_iter()
                .flatten()
                .collect()
        })
    })
}

/// From the controller: route with this registry from now on, once this shard has
/// opened the partitions it gives it and removed those it takes away.
#[derive(Clone)]
pub struct InstallRegistry(pub Arc<Registry>);

impl Message for InstallRegistry {
    type Service = Broker;
    type Reply = Result<(), KafkaError>;
    const NAME: &'static str = "broker.install_registry";

    async fn handle(self, b: Rc<Broker>) -> Self::Reply {
        b.install(self.0).await
    }
}

/// From the admin endpoint: this shard's metrics.
#[derive(Clone)]
pub struct CollectMetrics;

impl Message for CollectMetrics {
    type Service = Broker;
    type Reply = Snapshot;
    const NAME: &'static str = "broker.collect_metrics";

    async fn handle(self, b: Rc<Broker>) -> Self::Reply {
        b.snapshot()
    }
}
