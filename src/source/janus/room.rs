//! Following one VideoRoom: who publishes, a subscription per publisher, reconnection.

use super::Subscriptions;
use super::signalling::{JanusClient, JanusError};
use crate::backoff::{BackoffPolicy, SystemClock};
use crate::job;
use crate::source::webrtc::{ReceivedTrack, ReceivingPeer};
use crate::source::{CallClock, ParticipantInfo, SourceEvent, TrackKind};
use anyhow::{Context, anyhow};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const VIDEOROOM: &str = "janus.plugin.videoroom";
/// The name under which the recorder sits in the room; it never publishes, so no participant
/// lists it.
const RECORDER_DISPLAY: &str = "egress-recorder";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const GATHER_TIMEOUT: Duration = Duration::from_secs(2);
/// An unreachable Janus fails the job after this long.
const FIRST_JOIN: BackoffPolicy = BackoffPolicy::new(Duration::from_millis(500), Duration::from_millis(500))
    .with_deadline(Duration::from_secs(6));
/// Joining again after Janus went away: soon, then every second until the room's timeout.
const REJOIN: BackoffPolicy = BackoffPolicy::new(Duration::from_millis(200), Duration::from_secs(1));
/// After a lost connection, participants keep their place this long while the recorder and
/// they come back.
const RECONNECT_GRACE: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(50);

/// What one subscription to a publisher carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Part {
    Everything,
    Audio,
    Video,
}

impl Part {
    fn label(self) -> &'static str {
        match self {
            Part::Everything => "all",
            Part::Audio => "audio",
            Part::Video => "video",
        }
    }

    /// The streams of `publisher` to ask Janus for; none when it sends nothing of this part.
    fn streams(self, feed: u64, publisher: &Value) -> Vec<Value> {
        let media = match self {
            Part::Everything => return vec![json!({"feed": feed})],
            Part::Audio => "audio",
            Part::Video => "video",
        };
        publisher["streams"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["type"] == media && s["disabled"] != true)
            .filter_map(|s| s["mid"].as_str())
            .map(|mid| json!({"feed": feed, "mid": mid}))
            .collect()
    }
}

impl Subscriptions {
    fn parts(self) -> &'static [Part] {
        match self {
            Subscriptions::Together => &[Part::Everything],
            Subscriptions::VideoOnly => &[Part::Video],
            Subscriptions::Apart => &[Part::Audio, Part::Video],
        }
    }
}

/// One subscription: a publisher's feed and what of it.
type SubKey = (u64, Part);

/// Joins the room and follows it until `stop`, the room's inactivity timeout or a failure.
pub fn follow(
    config: &job::JanusSource,
    subscriptions: Subscriptions,
    clock: &CallClock,
    events: &Sender<SourceEvent>,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let mut room = Room::new(config, clock, events);
    room.subscriptions = subscriptions;
    let started = Instant::now();
    let mut retry = FIRST_JOIN.start(SystemClock);
    let mut joined = loop {
        match join(config) {
            Ok(joined) => break joined,
            Err(JanusError::Refused { code, reason }) => {
                return Err(anyhow!(
                    "Janus refused to let the recorder into room {}: {reason} (Janus error {code})",
                    config.room
                ));
            }
            Err(e @ JanusError::Tls(_)) => {
                return Err(anyhow!("cannot join Janus room {}: {e}", config.room));
            }
            Err(e) => {
                if stop.load(Ordering::Relaxed) || !retry.sleep() {
                    return Err(anyhow!("cannot join Janus room {}: {e}", config.room));
                }
                tracing::debug!(error = %e, "Janus not reachable yet");
            }
        }
    };
    tracing::info!(
        room = config.room,
        join_ms = started.elapsed().as_millis() as u64,
        "joined the Janus room"
    );
    loop {
        match room.run(&mut joined, stop) {
            Ok(()) => {
                room.leave_all(&mut joined.client);
                joined.client.close();
                return Ok(());
            }
            Err(Interrupted::Failed(e)) => {
                room.leave_all(&mut joined.client);
                return Err(e);
            }
            Err(Interrupted::Lost(e)) => {
                tracing::warn!(error = %e, "connection to Janus lost; joining again");
                room.connection_lost();
                joined = match rejoin(config, &room, stop) {
                    Some(joined) => joined,
                    None => {
                        room.leave_all_without_janus();
                        return Ok(());
                    }
                };
                tracing::info!(room = config.room, "back in the Janus room");
            }
        }
    }
}

