//! The RabbitMQ side of the fleet: the topology every worker and coordinator declares (job queue
//! with its dead-letter queue, events topic exchange, control fanout exchange) and the
//! destination that publishes the journal's events to it.

use super::config::AmqpConfig;
use crate::events::{Destination, Event, Sent};
use anyhow::Context;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Persistent messages survive a broker restart.
pub const PERSISTENT: u8 = 2;

/// Connects; `role` names the process in the broker's connection list (with its pid), so that
/// an operator can tell the fleet's connections apart.
pub async fn connect(config: &AmqpConfig, role: &str) -> anyhow::Result<Connection> {
    let name = format!("egress {role} pid {}", std::process::id());
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    let cert_chain = match &config.tls_ca_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("amqp.tls_ca_file: cannot read {}", path.display()))?,
        ),
        None => None,
    };
    let tls = lapin::tcp::OwnedTLSConfig {
        identity: None,
        cert_chain,
    };
    let runtime = lapin::runtime::default_runtime()?;
    Connection::connect_with_config(&config.url, properties, tls, runtime)
        .await
        .with_context(|| format!("cannot connect to RabbitMQ at {}", without_password(&config.url)))
}

/// Declares the queues and exchanges (idempotent: every worker and helper does it).
pub async fn declare(channel: &Channel, config: &AmqpConfig) -> anyhow::Result<()> {
    channel
        .queue_declare(
            config.dead_letter_queue.as_str().into(),
            QueueDeclareOptions::durable(),
            FieldTable::default(),
        )
        .await
        .context("cannot declare the dead-letter queue")?;
    let mut arguments = FieldTable::default();
    arguments.insert("x-dead-letter-exchange".into(), AMQPValue::LongString("".into()));
    arguments.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(config.dead_letter_queue.as_str().into()),
    );
    channel
        .queue_declare(
            config.job_queue.as_str().into(),
            QueueDeclareOptions::durable(),
            arguments,
        )
        .await
        .context("cannot declare the job queue")?;
    for (name, kind) in [
        (&config.events_exchange, ExchangeKind::Topic),
        (&config.control_exchange, ExchangeKind::Fanout),
    ] {
        channel
            .exchange_declare(
                name.as_str().into(),
                kind,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("cannot declare exchange {name}"))?;
    }
    Ok(())
}

/// Publishes one persistent message and waits for the broker to confirm it.
pub async fn publish(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
) -> anyhow::Result<()> {
    publish_with(channel, exchange, routing_key, body, BasicProperties::default()).await
}

/// Publishes one persistent message with `properties` (a message id) and waits for the broker
/// to confirm it.
pub async fn publish_with(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
) -> anyhow::Result<()> {
    let confirm = channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions::default(),
            body,
            properties
                .with_delivery_mode(PERSISTENT)
                .with_content_type("application/json".into()),
        )
        .await?
        .await?;
    anyhow::ensure!(!confirm.is_nack(), "the broker refused the message");
    Ok(())
}

pub async fn confirming_channel(connection: &Connection) -> anyhow::Result<Channel> {
    let channel = connection.create_channel().await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    Ok(channel)
}

/// The publishing channel of the current connection, replaced on reconnect.
pub type SharedChannel = Arc<Mutex<Option<Channel>>>;

/// How long one publish may wait for the broker's confirm before it counts as not taken.
const CONFIRM_WAIT: Duration = Duration::from_secs(10);

/// The events exchange as a destination of the event journal (routing key = event type,
/// message id = event id): an event is confirmed by the broker's publisher confirm.
pub struct AmqpDestination {
    runtime: tokio::runtime::Handle,
    exchange: String,
    channel: SharedChannel,
}

impl AmqpDestination {
    pub fn new(runtime: &tokio::runtime::Handle, exchange: String, channel: SharedChannel) -> Self {
        AmqpDestination {
            runtime: runtime.clone(),
            exchange,
            channel,
        }
    }
}

impl Destination for AmqpDestination {
    fn send(&mut self, event: &Event, body: &[u8], attempt: &mut u32) -> Sent {
        let current = self.channel.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(channel) = current else {
            return Sent::Later("no connection to RabbitMQ".into());
        };
        *attempt += 1;
        let kind = event.type_name();
        let id = BasicProperties::default().with_message_id(event.event_id.as_str().into());
        // The timer is made inside the runtime, which it needs.
        let published = self.runtime.block_on(async {
            tokio::time::timeout(
                CONFIRM_WAIT,
                publish_with(&channel, &self.exchange, &kind, body, id),
            )
            .await
        });
        match published {
            Ok(Ok(())) => Sent::Confirmed,
            Ok(Err(e)) => Sent::Later(format!("{e:#}")),
            Err(_) => Sent::Later("no confirm from RabbitMQ in time".into()),
        }
    }
}

/// The URL for logs: the password is never printed.
pub fn without_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            let user = credentials.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::without_password;

    #[test]
    fn passwords_stay_out_of_logged_urls() {
        assert_eq!(
            without_password("amqps://egress:s3cr3t@mq.example:5671/prod"),
            "amqps://egress:***@mq.example:5671/prod"
        );
        assert_eq!(
            without_password("amqp://127.0.0.1:5672/%2f"),
            "amqp://127.0.0.1:5672/%2f"
        );
    }
}
