//! Who is in the call and which tracks they publish, in join order.

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

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Video inputs in display order: screen shares first, then cameras, each by join order.
    pub fn video_tiles(&self) -> Vec<String> {
        [TrackKind::ScreenShare, TrackKind::Camera]
            .into_iter()
            .flat_map(|kind| {
                self.members
                    .iter()
                    .filter(move |m| m.tracks.contains(&kind))
                    .map(move |m| input_id(&m.info.user_id, kind))
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
    fn tiles_follow_join_order_with_screen_shares_first() {
        let mut roster = Roster::default();
        for id in ["a", "b", "c"] {
            roster.join(info(id));
            roster.add_track(id, TrackKind::Camera);
            roster.add_track(id, TrackKind::Microphone);
        }
        roster.add_track("c", TrackKind::ScreenShare);
        assert_eq!(
            roster.video_tiles(),
            ["c/screenshare", "a/camera", "b/camera", "c/camera"]
        );
        roster.leave("a");
        roster.remove_track("c", TrackKind::ScreenShare);
        assert_eq!(roster.video_tiles(), ["b/camera", "c/camera"]);
        assert_eq!(roster.len(), 2);
    }

    #[test]
    fn tracks_of_unknown_participants_are_ignored() {
        let mut roster = Roster::default();
        roster.add_track("ghost", TrackKind::Camera);
        assert!(roster.video_tiles().is_empty());
        assert!(roster.is_empty());
    }
}