/// A connection to Janus with the recorder in the room.
struct Joined {
    client: JanusClient,
    watcher: u64,
    publishers: Vec<Value>,
}

fn join(config: &job::JanusSource) -> Result<Joined, JanusError> {
    let mut client = JanusClient::connect(&config.url, CONNECT_TIMEOUT)?;
    let watcher = client.attach(VIDEOROOM, REQUEST_TIMEOUT)?;
    let mut body = json!({
        "request": "join", "ptype": "publisher", "room": config.room, "display": RECORDER_DISPLAY,
    });
    if let Some(pin) = &config.pin {
        body["pin"] = json!(pin);
    }
    let reply = client.message(watcher, body, None, REQUEST_TIMEOUT)?;
    let publishers = reply.data["publishers"].as_array().cloned().unwrap_or_default();
    Ok(Joined {
        client,
        watcher,
        publishers,
    })
}

/// Tries to join again until it works, `stop` is set or the room's inactivity timeout passes.
fn rejoin(config: &job::JanusSource, room: &Room, stop: &AtomicBool) -> Option<Joined> {
    let mut retry = REJOIN.start(SystemClock);
    loop {
        if stop.load(Ordering::Relaxed) || room.inactive() {
            return None;
        }
        match join(config) {
            Ok(joined) => return Some(joined),
            Err(e) => tracing::debug!(error = %e, "Janus not back yet"),
        }
        retry.sleep();
    }
}

enum Interrupted {
    /// The connection went away; join again.
    Lost(JanusError),
    Failed(anyhow::Error),
}

impl From<JanusError> for Interrupted {
    fn from(e: JanusError) -> Self {
        match e {
            JanusError::Connection(_) | JanusError::Timeout(_) => Interrupted::Lost(e),
            refused => Interrupted::Failed(refused.into()),
        }
    }
}

/// Which subscription each participant's track comes from, shared with the peers' streaming
/// threads.
type Claims = Arc<Mutex<HashMap<(String, TrackKind), SubKey>>>;

struct Feed {
    user_id: String,
    /// The publisher as Janus listed it, to subscribe again.
    publisher: Value,
    handle: u64,
    peer: ReceivingPeer,
    kinds: Arc<Mutex<HashMap<String, TrackKind>>>,
    /// Local candidates are still being sent.
    trickling: bool,
}

struct Person {
    /// Subscriptions to their feeds.
    subscriptions: usize,
    /// Since when a participant has been without feeds after a lost connection.
    orphaned_since: Option<Instant>,
}

struct Room<'a> {
    config: &'a job::JanusSource,
    clock: &'a CallClock,
    events: &'a Sender<SourceEvent>,
    feeds: HashMap<SubKey, Feed>,
    people: HashMap<String, Person>,
    claims: Claims,
    empty_since: Option<Instant>,
    subscriptions: Subscriptions,
}

impl<'a> Room<'a> {
    fn new(config: &'a job::JanusSource, clock: &'a CallClock, events: &'a Sender<SourceEvent>) -> Self {
        Room {
            config,
            clock,
            events,
            feeds: HashMap::new(),
            people: HashMap::new(),
            claims: Arc::default(),
            empty_since: Some(Instant::now()),
            subscriptions: Subscriptions::Together,
        }
    }

    fn inactive(&self) -> bool {
        self.empty_since.is_some_and(|since| {
            since.elapsed() >= Duration::from_secs(u64::from(self.config.inactivity_timeout_seconds))
        })
    }

