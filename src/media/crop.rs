//! Crops a video input to the aspect of its tile (the `fill` scale mode), following both the
//! tile and the input's own size as either changes.

use super::make;
use super::timeline::{RunningNs, Timeline};
use anyhow::Context;
use gst::prelude::*;
use gstreamer as gst;
use std::sync::{Arc, Mutex};

/// Pixels to remove from each side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Margins {
    pub top: u32,
    pub bottom: u32,
    pub left: u32,
    pub right: u32,
}

/// The crop that gives a `width` x `height` picture the aspect of a `tw` x `th` tile, centred.
pub fn margins_for(width: u32, height: u32, tile: Option<(u32, u32)>) -> Margins {
    let Some((tw, th)) = tile.filter(|&(w, h)| w > 0 && h > 0 && width > 0 && height > 0) else {
        return Margins::default();
    };
    let (w, h, tw, th) = (u64::from(width), u64::from(height), u64::from(tw), u64::from(th));
    if w * th > tw * h {
        // Wider than the tile: crop the sides.
        let (left, right) = centred_cut(width, (h * tw / th) as u32);
        Margins {
            left,
            right,
            ..Margins::default()
        }
    } else {
        let (top, bottom) = centred_cut(height, (w * th / tw) as u32);
        Margins {
            top,
            bottom,
            ..Margins::default()
        }
    }
}

/// What to cut before and after along one side of `len` pixels to keep `keep` of them in the
/// middle; even numbers, as 4:2:0 video wants.
fn centred_cut(len: u32, keep: u32) -> (u32, u32) {
    let keep = keep.max(2) & !1;
    let cut = len - keep.min(len);
    let before = (cut / 2) & !1;
    (before, cut - before)
}

struct State {
    /// The tile, changing when the frame of its new scene passes.
    tile: Timeline<Option<(u32, u32)>>,
    input: Option<(u32, u32)>,
    /// Where the input's timestamps sit on the call's running time.
    segment: Option<gst::FormattedSegment<gst::ClockTime>>,
    /// The margins the tile and input call for, set on the element by its streaming thread.
    wanted: Margins,
    /// The margins the element has.
    applied: Margins,
}

/// A `videocrop` kept at the tile's aspect.
#[derive(Clone)]
pub struct FillCrop {
    element: gst::Element,
    state: Arc<Mutex<State>>,
}

impl FillCrop {
    pub fn new() -> anyhow::Result<FillCrop> {
        let element = make("videocrop")?;
        let crop = FillCrop {
            element,
            state: Arc::new(Mutex::new(State {
                tile: Timeline::new(None),
                input: None,
                segment: None,
                wanted: Margins::default(),
                applied: Margins::default(),
            })),
        };
        let sink = crop
            .element
            .static_pad("sink")
            .context("videocrop without sink pad")?;
        let on_caps = crop.clone();
        sink.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
            match info.event().map(|e| e.view()) {
                Some(gst::EventView::Caps(caps)) => {
                    let s = caps.caps().structure(0);
                    let size =
                        s.and_then(|s| Some((s.get::<i32>("width").ok()?, s.get::<i32>("height").ok()?)));
                    if let Some((w, h)) = size {
                        on_caps.update(|state| state.input = Some((w as u32, h as u32)));
                        on_caps.apply();
                    }
                }
                Some(gst::EventView::Segment(segment)) => {
                    let segment = segment.segment().downcast_ref::<gst::ClockTime>().cloned();
                    on_caps.update(|state| state.segment = segment);
                }
                _ => {}
            }
            gst::PadProbeReturn::Ok
        });
        // videocrop reads its margins while it copies a frame; changed from another thread
        // mid-copy (a relayout while the call streams) it copies past the frame and crashes.
        // The margins are set here, on the streaming thread, between frames.
        let on_buffer = crop.clone();
        sink.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let pts = info.buffer().and_then(|b| b.pts());
            on_buffer.update(|state| {
                let running = state
                    .segment
                    .as_ref()
                    .zip(pts)
                    .and_then(|(segment, pts)| segment.to_running_time(pts))
                    .map_or(0, |t| t.nseconds());
                state.tile.advance(running);
            });
            on_buffer.apply();
            gst::PadProbeReturn::Ok
        });
        Ok(crop)
    }

    pub fn element(&self) -> &gst::Element {
        &self.element
    }

    /// Crops to a `w` x `h` tile, or not at all with `None` (the `fit` mode), from the frame
    /// at running time `from` on.
    pub fn set_tile(&self, tile: Option<(u32, u32)>, from: RunningNs) {
        self.update(|state| state.tile.schedule(from, tile));
    }

    fn update(&self, change: impl FnOnce(&mut State)) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut state);
        if let Some((w, h)) = state.input {
            state.wanted = margins_for(w, h, *state.tile.current());
        }
    }

    /// Sets the wanted margins on the element; called on its streaming thread only.
    fn apply(&self) {
        let margins = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if state.applied == state.wanted {
                return;
            }
            state.applied = state.wanted;
            state.wanted
        };
        for (side, value) in [
            ("top", margins.top),
            ("bottom", margins.bottom),
            ("left", margins.left),
            ("right", margins.right),
        ] {
            if self.element.property::<i32>(side) != value as i32 {
                self.element.set_property(side, value as i32);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_keep_the_tile_aspect_and_stay_centred() {
        assert_eq!(margins_for(640, 360, None), Margins::default());
        assert_eq!(margins_for(640, 360, Some((1280, 720))), Margins::default());
        let square = margins_for(640, 360, Some((300, 300)));
        assert_eq!((square.left, square.right, square.top), (140, 140, 0));
        let wide = margins_for(640, 360, Some((1260, 440)));
        assert_eq!(wide.left + wide.right, 0);
        assert_eq!(
            360 - wide.top - wide.bottom,
            222,
            "640 x 222 is 1260:440 within a pixel"
        );
        assert!(wide.top.abs_diff(wide.bottom) <= 2);
        let portrait = margins_for(1280, 720, Some((90, 160)));
        assert_eq!(1280 - portrait.left - portrait.right, 404);
    }
}
