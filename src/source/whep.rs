//! WHEP connector: one stream from a WHEP endpoint (RFC 9725) as one participant. The offer goes
//! out with its candidates (no trickle needed), the answer comes back in the `201`, and the
//! session's resource is deleted at the end. A connection that fails is made again.

use super::webrtc::{RECEIVE_LATENCY, ReceivedTrack, ReceivingPeer};
use super::{CallClock, ParticipantInfo, Source, SourceEvent, TrackKind};
use crate::backoff::{BackoffPolicy, SystemClock};
use crate::job;
use anyhow::{Context, anyhow, bail};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
const GATHER_TIMEOUT: Duration = Duration::from_secs(2);
/// An endpoint that cannot be reached fails the job after this long.
const FIRST_CONNECT: BackoffPolicy =
    BackoffPolicy::new(Duration::from_millis(500), Duration::from_millis(500))
        .with_deadline(Duration::from_secs(6));
/// Connecting again after the connection failed: every second until the inactivity timeout.
const RECONNECT: BackoffPolicy = BackoffPolicy::new(Duration::from_secs(1), Duration::from_secs(1));
const DEFAULT_USER: &str = "whep";

pub struct WhepSource {
    config: job::WhepSource,
}

impl WhepSource {
    pub fn new(config: job::WhepSource) -> Self {
        super::webrtc::warm_up();
        WhepSource { config }
    }
}

impl Source for WhepSource {
    fn input_latency(&self) -> Duration {
        RECEIVE_LATENCY
    }

    fn start(
        self: Box<Self>,
        clock: CallClock,
        events: Sender<SourceEvent>,
        stop: Arc<AtomicBool>,
    ) -> anyhow::Result<()> {
        super::spawn_follower("whep", events, move |events| {
            let outcome = follow(&self.config, &clock, events, &stop);
            let _ = events.send(SourceEvent::Left {
                user_id: identity(&self.config).user_id,
                at: None,
            });
            outcome
        })
    }
}

fn identity(config: &job::WhepSource) -> ParticipantInfo {
    let meta = &config.participant;
    let user_id = meta.user_id.clone().unwrap_or_else(|| DEFAULT_USER.to_owned());
    ParticipantInfo {
        name: meta.name.clone().unwrap_or_else(|| user_id.clone()),
        user_id,
        roles: meta.roles.clone(),
        pinned: false,
    }
}

/// One WHEP session: the peer and the resource to delete at the end.
struct Session {
    peer: ReceivingPeer,
    resource: Option<String>,
    kinds: Arc<Mutex<HashSet<TrackKind>>>,
}

fn follow(
    config: &job::WhepSource,
    clock: &CallClock,
    events: &Sender<SourceEvent>,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let roots = crate::tls::ureq_roots()?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(HTTP_TIMEOUT))
        .http_status_as_error(false)
        .tls_config(ureq::tls::TlsConfig::builder().root_certs(roots).build())
        .build()
        .into();
    let person = identity(config);
    let started = Instant::now();
    let mut retry = FIRST_CONNECT.start(SystemClock);
    let inactivity = Duration::from_secs(u64::from(config.inactivity_timeout_seconds));
    let mut session = loop {
        match open(&agent, config, clock, events, &person.user_id) {
            Ok(session) => break session,
            Err(e) if e.is::<Refused>() => return Err(e),
            Err(e) => {
                if stop.load(Ordering::Relaxed) || !retry.sleep() {
                    return Err(e);
                }
                tracing::debug!(error = %format!("{e:#}"), "WHEP endpoint not reachable yet");
            }
        }
    };
    tracing::info!(
        join_ms = started.elapsed().as_millis() as u64,
        "WHEP session open"
    );
    let _ = events.send(SourceEvent::Joined(person.clone()));
    let mut lost_since: Option<Instant> = None;
    loop {
        if stop.load(Ordering::Relaxed) {
            close(&agent, config, session);
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
        if !session.peer.has_failed() {
            continue;
        }
        let since = *lost_since.get_or_insert_with(Instant::now);
        tracing::warn!("the WHEP connection failed; connecting again");
        for kind in session.kinds.lock().unwrap_or_else(|e| e.into_inner()).drain() {
            let _ = events.send(SourceEvent::TrackRemoved {
                user_id: person.user_id.clone(),
                kind,
                at: None,
            });
        }
        close(&agent, config, session);
        let mut retry = RECONNECT.start(SystemClock);
        session = loop {
            if stop.load(Ordering::Relaxed) || since.elapsed() >= inactivity {
                return Ok(());
            }
            match open(&agent, config, clock, events, &person.user_id) {
                Ok(session) => break session,
                Err(e) => {
                    tracing::debug!(error = %format!("{e:#}"), "WHEP endpoint not back yet");
                    retry.sleep();
                }
            }
        };
        lost_since = None;
    }
}

/// The endpoint said no (4xx): trying again will not help.
#[derive(Debug, thiserror::Error)]
#[error("the WHEP endpoint refused the session: HTTP {0}")]
struct Refused(u16);

fn open(
    agent: &ureq::Agent,
    config: &job::WhepSource,
    clock: &CallClock,
    events: &Sender<SourceEvent>,
    user_id: &str,
) -> anyhow::Result<Session> {
    let kinds: Arc<Mutex<HashSet<TrackKind>>> = Arc::default();
    let added = kinds.clone();
    let events = events.clone();
    let user = user_id.to_owned();
    let peer = ReceivingPeer::new("whep", clock, move |track: ReceivedTrack| {
        let kind = if track.is_video {
            TrackKind::Camera
        } else {
            TrackKind::Microphone
        };
        if !added.lock().unwrap_or_else(|e| e.into_inner()).insert(kind) {
            return;
        }
        let _ = events.send(SourceEvent::TrackAdded {
            user_id: user.clone(),
            kind,
            media: track.media,
            encoded: true,
            starts_at: Some(Duration::ZERO),
        });
    })?;
    let offer = peer.offer(GATHER_TIMEOUT)?;
    let mut request = agent
        .post(&config.url)
        .header("Content-Type", "application/sdp")
        .header("Accept", "application/sdp");
    if let Some(token) = &config.bearer_token {
        request = request.header("Authorization", &format!("Bearer {token}"));
    }
    let mut response = request
        .send(offer.as_bytes())
        .map_err(|e| anyhow!("cannot reach the WHEP endpoint: {e}"))?;
    let status = response.status().as_u16();
    if (400..500).contains(&status) {
        return Err(Refused(status).into());
    }
    if status != 201 && status != 200 {
        bail!("the WHEP endpoint answered HTTP {status}");
    }
    let resource = response
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .and_then(|l| url::Url::parse(&config.url).ok()?.join(l).ok())
        .map(|u| u.to_string());
    let answer = response
        .body_mut()
        .read_to_string()
        .context("cannot read the WHEP answer")?;
    peer.accept_answer(&answer)?;
    Ok(Session {
        peer,
        resource,
        kinds,
    })
}

/// Deletes the session's resource on the endpoint (best effort) and ends the peer.
fn close(agent: &ureq::Agent, config: &job::WhepSource, session: Session) {
    if let Some(resource) = &session.resource {
        let mut request = agent.delete(resource);
        if let Some(token) = &config.bearer_token {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        if let Err(e) = request.call() {
            tracing::debug!(error = %e, "the WHEP resource was not deleted");
        }
    }
    drop(session.peer);
}
