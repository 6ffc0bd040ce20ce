//! DeleteTopics, by name or by topic id (v6).

use super::*;

pub async fn delete_topics(
    ctx: &Context,
    az: &Authz<'_>,
    req: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let reg = ctx.cluster.registry();
    // (name as asked, topic id as asked, resolved name or error)
    let asked: Vec<(Option<TopicName>, uuid::Uuid, Result<String, KafkaError>)> = if version >= 6 {
        req.topics
            .into_iter()
            .map(|t| {
                let resolved = match &t.name {
                    Some(n) => Ok(n.to_string()),
                    None => reg
                        .topic_by_id(&t.topic_id)
                        .map(|m| m.name.to_string())
                        .ok_or_else(|| {
                            KafkaError::new(ErrorCode::UnknownTopicId, "unknown topic id")
                        }),
                };
                (t.name, t.topic_id, resolved)
            })
            .collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| {
                let s = n.to_string();
                (Some(n), uuid::Uuid::nil(), Ok(s))
            })
            .collect()
    };
    let planned = asked
        .iter()
        .map(|(_, _, r)| {
            let name = r.clone()?;
            az.topic(&name, DELETE)?;
            Ok(Change::Delete { name })
        })
        .collect();
    let outcomes = ctx.cluster.change_planned(planned, false).await;
    let responses =
        asked
            .into_iter()
            .zip(outcomes)
            .map(|((name, id, _), r)| {
                let res = DeletableTopicResult::default()
                    .with_name(name)
                    .with_topic_id(id);
                match r {
                    Ok(meta) if version >= 6 => res.with_topic_id(meta.id).with_name(Some(
                        TopicName(StrBytes::from_string(meta.name.to_string())),
                    )),
                    Ok(_) => res,
                    Err(e) if version >= 5 => res
                        .with_error_code(e.wire_code())
                        .with_error_message(msg(e.message)),
                    Err(e) => res.with_error_code(e.wire_code()),
                }
            })
            .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}
