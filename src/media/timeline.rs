//! Values that take effect from a given running time, read by a streaming thread as media
//! passes. The session decides a scene when a participant's join or leave is announced, which
//! under load is several frames after the mixer has mixed up to that moment; the scene must
//! still start on the frame of the join or leave, not on whichever frame is being mixed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Running time in nanoseconds; 0 means "from the next frame".
pub type RunningNs = u64;

#[derive(Debug)]
pub struct Timeline<T> {
    current: T,
    pending: VecDeque<(RunningNs, T)>,
}

impl<T> Timeline<T> {
    pub fn new(initial: T) -> Timeline<T> {
        Timeline {
            current: initial,
            pending: VecDeque::new(),
        }
    }

    /// Schedules `value` from `from`, but never before a change already scheduled: each change
    /// is computed from the state the earlier ones lead to. A change scheduled for the same
    /// moment as the last one replaces it.
    pub fn schedule(&mut self, from: RunningNs, value: T) {
        let from = self.pending.back().map_or(from, |(last, _)| (*last).max(from));
        if self.pending.back().is_some_and(|(last, _)| *last == from) {
            self.pending.pop_back();
        }
        self.pending.push_back((from, value));
    }

    /// Moves to the value that holds at `now`; true when it changed.
    pub fn advance(&mut self, now: RunningNs) -> bool {
        let mut changed = false;
        while self.pending.front().is_some_and(|(from, _)| *from <= now) {
            if let Some((_, value)) = self.pending.pop_front() {
                self.current = value;
                changed = true;
            }
        }
        changed
    }

    pub fn current(&self) -> &T {
        &self.current
    }

    /// When the last scheduled change takes effect, if one is still to come.
    pub fn last_scheduled(&self) -> Option<RunningNs> {
        self.pending.back().map(|(from, _)| *from)
    }
}

/// A timeline shared between the thread that schedules and the streaming thread that reads.
pub type SharedTimeline<T> = Arc<Mutex<Timeline<T>>>;

pub fn shared<T>(initial: T) -> SharedTimeline<T> {
    Arc::new(Mutex::new(Timeline::new(initial)))
}

/// Runs `read` on the locked timeline; a poisoned lock still holds usable values.
pub fn with<T, R>(timeline: &SharedTimeline<T>, read: impl FnOnce(&mut Timeline<T>) -> R) -> R {
    let mut guard = timeline.lock().unwrap_or_else(|e| e.into_inner());
    read(&mut guard)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_takes_effect_at_its_time_and_not_before() {
        let mut t = Timeline::new("two");
        t.schedule(3_000, "three");
        assert!(!t.advance(2_999));
        assert_eq!(*t.current(), "two");
        assert!(t.advance(3_000));
        assert_eq!(*t.current(), "three");
        assert!(!t.advance(4_000), "nothing more to change");
    }

    #[test]
    fn an_immediate_change_after_a_scheduled_one_waits_for_it() {
        let mut t = Timeline::new("with carol");
        t.schedule(3_000, "without carol");
        t.schedule(0, "without carol, alice speaking");
        assert_eq!(t.last_scheduled(), Some(3_000));
        assert!(!t.advance(2_000));
        assert_eq!(*t.current(), "with carol");
        t.advance(3_000);
        assert_eq!(*t.current(), "without carol, alice speaking");
    }

    #[test]
    fn passing_several_changes_at_once_lands_on_the_latest() {
        let mut t = Timeline::new(0);
        t.schedule(10, 1);
        t.schedule(20, 2);
        t.schedule(30, 3);
        assert!(t.advance(25));
        assert_eq!(*t.current(), 2);
        assert_eq!(t.last_scheduled(), Some(30));
        t.advance(u64::MAX);
        assert_eq!(*t.current(), 3);
        assert_eq!(t.last_scheduled(), None);
    }

    #[test]
    fn now_applies_from_the_next_frame() {
        let mut t = Timeline::new(false);
        t.schedule(0, true);
        assert!(t.advance(0));
        assert!(*t.current());
    }
}
