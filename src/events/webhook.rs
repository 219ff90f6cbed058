//! Events to HTTP endpoints: a signed JSON POST per event, retried as the seed's "Error
//! Handling" says (408, 429 and 5xx: 3 attempts; network error: 2; timeout: 3; 6 s per request,
//! 15 s in all). Each endpoint is a lane of the event journal, with its own thread, so a slow
//! one delays no other, and an endpoint away for longer gets its events once it is back.

use super::Event;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
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

/// One webhook endpoint as a destination of the event journal: each try of an event follows the
/// seed's rules; an event those tries could not deliver stays in the journal and is tried
/// again later, with the attempt count going on.
pub struct WebhookDestination {
    config: WebhookConfig,
    agent: ureq::Agent,
}

impl WebhookDestination {
    pub fn new(config: &WebhookConfig) -> WebhookDestination {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(REQUEST_TIMEOUT))
            .http_status_as_error(false)
            .build()
            .into();
        WebhookDestination {
            config: config.clone(),
            agent,
        }
    }

    /// The journal lane's name: stable for the endpoint across restarts, and telling nothing
    /// of its URL (which may carry a token).
    pub fn lane_name(&self) -> String {
        let hash = self.config.url.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        format!("webhook-{hash:016x}")
    }
}

impl super::Destination for WebhookDestination {
    fn send(&mut self, event: &Event, body: &[u8], attempt: &mut u32) -> super::Sent {
        deliver(&self.agent, &self.config, &event.event_id, body, attempt)
    }
}

/// Sends one event with the seed's retries, numbering the requests from `attempt` on.
fn deliver(
    agent: &ureq::Agent,
    config: &WebhookConfig,
    id: &str,
    body: &[u8],
    attempt: &mut u32,
) -> super::Sent {
    let signed = signature(&config.api_secret, body);
    let started = Instant::now();
    let mut tries = 1u32;
    loop {
        // The last try gets what is left of the 15 s.
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
        *attempt += 1;
        let failure = match sent {
            Ok(response) => match Failure::of_status(response.status().as_u16()) {
                None => return super::Sent::Confirmed,
                Some(Failure::Refused) => {
                    return super::Sent::Refused(format!("HTTP {}", response.status().as_u16()));
                }
                Some(failure) => failure,
            },
            Err(ureq::Error::Timeout(_)) => Failure::Timeout,
            Err(_) => Failure::Network,
        };
        let out_of_time = started.elapsed() + BETWEEN_ATTEMPTS >= ALL_ATTEMPTS_WITHIN;
        if tries >= failure.max_attempts() || out_of_time {
            return super::Sent::Later(format!("{failure:?} after {tries} tries"));
        }
        std::thread::sleep(BETWEEN_ATTEMPTS);
        tries += 1;
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
