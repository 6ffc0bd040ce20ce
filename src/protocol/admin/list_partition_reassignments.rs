//! ListPartitionReassignments (KIP-455): with one broker nothing is ever being
//! reassigned, so the list is empty.

use super::*;

pub async fn list_partition_reassignments(
    _ctx: &Context,
    _req: ListPartitionReassignmentsRequest,
    _version: i16,
) -> ListPartitionReassignmentsResponse {
    ListPartitionReassignmentsResponse::default()
}
