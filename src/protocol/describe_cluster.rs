//! DescribeCluster (KIP-700): one broker, which is also the controller; the cluster's
//! authorized operations when asked (KIP-430: those the principal may do).

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::*;

use super::authorized;
use super::metadata::{str_bytes, CLUSTER_ID, NODE_ID};
use crate::protocol::context::Context;

pub async fn handle(
    ctx: &Context,
    az: &authorized::Authz<'_>,
    req: DescribeClusterRequest,
    _version: i16,
    listener: usize,
) -> DescribeClusterResponse {
    let (host, port) = ctx.config.advertised_on(listener);
    DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(CLUSTER_ID))
        .with_controller_id(BrokerId(NODE_ID))
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(BrokerId(NODE_ID))
            .with_host(str_bytes(&host))
            .with_port(port)])
        .with_cluster_authorized_operations(
            az.cluster_operations(req.include_cluster_authorized_operations),
        )
}
