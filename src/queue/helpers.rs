//! Coordinator helpers: put a job on the queue, stop a running job.

use super::amqp;
use super::config::AmqpConfig;
use super::control::{ControlAnswer, ControlMessage};
use anyhow::Context;

fn block_on<T>(work: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a runtime")?
        .block_on(work)
}

/// Publishes a job (persistent, confirmed by the broker). A job without `egress_id` gets one
/// here, so that the coordinator knows it before any event. Returns the egress id.
pub fn submit(config: &AmqpConfig, job: &str) -> anyhow::Result<String> {
    let mut value: serde_json::Value = serde_json::from_str(job).context("the job is not JSON")?;
    let object = value.as_object_mut().context("the job is not a JSON object")?;
    let egress_id = match object.get("egress_id").and_then(|v| v.as_str()) {
        Some(id) => id.to_owned(),
        None => {
            let id = format!("eg_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
            object.insert("egress_id".into(), id.clone().into());
            id
        }
    };
    let body = serde_json::to_vec(&value)?;
    block_on(async {
        let connection = amqp::connect(config, "coordinator").await?;
        let channel = amqp::confirming_channel(&connection).await?;
        amqp::declare(&channel, config).await?;
        amqp::publish(&channel, "", &config.job_queue, &body).await?;
        let _ = connection.close(200, "done".into()).await;
        Ok(())
    })?;
    Ok(egress_id)
}

/// Asks the worker running `egress_id`, wherever it is, to stop it (or one of its outputs).
/// Returns what the worker says it did.
pub fn send_stop(
    config: &AmqpConfig,
    egress_id: &str,
    output: Option<crate::session::StoppableOutput>,
) -> anyhow::Result<String> {
    let egress_id = egress_id.to_owned();
    send_control(config, &egress_id.clone(), move |reply_to| ControlMessage::Stop {
        egress_id,
        output,
        reply_to: Some(reply_to),
    })
}

/// Pauses (`pause`) or resumes an output of the job `egress_id` wherever it runs.
pub fn send_pause(
    config: &AmqpConfig,
    egress_id: &str,
    output: crate::session::PausableOutput,
    pause: bool,
) -> anyhow::Result<String> {
    let egress_id = egress_id.to_owned();
    send_control(config, &egress_id.clone(), move |reply_to| {
        let reply_to = Some(reply_to);
        match pause {
            true => ControlMessage::Pause {
                egress_id,
                output,
                reply_to,
            },
            false => ControlMessage::Resume {
                egress_id,
                output,
                reply_to,
            },
        }
    })
}

/// Sends an update (pins, names, roles; JSON of `JobUpdate`) to the job `egress_id`.
pub fn send_update(config: &AmqpConfig, egress_id: &str, update: &str) -> anyhow::Result<String> {
    let update: crate::session::JobUpdate = serde_json::from_str(update).context(
        "the update: expected {\"pinned\": [user ids], \"participants\": {user id: {\"name\", \"roles\"}}, \"layout\": {\"name\", \"options\"}}",
    )?;
    update
        .check()
        .map_err(|problems| anyhow::anyhow!("the update: {problems}"))?;
    let egress_id = egress_id.to_owned();
    send_control(config, &egress_id.clone(), move |reply_to| {
        ControlMessage::Update {
            egress_id,
            update,
            reply_to: Some(reply_to),
        }
    })
}

/// Starts an output of the running job `egress_id`; `section` (JSON) has the job's shape for it.
pub fn send_start(
    config: &AmqpConfig,
    egress_id: &str,
    output: crate::session::OutputKind,
    section: &str,
) -> anyhow::Result<String> {
    let section: serde_json::Value = serde_json::from_str(section)
        .with_context(|| format!("the {} section is not JSON", output.name()))?;
    anyhow::ensure!(
        section.is_object(),
        "the {} section: expected a JSON object, as in a job",
        output.name()
    );
    let egress_id = egress_id.to_owned();
    send_control(config, &egress_id.clone(), move |reply_to| {
        ControlMessage::Start {
            egress_id,
            output,
            section,
            reply_to: Some(reply_to),
        }
    })
}

/// How long `egress status` and the other control commands wait for the worker running the job.
const ANSWER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The status of the job `egress_id` (JSON of `JobStatus`), from the worker running it.
pub fn request_status(config: &AmqpConfig, egress_id: &str) -> anyhow::Result<serde_json::Value> {
    let id = egress_id.to_owned();
    let answer = ask(config, egress_id, move |reply_to| ControlMessage::Status {
        egress_id: id,
        reply_to,
    })?;
    serde_json::from_slice(&answer).context("the worker's answer is not JSON")
}

/// Sends a control message and waits for the worker's answer: what it did, or its refusal as
/// an error.
fn send_control(
    config: &AmqpConfig,
    egress_id: &str,
    message: impl FnOnce(String) -> ControlMessage,
) -> anyhow::Result<String> {
    let answer = ask(config, egress_id, message)?;
    let answer: ControlAnswer =
        serde_json::from_slice(&answer).context("the worker's answer is not understood")?;
    match answer.ok {
        true => Ok(answer.message),
        false => anyhow::bail!("{}: {}", answer.egress_id, answer.message),
    }
}

/// Publishes the message `message(reply_to)` on the control exchange and returns the first
/// answer on `reply_to`, or an error when none came within `ANSWER_WAIT`.
fn ask(
    config: &AmqpConfig,
    egress_id: &str,
    message: impl FnOnce(String) -> ControlMessage,
) -> anyhow::Result<Vec<u8>> {
    use futures_lite::StreamExt;
    use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
    block_on(async {
        let connection = amqp::connect(config, "coordinator").await?;
        let channel = amqp::confirming_channel(&connection).await?;
        amqp::declare(&channel, config).await?;
        let replies = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                lapin::types::FieldTable::default(),
            )
            .await
            .context("cannot declare a queue for the answer")?;
        let mut answers = channel
            .basic_consume(
                replies.name().clone(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                lapin::types::FieldTable::default(),
            )
            .await
            .context("cannot wait for the answer")?;
        let question = message(replies.name().to_string());
        amqp::publish(
            &channel,
            &config.control_exchange,
            "",
            &serde_json::to_vec(&question)?,
        )
        .await?;
        let answer = tokio::time::timeout(ANSWER_WAIT, answers.next()).await;
        let _ = connection.close(200, "done".into()).await;
        match answer {
            Ok(Some(Ok(delivery))) => Ok(delivery.data),
            _ => anyhow::bail!("no worker runs {egress_id} (no answer within {ANSWER_WAIT:?})"),
        }
    })
}
