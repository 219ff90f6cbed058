//! The RabbitMQ side of the fleet: the topology every worker and coordinator declares (job queue
//! with its dead-letter queue, events topic exchange, control fanout exchange) and the sink that
//! publishes events to it.

use super::config::AmqpConfig;
use crate::events::{Event, EventSink};
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

/// Sends events to the events exchange (routing key = event type), in order. While the broker is
/// away events wait in memory and go out once a channel is back.
pub struct AmqpEventSink {
    queue: tokio::sync::mpsc::UnboundedSender<Event>,
    /// Also print events as JSON lines on stdout.
    stdout: Option<crate::events::JsonLinesSink<std::io::Stdout>>,
}

/// The publishing channel of the current connection, replaced on reconnect.
pub type SharedChannel = Arc<Mutex<Option<Channel>>>;

impl AmqpEventSink {
    pub fn start(
        runtime: &tokio::runtime::Handle,
        exchange: String,
        channel: SharedChannel,
        stdout: bool,
    ) -> AmqpEventSink {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
        runtime.spawn(async move {
            while let Some(event) = rx.recv().await {
                let body = match serde_json::to_vec(&event) {
                    Ok(body) => body,
                    Err(e) => {
                        tracing::error!(error = %e, "event could not be serialized");
                        continue;
                    }
                };
                let kind = event.type_name();
                loop {
                    let current = channel.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    let sent = match current {
                        Some(channel) => {
                            let id = BasicProperties::default().with_message_id(event.event_id.as_str().into());
                            publish_with(&channel, &exchange, &kind, &body, id).await
                        }
                        None => Err(anyhow::anyhow!("no connection to RabbitMQ")),
                    };
                    match sent {
                        Ok(()) => break,
                        Err(e) => {
                            tracing::warn!(event = %kind, error = %format!("{e:#}"), "event not published yet; retrying");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
            }
        });
        AmqpEventSink {
            queue: tx,
            stdout: stdout.then(|| crate::events::JsonLinesSink::new(std::io::stdout())),
        }
    }
}

impl EventSink for AmqpEventSink {
    fn emit(&self, event: &Event) {
        if let Some(stdout) = &self.stdout {
            stdout.emit(event);
        }
        let _ = self.queue.send(event.clone());
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
