//! EndTxn: commit or abort.

use super::*;

pub async fn end_txn(
    ctx: &Context,
    az: &Authz<'_>,
    req: EndTxnRequest,
    version: i16,
) -> EndTxnResponse {
    let id = req.transactional_id.to_string();
    if let Err(e) = az.transactional_id(&id, WRITE) {
        return EndTxnResponse::default().with_error_code(e.code.code());
    }
    let (pid, epoch, commit) = (req.producer_id.0, req.producer_epoch, req.committed);
    let msg = tm::EndTxn {
        transactional_id: id.clone(),
        producer_id: pid,
        epoch,
        commit,
        version,
    };
    let r = on_txn(ctx, &id, msg).await;
    EndTxnResponse::default().with_error_code((r.err().unwrap_or(ErrorCode::None)).code())
}
