//! ListPartitionReassignments (KIP-455): with one broker nothing is ever being
//! reassigned, so the list is empty.

use super::*;

pub async fn list_partition_reassignments(
    _ctx: &Context,
    az: &Authz<'_>,
    _req: ListPartitionReassignmentsRequest,
    _version: i16,
) -> ListPartitionReassignmentsResponse {
    if let Err(e) = az.cluster(DESCRIBE) {
        return ListPartitionReassignmentsResponse::default().with_error_code(e.code.code());
    }
    ListPartitionReassignmentsResponse::default()
}
