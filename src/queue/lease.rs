//! Which worker runs a job, across the fleet. The worker running a job holds an exclusive queue
//! named after it: RabbitMQ lets one connection declare it, and drops it with that connection.
//! So a job offered twice (published twice, or given to another worker while its first worker
//! was cut off from the broker) is not run twice, a dead worker's job can be taken at once, and
//! a worker that comes back from a lost connection learns whether another took its job over.

use anyhow::Context;
use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ErrorKind};

/// RabbitMQ's reply when another connection holds an exclusive queue.
const RESOURCE_LOCKED: u16 = 405;

/// The lease's queue name for a job of `job_queue`.
pub fn name(job_queue: &str, egress_id: &str) -> String {
    format!("{job_queue}.running.{egress_id}")
}

/// Takes the lease; `false` when another worker holds it.
pub async fn take(connection: &Connection, name: &str) -> anyhow::Result<bool> {
    // A refused declare closes its channel, so each attempt has a channel of its own.
    let channel = connection
        .create_channel()
        .await
        .context("cannot open a channel for a job lease")?;
    let declared = channel
        .queue_declare(
            name.into(),
            QueueDeclareOptions {
                exclusive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await;
    match declared {
        Ok(_) => {
            let _ = channel.close(200, "lease taken".into()).await;
            Ok(true)
        }
        Err(e) if held_elsewhere(&e) => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot take the job lease {name}")),
    }
}

/// Gives the lease up (a job that ended).
pub async fn release(connection: &Connection, name: &str) {
    let released = async {
        let channel = connection.create_channel().await?;
        channel
            .queue_delete(name.into(), QueueDeleteOptions::default())
            .await?;
        channel.close(200, "lease released".into()).await
    };
    if let Err(e) = released.await {
        tracing::warn!(lease = name, error = %e, "cannot release a job lease; it ends with the connection");
    }
}

fn held_elsewhere(error: &lapin::Error) -> bool {
    matches!(error.kind(), ErrorKind::ProtocolError(amqp) if amqp.get_id() == RESOURCE_LOCKED)
}