    /// Subscribes to who publishes now, then follows the room's events.
    fn run(&mut self, joined: &mut Joined, stop: &AtomicBool) -> Result<(), Interrupted> {
        for publisher in std::mem::take(&mut joined.publishers) {
            self.subscribe(&mut joined.client, &publisher)?;
        }
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            if self.inactive() {
                tracing::info!(
                    seconds = self.config.inactivity_timeout_seconds,
                    "no publisher in the room for the inactivity timeout; the call is over"
                );
                return Ok(());
            }
            self.expire_orphans();
            self.trickle(&mut joined.client)?;
            self.resubscribe_failed(&mut joined.client)?;
            let wait = match self.feeds.values().any(|f| f.trickling) {
                true => Duration::from_millis(5),
                false => POLL,
            };
            let Some(message) = joined.client.next_event(wait)? else {
                continue;
            };
            tracing::debug!(%message, "from Janus");
            let sender = message["sender"].as_u64();
            let data = &message["plugindata"]["data"];
            if sender == Some(joined.watcher) {
                if data["videoroom"] == "destroyed" {
                    tracing::info!("the room was destroyed; the call is over");
                    return Ok(());
                }
                for publisher in data["publishers"].as_array().into_iter().flatten() {
                    self.subscribe(&mut joined.client, publisher)?;
                }
                for key in ["unpublished", "leaving", "kicked"] {
                    if let Some(feed) = data[key].as_u64() {
                        self.drop_publisher(&mut joined.client, feed);
                    }
                }
                continue;
            }
            let Some(key) = self.subscription_of_handle(sender) else {
                continue;
            };
            match message["janus"].as_str() {
                Some("event") if data["videoroom"] == "updated" => {
                    self.renegotiate(&mut joined.client, key, data, message.get("jsep"))?;
                }
                Some("hangup") | Some("detached") => {
                    tracing::info!(feed = key.0, part = key.1.label(), reason = %message["reason"], "subscription ended");
                    self.drop_feed(&mut joined.client, key, false);
                }
                _ => {}
            }
        }
    }

    fn subscription_of_handle(&self, handle: Option<u64>) -> Option<SubKey> {
        let handle = handle?;
        self.feeds
            .iter()
            .find(|(_, f)| f.handle == handle)
            .map(|(key, _)| *key)
    }

    /// Who a publisher is: the job's metadata for its display name, else the name itself.
    fn identity(&self, display: &str, feed: u64) -> ParticipantInfo {
        let display = if display.is_empty() {
            format!("feed-{feed}")
        } else {
            display.to_owned()
        };
        let meta = self
            .config
            .participants
            .get(&display)
            .cloned()
            .unwrap_or_default();
        ParticipantInfo {
            user_id: meta.user_id.unwrap_or_else(|| display.clone()),
            name: meta.name.unwrap_or(display),
            roles: meta.roles,
            pinned: false,
        }
    }

    /// Subscribes to what of `publisher` the job takes and is not subscribed to yet.
    fn subscribe(&mut self, client: &mut JanusClient, publisher: &Value) -> Result<(), Interrupted> {
        let Some(feed) = publisher["id"].as_u64() else {
            return Ok(());
        };
        if publisher["streams"].as_array().is_some_and(|s| s.is_empty()) {
            return Ok(());
        }
        for &part in self.subscriptions.parts() {
            if !self.feeds.contains_key(&(feed, part)) {
                self.subscribe_part(client, publisher, (feed, part))?;
            }
        }
        Ok(())
    }

    fn subscribe_part(
        &mut self,
        client: &mut JanusClient,
        publisher: &Value,
        key: SubKey,
    ) -> Result<(), Interrupted> {
        let (feed, part) = key;
        let streams = part.streams(feed, publisher);
        if streams.is_empty() {
            return Ok(());
        }
        let info = self.identity(publisher["display"].as_str().unwrap_or_default(), feed);
        let began = Instant::now();
        let handle = client.attach(VIDEOROOM, REQUEST_TIMEOUT)?;
        let mut body = json!({
            "request": "join", "ptype": "subscriber", "room": self.config.room,
            "streams": streams,
        });
        if let Some(pin) = &self.config.pin {
            body["pin"] = json!(pin);
        }
        let reply = match client.message(handle, body, None, REQUEST_TIMEOUT) {
            Ok(reply) => reply,
            Err(JanusError::Refused { code, reason }) => {
                tracing::warn!(feed, code, %reason, "cannot subscribe to a publisher");
                client.detach(handle);
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let Some(offer) = reply.jsep.as_ref().and_then(|j| j["sdp"].as_str()) else {
            client.detach(handle);
            return Ok(());
        };
        let user_id = info.user_id.clone();
        let offered_ms = began.elapsed().as_millis() as u64;
        self.person_joins(info);
        let kinds = Arc::new(Mutex::new(track_kinds(&reply.data["streams"])));
        let peer = match self.peer(key, &user_id, kinds.clone()) {
            Ok(peer) => peer,
            Err(e) => {
                tracing::warn!(feed, error = %format!("{e:#}"), "cannot receive a publisher");
                client.detach(handle);
                self.person_loses_feed(&user_id, false);
                return Ok(());
            }
        };
        let answer = match peer.answer_now(offer) {
            Ok(answer) => answer,
            Err(e) => {
                tracing::warn!(feed, error = %format!("{e:#}"), "cannot answer Janus's offer");
                client.detach(handle);
                self.person_loses_feed(&user_id, false);
                return Ok(());
            }
        };
        let answered_ms = began.elapsed().as_millis() as u64;
        // Candidates follow by trickle: ICE starts without waiting for gathering to end.
        let jsep = json!({"type": "answer", "sdp": answer, "trickle": true});
        self.feeds.insert(
            key,
            Feed {
                user_id: user_id.clone(),
                publisher: publisher.clone(),
                handle,
                peer,
                kinds,
                trickling: true,
            },
        );
        client.message(handle, json!({"request": "start"}), Some(jsep), REQUEST_TIMEOUT)?;
        tracing::info!(
            feed,
            part = part.label(),
            %user_id,
            offered_ms,
            answered_ms,
            started_ms = began.elapsed().as_millis() as u64,
            "subscribed to a publisher"
        );
        Ok(())
    }

    /// A WebRTC peer whose tracks are announced as the participant's, each kind once.
    fn peer(
        &self,
        subscription: SubKey,
        user_id: &str,
        kinds: Arc<Mutex<HashMap<String, TrackKind>>>,
    ) -> anyhow::Result<ReceivingPeer> {
        let events = self.events.clone();
        let claims = self.claims.clone();
        let user_id = user_id.to_owned();
        let name = format!("{}-{}", subscription.0, subscription.1.label());
        ReceivingPeer::new(&name, self.clock, move |track: ReceivedTrack| {
            let kind = kinds
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&track.mid)
                .copied();
            let kind = kind.unwrap_or(if track.is_video {
                TrackKind::Camera
            } else {
                TrackKind::Microphone
            });
            let mut claims = claims.lock().unwrap_or_else(|e| e.into_inner());
            let key = (user_id.clone(), kind);
            if claims.contains_key(&key) {
                tracing::info!(%user_id, kind = kind.label(), "a second track of one kind is left out");
                return;
            }
            claims.insert(key, subscription);
            tracing::info!(%user_id, kind = kind.label(), mid = %track.mid, "the track is the participant's");
            let _ = events.send(SourceEvent::TrackAdded {
                user_id: user_id.clone(),
                kind,
                media: track.media,
                encoded: true,
                // The peer's timestamps are call time already.
                starts_at: Some(Duration::ZERO),
            });
        })
        .context("cannot create the WebRTC peer")
    }

    /// Janus offers a changed subscription (a stream added or gone): answer it.
    fn renegotiate(
        &mut self,
        client: &mut JanusClient,
        key: SubKey,
        data: &Value,
        jsep: Option<&Value>,
    ) -> Result<(), Interrupted> {
        let Some(current) = self.feeds.get(&key) else {
            return Ok(());
        };
        let kinds = track_kinds(&data["streams"]);
        let gone: Vec<TrackKind> = {
            let mut known = current.kinds.lock().unwrap_or_else(|e| e.into_inner());
            let gone = known
                .iter()
                .filter(|(mid, _)| !kinds.contains_key(*mid))
                .map(|(_, kind)| *kind)
                .collect();
            *known = kinds;
            gone
        };
        let user_id = current.user_id.clone();
        let handle = current.handle;
        for kind in gone {
            self.release(&user_id, kind, key);
        }
        let Some(offer) = jsep.and_then(|j| j["sdp"].as_str()) else {
            return Ok(());
        };
        let Some(current) = self.feeds.get(&key) else {
            return Ok(());
        };
        match current.peer.answer(offer, GATHER_TIMEOUT) {
            Ok(answer) => {
                let jsep = json!({"type": "answer", "sdp": answer, "trickle": false});
                client.message(handle, json!({"request": "start"}), Some(jsep), REQUEST_TIMEOUT)?;
            }
            Err(e) => {
                tracing::warn!(feed = key.0, error = %format!("{e:#}"), "cannot answer a renegotiation; subscribing again");
                self.drop_feed(client, key, false);
            }
        }
        Ok(())
    }

    /// Sends the candidates each subscription's peer has found since the last look.
    fn trickle(&mut self, client: &mut JanusClient) -> Result<(), Interrupted> {
        for feed in self.feeds.values_mut().filter(|f| f.trickling) {
            let (found, complete) = feed.peer.new_candidates();
            for (mline, candidate) in &found {
                client.trickle(feed.handle, Some((*mline, candidate)))?;
            }
            if complete {
                client.trickle(feed.handle, None)?;
                feed.trickling = false;
            }
        }
        Ok(())
    }

    /// Feeds whose ICE connection failed are dropped and subscribed again.
    fn resubscribe_failed(&mut self, client: &mut JanusClient) -> Result<(), Interrupted> {
        let failed: Vec<SubKey> = self
            .feeds
            .iter()
            .filter(|(_, f)| f.peer.has_failed())
            .map(|(key, _)| *key)
            .collect();
        for key in failed {
            tracing::warn!(
                feed = key.0,
                part = key.1.label(),
                "the media connection failed; subscribing again"
            );
            let publisher = self.feeds[&key].publisher.clone();
            self.drop_feed(client, key, true);
            self.subscribe(client, &publisher)?;
        }
        Ok(())
    }

    /// Ends every subscription to a publisher that has gone.
    fn drop_publisher(&mut self, client: &mut JanusClient, feed: u64) {
        let keys: Vec<SubKey> = self.feeds.keys().filter(|k| k.0 == feed).copied().collect();
        for key in keys {
            self.drop_feed(client, key, false);
        }
    }

    fn drop_feed(&mut self, client: &mut JanusClient, key: SubKey, expect_back: bool) {
        let Some(gone) = self.feeds.remove(&key) else {
            return;
        };
        client.detach(gone.handle);
        self.end_feed(key, gone, expect_back);
    }

    fn end_feed(&mut self, id: SubKey, feed: Feed, expect_back: bool) {
        let kinds: Vec<TrackKind> = {
            let claims = self.claims.lock().unwrap_or_else(|e| e.into_inner());
            claims
                .iter()
                .filter(|((user, _), owner)| *user == feed.user_id && **owner == id)
                .map(|((_, kind), _)| *kind)
                .collect()
        };
        for kind in kinds {
            self.release(&feed.user_id, kind, id);
        }
        drop(feed.peer);
        self.person_loses_feed(&feed.user_id, expect_back);
    }

    fn release(&mut self, user_id: &str, kind: TrackKind, subscription: SubKey) {
        let mut claims = self.claims.lock().unwrap_or_else(|e| e.into_inner());
        let key = (user_id.to_owned(), kind);
        if claims.get(&key) == Some(&subscription) {
            claims.remove(&key);
            let _ = self.events.send(SourceEvent::TrackRemoved {
                user_id: user_id.to_owned(),
                kind,
                at: None,
            });
        }
    }

    fn person_joins(&mut self, info: ParticipantInfo) {
        self.empty_since = None;
        match self.people.get_mut(&info.user_id) {
            Some(person) => {
                person.subscriptions += 1;
                person.orphaned_since = None;
            }
            None => {
                self.people.insert(
                    info.user_id.clone(),
                    Person {
                        subscriptions: 1,
                        orphaned_since: None,
                    },
                );
                let _ = self.events.send(SourceEvent::Joined(info));
            }
        }
    }

    /// One feed of `user_id` is gone; the participant leaves with their last one, unless the
    /// feed is expected back (then only once the grace period has passed).
    fn person_loses_feed(&mut self, user_id: &str, expect_back: bool) {
        if let Some(person) = self.people.get_mut(user_id) {
            person.subscriptions = person.subscriptions.saturating_sub(1);
            if person.subscriptions == 0 {
                if expect_back {
                    person.orphaned_since.get_or_insert_with(Instant::now);
                } else {
                    self.people.remove(user_id);
                    let _ = self.events.send(SourceEvent::Left {
                        user_id: user_id.to_owned(),
                        at: None,
                    });
                }
            }
        }
        if self.feeds.is_empty() && self.empty_since.is_none() {
            self.empty_since = Some(Instant::now());
        }
    }

    fn expire_orphans(&mut self) {
        let expired: Vec<String> = self
            .people
            .iter()
            .filter(|(_, p)| p.orphaned_since.is_some_and(|t| t.elapsed() >= RECONNECT_GRACE))
            .map(|(id, _)| id.clone())
            .collect();
        for user_id in expired {
            tracing::info!(%user_id, "participant did not come back");
            self.people.remove(&user_id);
            let _ = self.events.send(SourceEvent::Left { user_id, at: None });
        }
    }

    /// The connection is gone: every track ends, participants wait for the grace period.
    fn connection_lost(&mut self) {
        for (id, feed) in std::mem::take(&mut self.feeds) {
            self.end_feed(id, feed, true);
        }
    }

    fn leave_all(&mut self, client: &mut JanusClient) {
        for id in self.feeds.keys().copied().collect::<Vec<_>>() {
            self.drop_feed(client, id, false);
        }
        self.leave_all_without_janus();
    }

    fn leave_all_without_janus(&mut self) {
        for (id, feed) in std::mem::take(&mut self.feeds) {
            self.end_feed(id, feed, false);
        }
        for user_id in self.people.keys().cloned().collect::<Vec<_>>() {
            self.people.remove(&user_id);
            let _ = self.events.send(SourceEvent::Left { user_id, at: None });
        }
    }
}

