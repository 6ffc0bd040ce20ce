//! CreatePartitions: more partitions for a topic.

use super::*;

pub async fn create_partitions(
    ctx: &Context,
    req: CreatePartitionsRequest,
    _version: i16,
) -> CreatePartitionsResponse {
    let changes = req
        .topics
        .iter()
        .map(|t| Change::AddPartitions {
            name: t.name.to_string(),
            total: t.count,
        })
        .collect();
    let outcomes = ctx.cluster.change(changes, req.validate_only).await;
    let results = req
        .topics
        .into_iter()
        .zip(outcomes)
        .map(|(t, r)| {
            let res = CreatePartitionsTopicResult::default().with_name(t.name);
            match r {
                Ok(_) => res,
                Err(e) => res
                    .with_error_code(e.wire_code())
                    .with_error_message(msg(e.message)),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}
