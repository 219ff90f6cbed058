//! Who is in the call and which tracks they publish, in join order.

use crate::layout::ParticipantView;
use crate::source::{ParticipantInfo, TrackKind};

/// The id of one track's input in the media graph.
pub fn input_id(user_id: &str, kind: TrackKind) -> String {
    format!("{user_id}/{}", kind.label())
}

#[derive(Debug, Clone)]
struct Member {
    info: ParticipantInfo,
    tracks: Vec<TrackKind>,
}

#[derive(Debug, Default)]
pub struct Roster {
    members: Vec<Member>,
}

impl Roster {
    pub fn join(&mut self, info: ParticipantInfo) {
        match self.members.iter_mut().find(|m| m.info.user_id == info.user_id) {
            Some(member) => member.info = info,
            None => self.members.push(Member {
                info,
                tracks: Vec::new(),
            }),
        }
    }

    /// Applies pins, names and roles of an update to everyone in the call.
    pub fn update(&mut self, update: &crate::session::JobUpdate) {
        let ids: Vec<String> = self.members.iter().map(|m| m.info.user_id.clone()).collect();
        for id in ids {
            self.update_one(&id, update);
        }
    }

    /// Applies an update to one participant.
    pub fn update_one(&mut self, user_id: &str, update: &crate::session::JobUpdate) {
        let Some(member) = self.members.iter_mut().find(|m| m.info.user_id == user_id) else {
            return;
        };
        if let Some(pinned) = &update.pinned {
            member.info.pinned = pinned.iter().any(|p| p == user_id);
        }
        if let Some(patch) = update.participants.get(user_id) {
            if let Some(name) = &patch.name {
                member.info.name = name.clone();
            }
            if let Some(roles) = &patch.roles {
                member.info.roles = roles.clone();
            }
        }
    }

    pub fn leave(&mut self, user_id: &str) {
        self.members.retain(|m| m.info.user_id != user_id);
    }

    pub fn add_track(&mut self, user_id: &str, kind: TrackKind) {
        if let Some(m) = self.members.iter_mut().find(|m| m.info.user_id == user_id)
            && !m.tracks.contains(&kind)
        {
            m.tracks.push(kind);
        }
    }

    pub fn remove_track(&mut self, user_id: &str, kind: TrackKind) {
        if let Some(m) = self.members.iter_mut().find(|m| m.info.user_id == user_id) {
            m.tracks.retain(|&k| k != kind);
        }
    }

    /// Who `user_id` is, while in the call.
    pub fn info(&self, user_id: &str) -> Option<&ParticipantInfo> {
        self.members
            .iter()
            .map(|m| &m.info)
            .find(|i| i.user_id == user_id)
    }

    /// Everyone in the call, in join order.
    pub fn infos(&self) -> impl Iterator<Item = &ParticipantInfo> {
        self.members.iter().map(|m| &m.info)
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The participants as the layout engine sees them, in join order.
    pub fn views(&self, speaking: impl Fn(&str) -> bool, dominant: Option<&str>) -> Vec<ParticipantView> {
        self.members
            .iter()
            .map(|m| {
                let id = &m.info.user_id;
                let track = |kind| m.tracks.contains(&kind).then(|| input_id(id, kind));
                ParticipantView {
                    user_id: id.clone(),
                    name: m.info.name.clone(),
                    roles: m.info.roles.clone(),
                    pinned: m.info.pinned,
                    speaking: speaking(id),
                    dominant: dominant == Some(id.as_str()),
                    has_audio: m.tracks.contains(&TrackKind::Microphone),
                    camera: track(TrackKind::Camera),
                    screenshare: track(TrackKind::ScreenShare),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str) -> ParticipantInfo {
        ParticipantInfo {
            user_id: id.into(),
            name: id.into(),
            roles: vec![],
            pinned: false,
        }
    }

    #[test]
    fn updates_replace_pins_and_patch_names_and_roles() {
        let mut roster = Roster::default();
        let mut a = info("a");
        a.pinned = true;
        roster.join(a);
        roster.join(info("b"));
        let update: crate::session::JobUpdate = serde_json::from_value(serde_json::json!({
            "pinned": ["b"],
            "participants": { "b": { "name": "Bea", "roles": ["host"] } }
        }))
        .unwrap();
        roster.update(&update);
        assert!(!roster.info("a").unwrap().pinned);
        let b = roster.info("b").unwrap();
        assert!(b.pinned);
        assert_eq!(
            (b.name.as_str(), b.roles.as_slice()),
            ("Bea", &["host".to_owned()][..])
        );
        // Without `pinned`, pins stay as they are.
        roster.update(&crate::session::JobUpdate::default());
        assert!(roster.info("b").unwrap().pinned);
    }

    #[test]
    fn views_follow_join_order_with_their_tracks() {
        let mut roster = Roster::default();
        for id in ["a", "b", "c"] {
            roster.join(info(id));
            roster.add_track(id, TrackKind::Camera);
            roster.add_track(id, TrackKind::Microphone);
        }
        roster.add_track("c", TrackKind::ScreenShare);
        let views = roster.views(|id| id == "b", Some("b"));
        let ids: Vec<&str> = views.iter().map(|v| v.user_id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(views[2].screenshare.as_deref(), Some("c/screenshare"));
        assert_eq!(views[0].camera.as_deref(), Some("a/camera"));
        assert!(views[1].speaking && views[1].dominant && !views[0].speaking);
        roster.leave("a");
        roster.remove_track("c", TrackKind::ScreenShare);
        roster.remove_track("b", TrackKind::Camera);
        let views = roster.views(|_| false, None);
        assert_eq!(views.len(), 2);
        assert!(views[0].camera.is_none() && views[0].has_audio);
        assert!(views[1].screenshare.is_none());
        assert_eq!(roster.len(), 2);
    }

    #[test]
    fn tracks_of_unknown_participants_are_ignored() {
        let mut roster = Roster::default();
        roster.add_track("ghost", TrackKind::Camera);
        assert!(roster.views(|_| false, None).is_empty());
        assert!(roster.is_empty());
    }
}
