//! One krafka share consumer in explicit acknowledgement mode:
//! `sluice-krafka-share BOOTSTRAP TOPIC GROUP WANT`.
//!
//! It accepts records until WANT of them are accepted, except that the first delivery of
//! offset 0 is released (so it must come back with delivery count 2). Every delivery is
//! printed as `offset delivery_count value`, every commit outcome is checked, and the
//! consumer leaves the group. Exits non-zero on any error or after 60 s.

use std::time::{Duration, Instant};

use krafka::Kafka;
use krafka::share_consumer::AcknowledgementMode;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, bootstrap, topic, group, want] = &args[..] else {
        return Err("usage: sluice-krafka-share BOOTSTRAP TOPIC GROUP WANT".into());
    };
    let want: usize = want.parse()?;
    let kafka = Kafka::builder(bootstrap.clone())
        .client_id("krafka-share")
        .connect()
        .await?;
    let consumer = kafka
        .share_consumer(group.clone())
        .acknowledgement_mode(AcknowledgementMode::Explicit)
        .max_poll_records(25)
        .build()
        .await?;
    consumer.subscribe([topic.as_str()]).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut accepted, mut released_once) = (0, false);
    while accepted < want {
        if Instant::now() > deadline {
            return Err(format!("only {accepted} of {want} accepted in 60 s").into());
        }
        let records = consumer.poll(Duration::from_millis(500)).await?;
        for r in &records {
            let value = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default());
            println!("{} {} {value}", r.offset, r.delivery_count.unwrap_or(-1));
            if r.offset == 0 && !released_once {
                released_once = true;
                consumer.release(r)?;
            } else {
                consumer.ack(r)?;
                accepted += 1;
            }
        }
        if !records.is_empty() {
            for (tp, outcome) in consumer.commit().await? {
                outcome.map_err(|e| format!("commit {}-{}: {e}", tp.topic, tp.partition))?;
            }
        }
    }
    consumer.close().await?;
    Ok(())
}
