//! Events to HTTP endpoints: a signed JSON POST per event, retried as the seed's "Error
//! Handling" says (408, 429 and 5xx: 3 attempts; network error: 2; timeout: 3; 6 s per request,
//! 15 s in all). Each endpoint has its own thread and queue, so a slow one delays no other.

use super::{Event, EventSink};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(6);
const ALL_ATTEMPTS_WITHIN: Duration = Duration::from_secs(15);
const BETWEEN_ATTEMPTS: Duration = Duration::from_millis(500);

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// Sent as `X-API-KEY`.
    pub api_key: String,
    /// Key of the `X-SIGNATURE` HMAC; never logged.
    pub api_secret: String,
    /// Event types sent to this endpoint; empty: all.
    #[serde(default)]
    pub events: Vec<String>,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("api_key", &self.api_key)
            .field("api_secret", &"[redacted]")
            .field("events", &self.events)
            .finish()
    }
}

/// The hex HMAC-SHA256 of a body with the API secret: the `X-SIGNATURE` header.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// What a failed attempt allows.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Failure {
    /// 408, 429, 5xx.
    Retryable,
    Network,
    Timeout,
    /// Any other status: the endpoint refused the event; not sent again.
    Refused,
}

impl Failure {
    fn max_attempts(self) -> u32 {
        match self {
            Failure::Retryable | Failure::Timeout => 3,
            Failure::Network => 2,
            Failure::Refused => 1,
        }
    }

    fn of_status(status: u16) -> Option<Failure> {
        match status {
            200..=299 => None,
            408 | 429 | 500.. => Some(Failure::Retryable),
            _ => Some(Failure::Refused),
        }
    }
}

pub struct WebhookSink {
    endpoints: Vec<(Vec<String>, Mutex<mpsc::Sender<Event>>)>,
}

impl WebhookSink {
    /// One delivery thread per endpoint; a worker that cannot start them does not start.
    pub fn start(configs: &[WebhookConfig]) -> anyhow::Result<WebhookSink> {
        let endpoints = configs
            .iter()
            .map(|config| {
                let (tx, rx) = mpsc::channel::<Event>();
                let wanted = config.events.clone();
                let config = config.clone();
                std::thread::Builder::new()
                    .name("webhook".into())
                    .spawn(move || deliver_all(&config, rx))
                    .map_err(|e| anyhow::anyhow!("cannot start a webhook delivery thread: {e}"))?;
                Ok((wanted, Mutex::new(tx)))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(WebhookSink { endpoints })
    }
}

impl EventSink for WebhookSink {
    fn emit(&self, event: &Event) {
        let kind = event.type_name();
        for (wanted, queue) in &self.endpoints {
            if wanted.is_empty() || wanted.contains(&kind) {
                let _ = queue
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .send(event.clone());
            }
        }
    }
}

fn deliver_all(config: &WebhookConfig, events: mpsc::Receiver<Event>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(REQUEST_TIMEOUT))
        .http_status_as_error(false)
        .build()
        .into();
    for event in events {
        let Ok(body) = serde_json::to_vec(&event) else {
            continue;
        };
        deliver(&agent, config, &event.type_name(), &event.event_id, &body);
    }
}

/// Sends one event with its retries; gives up (with a log line) when the rules say so.
fn deliver(agent: &ureq::Agent, config: &WebhookConfig, kind: &str, id: &str, body: &[u8]) {
    let signed = signature(&config.api_secret, body);
    let started = Instant::now();
    let mut attempt = 1u32;
    loop {
        // The last attempt gets what is left of the 15 s.
        let left = ALL_ATTEMPTS_WITHIN.saturating_sub(started.elapsed());
        let sent = agent
            .post(&config.url)
            .config()
            .timeout_global(Some(left.min(REQUEST_TIMEOUT)))
            .build()
            .header("Content-Type", "application/json")
            .header("X-WEBHOOK-ID", id)
            .header("X-WEBHOOK-ATTEMPT", &attempt.to_string())
            .header("X-API-KEY", &config.api_key)
            .header("X-SIGNATURE", &signed)
            .send(body);
        let failure = match sent {
            Ok(response) => Failure::of_status(response.status().as_u16()),
            Err(ureq::Error::Timeout(_)) => Some(Failure::Timeout),
            Err(_) => Some(Failure::Network),
        };
        let Some(failure) = failure else {
            return;
        };
        let out_of_time = started.elapsed() + BETWEEN_ATTEMPTS >= ALL_ATTEMPTS_WITHIN;
        if attempt >= failure.max_attempts() || out_of_time {
            tracing::warn!(url = %config.url, event = %kind, attempts = attempt, ?failure, "webhook not delivered");
            return;
        }
        std::thread::sleep(BETWEEN_ATTEMPTS);
        attempt += 1;
    }
}

/// Sends every event to each of several sinks.
pub struct FanOut(pub Vec<std::sync::Arc<dyn EventSink>>);

impl EventSink for FanOut {
    fn emit(&self, event: &Event) {
        for sink in &self.0 {
            sink.emit(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hex_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn retries_follow_the_kind_of_failure() {
        assert_eq!(Failure::of_status(204), None);
        assert_eq!(Failure::of_status(500), Some(Failure::Retryable));
        assert_eq!(Failure::of_status(429), Some(Failure::Retryable));
        assert_eq!(Failure::of_status(408), Some(Failure::Retryable));
        assert_eq!(Failure::of_status(404), Some(Failure::Refused));
        assert_eq!(Failure::Retryable.max_attempts(), 3);
        assert_eq!(Failure::Network.max_attempts(), 2);
        assert_eq!(Failure::Timeout.max_attempts(), 3);
        assert_eq!(Failure::Refused.max_attempts(), 1);
    }
}
