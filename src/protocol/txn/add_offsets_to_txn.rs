//! AddOffsetsToTxn: the group's offsets will be committed with the transaction.

use super::*;

pub async fn add_offsets(
    ctx: &Context,
    az: &Authz<'_>,
    req: AddOffsetsToTxnRequest,
    version: i16,
) -> AddOffsetsToTxnResponse {
    let id = req.transactional_id.to_string();
    let (pid, epoch) = (req.producer_id.0, req.producer_epoch);
    let group = req.group_id.to_string();
    let denied = az.transactional_id(&id, WRITE).and(az.group(&group, READ));
    if let Err(e) = denied {
        return AddOffsetsToTxnResponse::default().with_error_code(e.code.code());
    }
    let msg = tm::AddOffsets {
        transactional_id: id.clone(),
        producer_id: pid,
        epoch,
        group,
        version,
    };
    let r = on_txn(ctx, &id, msg).await;
    AddOffsetsToTxnResponse::default().with_error_code((r.err().unwrap_or(ErrorCode::None)).code())
}