/// The kind of each active stream of a subscription, by `mid`: audio is the microphone; a video
/// whose description says "screen", or a feed's second video, is a screen share.
fn track_kinds(streams: &Value) -> HashMap<String, TrackKind> {
    let mut kinds = HashMap::new();
    let mut cameras = 0;
    for stream in streams.as_array().into_iter().flatten() {
        if stream["active"] == json!(false) {
            continue;
        }
        let Some(mid) = stream["mid"].as_str() else {
            continue;
        };
        let kind = match stream["type"].as_str() {
            Some("audio") => TrackKind::Microphone,
            Some("video") => {
                let description = stream["feed_description"].as_str().unwrap_or_default();
                if description.to_ascii_lowercase().contains("screen") || cameras > 0 {
                    TrackKind::ScreenShare
                } else {
                    cameras += 1;
                    TrackKind::Camera
                }
            }
            _ => continue,
        };
        kinds.insert(mid.to_owned(), kind);
    }
    kinds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_part_asks_for_its_own_streams() {
        let publisher = json!({"id": 7, "streams": [
            {"type": "audio", "mid": "a"},
            {"type": "video", "mid": "v1"},
            {"type": "video", "mid": "v2", "disabled": true},
            {"type": "data", "mid": "d"},
        ]});
        assert_eq!(Part::Everything.streams(7, &publisher), vec![json!({"feed": 7})]);
        assert_eq!(
            Part::Audio.streams(7, &publisher),
            vec![json!({"feed": 7, "mid": "a"})]
        );
        assert_eq!(
            Part::Video.streams(7, &publisher),
            vec![json!({"feed": 7, "mid": "v1"})]
        );
        let silent = json!({"id": 8, "streams": [{"type": "video", "mid": "v"}]});
        assert!(
            Part::Audio.streams(8, &silent).is_empty(),
            "no audio subscription"
        );
        assert_eq!(Subscriptions::Apart.parts(), &[Part::Audio, Part::Video]);
    }

    #[test]
    fn screen_shares_are_told_from_cameras() {
        let streams = json!([
            {"type": "audio", "mid": "0", "active": true},
            {"type": "video", "mid": "1", "active": true, "feed_description": "Camera"},
            {"type": "video", "mid": "2", "active": true},
            {"type": "video", "mid": "3", "active": false},
            {"type": "data", "mid": "4"},
        ]);
        let kinds = track_kinds(&streams);
        assert_eq!(kinds.get("0"), Some(&TrackKind::Microphone));
        assert_eq!(kinds.get("1"), Some(&TrackKind::Camera));
        assert_eq!(kinds.get("2"), Some(&TrackKind::ScreenShare));
        assert_eq!(kinds.len(), 3);
        let screen = track_kinds(&json!([{"type": "video", "mid": "v", "feed_description": "My Screen"}]));
        assert_eq!(screen.get("v"), Some(&TrackKind::ScreenShare));
    }
}
