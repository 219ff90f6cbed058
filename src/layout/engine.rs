//! From the participants on the call to a scene: custom actions, the participant filter, screen
//! sharing, then the geometry of the layout in effect.

use super::Rect;
use super::actions::{self, CallState, CustomAction};
use super::filter::{FieldValue, Subject};
use super::grid::{self, CAMERA_ASPECT};
use super::options::{
    ACTIONS_KEY, LayoutKind, LayoutOptions, OptionError, RawOptions, Side, normalize, scaled,
};
use super::scene::{Chrome, Logo, Scene, Stroke, Tile, TileContent};
use super::values::Inset;
use super::values::VAlign;

/// One participant as the engine sees it, in join order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParticipantView {
    pub user_id: String,
    pub name: String,
    pub roles: Vec<String>,
    pub pinned: bool,
    pub speaking: bool,
    pub dominant: bool,
    pub has_audio: bool,
    /// Input id of the camera track, when publishing.
    pub camera: Option<String>,
    /// Input id of the screen share track, when sharing.
    pub screenshare: Option<String>,
}

impl Subject for ParticipantView {
    fn field(&self, name: &str) -> Option<FieldValue<'_>> {
        Some(match name {
            "userId" => FieldValue::Text(&self.user_id),
            "name" => FieldValue::Text(&self.name),
            "roles" => FieldValue::TextList(&self.roles),
            "isSpeaking" => FieldValue::Bool(self.speaking),
            "isDominantSpeaker" => FieldValue::Bool(self.dominant),
            "isPinned" => FieldValue::Bool(self.pinned),
            "hasVideo" => FieldValue::Bool(self.camera.is_some()),
            "hasAudio" => FieldValue::Bool(self.has_audio),
            "hasScreenShare" => FieldValue::Bool(self.screenshare.is_some()),
            _ => return None,
        })
    }
}

/// A job's layout: the named layout, its options and its custom actions, checked once.
#[derive(Debug, Clone)]
pub struct LayoutPlan {
    kind: LayoutKind,
    options: RawOptions,
    actions: Vec<CustomAction>,
}

/// What goes on screen, before geometry.
#[derive(Debug, Clone)]
struct Item<'a> {
    who: &'a ParticipantView,
    /// The screen share rather than the camera.
    screen: bool,
}

impl LayoutPlan {
    /// Checks the layout name and every option, filter and custom action.
    pub fn new(name: &str, options: &RawOptions) -> Result<LayoutPlan, Vec<OptionError>> {
        let kind = LayoutKind::parse(name).ok_or_else(|| {
            vec![(
                "name".to_owned(),
                format!("expected one of {}; got \"{name}\"", LayoutKind::NAMES.join(", ")),
            )]
        })?;
        let mut errors = Vec::new();
        let actions = actions::parse(options).unwrap_or_else(|e| {
            errors.extend(e);
            Vec::new()
        });
        let mut options = normalize(options);
        options.remove(ACTIONS_KEY);
        if let Err(e) = LayoutOptions::resolve(kind, &options) {
            errors.extend(e);
        }
        if errors.is_empty() {
            Ok(LayoutPlan {
                kind,
                options,
                actions,
            })
        } else {
            Err(errors)
        }
    }

    /// The layout and options in effect for the call as it is, after custom actions and
    /// screen sharing, with the participants the filter lets through.
    pub fn effective<'a>(
        &self,
        participants: &'a [ParticipantView],
    ) -> (LayoutKind, LayoutOptions, Vec<&'a ParticipantView>) {
        let state = CallState {
            participant_count: participants.len(),
            pinned_participant_count: participants.iter().filter(|p| p.pinned).count(),
        };
        let applied = actions::apply(&self.actions, state);
        let (mut kind, keep_on_share) = applied.layout.unwrap_or((self.kind, false));
        let mut raw = self.options.clone();
        raw.extend(applied.options);
        let resolve = |kind| {
            LayoutOptions::resolve(kind, &raw)
                .or_else(|_| LayoutOptions::resolve(kind, &self.options))
                .expect("options were checked when the plan was made")
        };
        let mut o = resolve(kind);
        let visible: Vec<&ParticipantView> = participants
            .iter()
            .filter(|p| o.filter.as_ref().is_none_or(|f| f.matches(*p)))
            .collect();
        let sharing = visible.iter().any(|p| p.screenshare.is_some());
        let switches = matches!(kind, LayoutKind::Grid | LayoutKind::Spotlight);
        if sharing && switches && !keep_on_share && kind != o.screenshare_layout {
            kind = o.screenshare_layout;
            o = resolve(kind);
        }
        (kind, o, visible)
    }

    /// The scene for `participants` (in join order) on a `width` x `height` output.
    pub fn scene(&self, participants: &[ParticipantView], width: u32, height: u32) -> Scene {
        let (kind, o, visible) = self.effective(participants);
        let canvas = content_area(&o, width, height);
        let px = |v: f64| scaled(v, height).round() as u32;
        let gap = px(o.grid.cell_padding) & !1;
        let aspect = o.aspect_ratio.unwrap_or(CAMERA_ASPECT);
        let placed: Vec<(Item, Rect, u32)> = match kind {
            LayoutKind::Grid => {
                let items = grid_items(&visible, o.presenter_visible);
                let page = (o.grid.columns * o.grid.rows) as usize;
                let shown = most_relevant(items, page);
                let area = shrink(canvas, o.grid.size_percentage);
                let rects = grid::tiles_in(
                    shown.len(),
                    area,
                    gap,
                    aspect,
                    o.grid.columns as usize,
                    o.grid.rows as usize,
                );
                shown.into_iter().zip(rects).map(|(i, r)| (i, r, 1)).collect()
            }
            LayoutKind::Spotlight | LayoutKind::Mobile => {
                spotlight(&visible, &o, canvas, gap, px(o.grid.margin), aspect)
            }
            LayoutKind::SingleParticipant => single(&visible, &o, canvas, gap, px),
        };
        let border = |highlighted: bool| {
            let width = px(o.border.width);
            (width > 0 || highlighted).then_some(Stroke {
                width: width.max(px(2.0)),
                colour: if highlighted {
                    o.border.highlight
                } else {
                    o.border.colour
                },
            })
        };
        let tiles = placed
            .into_iter()
            .map(|(item, rect, z)| (item, even(clipped(rect, width, height)), z))
            // Options that leave a tile no room (paddings and gaps larger than the canvas) hide
            // it rather than ask the media graph for a picture it cannot build.
            .filter(|(_, rect, _)| rect.w >= SMALLEST_TILE && rect.h >= SMALLEST_TILE)
            .map(|(item, rect, z)| {
                let who = item.who;
                let content = match (&item.screen, &who.camera, &who.screenshare) {
                    (true, _, Some(input)) => TileContent::Video {
                        input: input.clone(),
                        scale: o.screenshare_scale_mode,
                    },
                    (false, Some(input), _) => TileContent::Video {
                        input: input.clone(),
                        scale: o.scale_mode,
                    },
                    _ => TileContent::Placeholder {
                        colour: o.placeholder,
                        initials: initials(&who.name),
                    },
                };
                let highlighted = who.speaking && !item.screen;
                let label = if item.screen {
                    format!("{} (screen)", who.name)
                } else {
                    who.name.clone()
                };
                Tile {
                    user_id: who.user_id.clone(),
                    content,
                    rect,
                    z,
                    border: border(highlighted),
                    // Corners are rounded by painting the canvas colour over them, which only
                    // works for tiles on the canvas, not for a picture in picture over a tile.
                    radius: if z >= 3 {
                        0
                    } else {
                        px(o.border.radius).min(rect.w.min(rect.h) / 2)
                    },
                    highlighted,
                    label: o.label.display.then_some(label),
                }
            })
            .collect();
        Scene {
            width,
            height,
            layout: kind,
            background: o.background,
            tiles,
            label_style: o.label.clone(),
            logo: o.logo_url.clone().map(|url| Logo {
                url,
                place: o.logo_place.clone(),
            }),
            title: o.title.clone(),
        }
    }
}

/// Screen shares first (with the presenter's camera when visible), then everyone in join order;
/// participants without video get a placeholder tile.
fn grid_items<'a>(visible: &[&'a ParticipantView], presenter_visible: bool) -> Vec<Item<'a>> {
    let shares = visible
        .iter()
        .filter(|p| p.screenshare.is_some())
        .map(|&who| Item { who, screen: true });
    let people = visible
        .iter()
        .filter(|p| p.screenshare.is_none() || presenter_visible)
        .map(|&who| Item { who, screen: false });
    shares.chain(people).collect()
}

/// Keeps the `limit` most relevant items (screen shares, pinned, dominant, speaking, with
/// video), in their original order.
fn most_relevant(items: Vec<Item<'_>>, limit: usize) -> Vec<Item<'_>> {
    if items.len() <= limit {
        return items;
    }
    let rank = |i: &Item| {
        (
            !i.screen,
            !i.who.pinned,
            !i.who.dominant,
            !i.who.speaking,
            i.who.camera.is_none(),
        )
    };
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| rank(&items[i]));
    let mut keep: Vec<usize> = order.into_iter().take(limit).collect();
    keep.sort_unstable();
    let mut items: Vec<Option<Item>> = items.into_iter().map(Some).collect();
    keep.into_iter().filter_map(|i| items[i].take()).collect()
}

/// The participant a single-participant view shows: pinned, then screen sharing, then the
/// dominant speaker, then anyone with video, then the first to join.
fn featured<'a>(visible: &[&'a ParticipantView]) -> Option<&'a ParticipantView> {
    let first = |test: fn(&ParticipantView) -> bool| visible.iter().copied().find(|p| test(p));
    first(|p| p.pinned)
        .or_else(|| first(|p| p.screenshare.is_some()))
        .or_else(|| first(|p| p.dominant))
        .or_else(|| first(|p| p.camera.is_some()))
        .or_else(|| visible.first().copied())
}

fn spotlight<'a>(
    visible: &[&'a ParticipantView],
    o: &LayoutOptions,
    canvas: Rect,
    gap: u32,
    margin: u32,
    aspect: f64,
) -> Vec<(Item<'a>, Rect, u32)> {
    let Some(main_who) = visible
        .iter()
        .copied()
        .find(|p| p.screenshare.is_some())
        .or_else(|| featured(visible))
    else {
        return Vec::new();
    };
    let main = Item {
        who: main_who,
        screen: main_who.screenshare.is_some(),
    };
    let others: Vec<Item> = visible
        .iter()
        .filter(|p| {
            if p.user_id == main_who.user_id {
                main.screen && o.presenter_visible
            } else {
                true
            }
        })
        .map(|&who| Item { who, screen: false })
        .collect();
    let inner = inset(canvas, gap, gap);
    if others.is_empty() {
        return vec![(main, inner, 1)];
    }
    let horizontal_bar = matches!(o.grid.position, Side::Top | Side::Bottom);
    let share = o.grid.size_percentage / 100.0;
    let (bar_area, main_area) = if horizontal_bar {
        let bar_h = (f64::from(inner.h) * share).round() as u32;
        let main_h = inner.h.saturating_sub(bar_h + margin);
        let (bar_y, main_y) = match o.grid.position {
            Side::Top => (inner.y, inner.y + (bar_h + margin) as i32),
            _ => (inner.y + (main_h + margin) as i32, inner.y),
        };
        (
            Rect {
                x: inner.x,
                y: bar_y,
                w: inner.w,
                h: bar_h,
            },
            Rect {
                x: inner.x,
                y: main_y,
                w: inner.w,
                h: main_h,
            },
        )
    } else {
        let bar_w = (f64::from(inner.w) * share).round() as u32;
        let main_w = inner.w.saturating_sub(bar_w + margin);
        let (bar_x, main_x) = match o.grid.position {
            Side::Left => (inner.x, inner.x + (bar_w + margin) as i32),
            _ => (inner.x + (main_w + margin) as i32, inner.x),
        };
        (
            Rect {
                x: bar_x,
                y: inner.y,
                w: bar_w,
                h: inner.h,
            },
            Rect {
                x: main_x,
                y: inner.y,
                w: main_w,
                h: inner.h,
            },
        )
    };
    // The bar's columns run along it: across for a top or bottom bar, down for a side bar.
    let (cols, rows) = if horizontal_bar {
        (o.grid.columns as usize, o.grid.rows as usize)
    } else {
        (o.grid.rows as usize, o.grid.columns as usize)
    };
    let shown = most_relevant(others, cols * rows);
    let rects = grid::bar(shown.len(), bar_area, gap, aspect, cols, rows);
    let main_rect = match o.aspect_ratio {
        Some(a) if !main.screen => fit(main_area, a),
        _ => main_area,
    };
    std::iter::once((main, main_rect, 1))
        .chain(shown.into_iter().zip(rects).map(|(i, r)| (i, r, 2)))
        .collect()
}

fn single<'a>(
    visible: &[&'a ParticipantView],
    o: &LayoutOptions,
    canvas: Rect,
    gap: u32,
    px: impl Fn(f64) -> u32,
) -> Vec<(Item<'a>, Rect, u32)> {
    let Some(who) = featured(visible) else {
        return Vec::new();
    };
    let side = match o.padding_inline {
        Inset::Percent(p) => (f64::from(canvas.w) * p / 100.0).round() as u32,
        Inset::Pixels(v) => px(v),
    }
    // At least a quarter of the width stays for the participant.
    .min(canvas.w * 3 / 8);
    let area = inset(canvas, side, 0);
    let screen = who.screenshare.is_some();
    let main_rect = match o.aspect_ratio {
        Some(a) if !screen => fit(area, a),
        _ => area,
    };
    let mut placed = vec![(Item { who, screen }, main_rect, 1)];
    if screen && o.presenter_visible && who.camera.is_some() {
        // The presenter's camera as a picture in picture, bottom right.
        let w = (area.w / 5) & !1;
        let h = ((f64::from(w) / CAMERA_ASPECT) as u32) & !1;
        let rect = Rect {
            x: area.x + area.w as i32 - (w + gap) as i32,
            y: area.y + area.h as i32 - (h + gap) as i32,
            w,
            h,
        };
        placed.push((Item { who, screen: false }, rect, 3));
    }
    placed
}

/// The largest rectangle of `aspect` centred in `area` (even sizes).
pub fn fit(area: Rect, aspect: f64) -> Rect {
    let w = f64::from(area.w).min(f64::from(area.h) * aspect);
    let h = w / aspect;
    let (w, h) = ((w as u32) & !1, (h as u32) & !1);
    Rect {
        x: area.x + ((area.w - w) / 2) as i32,
        y: area.y + ((area.h - h) / 2) as i32,
        w,
        h,
    }
}

/// The part of the output left for tiles once a logo or title at the top or bottom has its band.
fn content_area(o: &LayoutOptions, width: u32, height: u32) -> Rect {
    let m = Chrome::of(height);
    let band = |v: VAlign| {
        let logo = o.logo_url.is_some() && o.logo_place.vertical == v;
        let title = o.title.as_ref().is_some_and(|t| t.place.vertical == v);
        let mut h = 0;
        if logo {
            h += m.margin + m.logo_height;
        }
        if title {
            h += if logo { m.margin / 2 } else { m.margin } + m.title_height;
        }
        h
    };
    let (top, bottom) = (band(VAlign::Top), band(VAlign::Bottom));
    Rect {
        x: 0,
        y: top as i32,
        w: width,
        h: height.saturating_sub(top + bottom).max(height / 2),
    }
}

/// The smallest tile drawn, in pixels either way.
pub const SMALLEST_TILE: u32 = 8;

/// The part of `rect` on a `width` x `height` canvas.
fn clipped(rect: Rect, width: u32, height: u32) -> Rect {
    let (left, top) = (rect.x.max(0), rect.y.max(0));
    let right = rect.right().min(width as i32);
    let bottom = rect.bottom().min(height as i32);
    Rect {
        x: left.min(width as i32),
        y: top.min(height as i32),
        w: (right - left).max(0) as u32,
        h: (bottom - top).max(0) as u32,
    }
}

/// `rect` on even coordinates with even sizes, so 4:2:0 chroma never straddles a tile edge.
fn even(rect: Rect) -> Rect {
    let x = rect.x & !1;
    let y = rect.y & !1;
    Rect {
        x,
        y,
        w: (rect.w.saturating_sub((x != rect.x) as u32)) & !1,
        h: (rect.h.saturating_sub((y != rect.y) as u32)) & !1,
    }
}

/// `area` shrunk to `percent` of its width and height, centred.
fn shrink(area: Rect, percent: f64) -> Rect {
    let f = percent / 100.0;
    let w = ((f64::from(area.w) * f) as u32) & !1;
    let h = ((f64::from(area.h) * f) as u32) & !1;
    Rect {
        x: area.x + ((area.w - w) / 2) as i32,
        y: area.y + ((area.h - h) / 2) as i32,
        w,
        h,
    }
}

fn inset(area: Rect, dx: u32, dy: u32) -> Rect {
    Rect {
        x: area.x + dx as i32,
        y: area.y + dy as i32,
        w: area.w.saturating_sub(2 * dx),
        h: area.h.saturating_sub(2 * dy),
    }
}

/// Up to two initials from a display name: "Ada Lovelace" gives "AL".
pub fn initials(name: &str) -> String {
    let words: Vec<&str> = name.split_whitespace().collect();
    let pick = |w: &str| w.chars().next().map(|c| c.to_uppercase().collect::<String>());
    match words.as_slice() {
        [] => "?".into(),
        [one] => pick(one).unwrap_or_default(),
        [first, .., last] => format!(
            "{}{}",
            pick(first).unwrap_or_default(),
            pick(last).unwrap_or_default()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{ScaleMode, TileContent};
    use serde_json::{Value, json};

    const CANVASES: [(u32, u32); 4] = [(1280, 720), (640, 360), (720, 1280), (1080, 1920)];

    fn people(n: usize) -> Vec<ParticipantView> {
        (0..n)
            .map(|i| ParticipantView {
                user_id: format!("u{i}"),
                name: format!("User {i}"),
                has_audio: true,
                camera: Some(format!("u{i}/camera")),
                ..Default::default()
            })
            .collect()
    }

    fn plan(layout: &str, options: Value) -> LayoutPlan {
        let options: RawOptions = options.as_object().unwrap().clone().into_iter().collect();
        LayoutPlan::new(layout, &options).unwrap()
    }

    fn input_of(tile: &Tile) -> &str {
        match &tile.content {
            TileContent::Video { input, .. } => input,
            TileContent::Placeholder { .. } => "placeholder",
        }
    }

    /// Tiles inside the canvas, and (for tiles at the same z) never overlapping.
    fn assert_sane(scene: &Scene, what: &str) {
        let canvas = Rect {
            x: 0,
            y: 0,
            w: scene.width,
            h: scene.height,
        };
        for (i, a) in scene.tiles.iter().enumerate() {
            assert!(canvas.contains(&a.rect), "{what}: {a:?} outside");
            assert!(
                a.rect.x % 2 == 0 && a.rect.y % 2 == 0 && a.rect.w % 2 == 0 && a.rect.h % 2 == 0,
                "{what}"
            );
            for b in scene.tiles[i + 1..].iter().filter(|b| b.z == a.z) {
                assert!(
                    !a.rect.intersects(&b.rect),
                    "{what}: {:?} overlaps {:?}",
                    a.rect,
                    b.rect
                );
            }
        }
    }

    #[test]
    fn every_layout_stays_inside_the_canvas_for_1_to_25_participants() {
        for layout in ["grid", "spotlight", "single-participant", "mobile"] {
            let p = plan(layout, json!({}));
            for (w, h) in CANVASES {
                for n in 1..=25 {
                    let scene = p.scene(&people(n), w, h);
                    assert!(!scene.tiles.is_empty(), "{layout} {n} on {w}x{h}");
                    assert_sane(&scene, &format!("{layout} {n} on {w}x{h}"));
                }
            }
        }
    }

    /// A random value for a layout option, valid or not: validation decides which are taken.
    fn random_option(rng: &mut fastrand::Rng) -> (&'static str, Value) {
        let pixels = |rng: &mut fastrand::Rng| json!(rng.u32(0..=400));
        match rng.u8(0..12) {
            0 => ("grid.columns", json!(rng.u32(1..=10))),
            1 => ("grid.rows", json!(rng.u32(1..=10))),
            2 => ("grid.margin", pixels(rng)),
            3 => ("grid.cell_padding", pixels(rng)),
            4 => ("grid.size_percentage", json!(rng.u32(0..=100))),
            5 => (
                "grid.position",
                json!(["top", "bottom", "left", "right"][rng.usize(0..4)]),
            ),
            6 => ("participant.aspect_ratio", json!(rng.f64() * 12.0)),
            7 => (
                "layout.single-participant.padding_inline",
                match rng.bool() {
                    true => json!(format!("{}px", rng.u32(0..=2000))),
                    false => json!(format!("{}%", rng.u32(0..=100))),
                },
            ),
            8 => ("participant.video_border_width", json!(rng.u32(0..=50))),
            9 => ("participant.video_border_radius", json!(rng.u32(0..=400))),
            10 => ("video.scale_mode", json!(["fit", "fill"][rng.usize(0..2)])),
            _ => ("presenter_visible", json!(rng.bool())),
        }
    }

    #[test]
    fn every_accepted_option_set_gives_tiles_the_graph_can_build() {
        let mut rng = fastrand::Rng::with_seed(21);
        // The quality presets' sizes.
        let canvases = [
            (640, 360),
            (854, 480),
            (1280, 720),
            (1920, 1080),
            (2560, 1440),
            (360, 640),
            (480, 854),
            (720, 1280),
            (1080, 1920),
            (1440, 2560),
        ];
        let mut accepted = 0;
        for case in 0..4000 {
            let layout = ["grid", "spotlight", "single-participant", "mobile"][rng.usize(0..4)];
            let options: RawOptions = (0..rng.usize(1..6))
                .map(|_| random_option(&mut rng))
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
            let Ok(plan) = LayoutPlan::new(layout, &options) else {
                continue;
            };
            accepted += 1;
            let (w, h) = canvases[rng.usize(0..canvases.len())];
            let mut people = people(rng.usize(1..=25));
            if rng.bool() {
                people[0].screenshare = Some("u0/screen".into());
            }
            let scene = plan.scene(&people, w, h);
            let what = format!("case {case}: {layout} {options:?}, {} on {w}x{h}", people.len());
            for tile in &scene.tiles {
                let r = tile.rect;
                assert!(
                    r.w >= SMALLEST_TILE && r.h >= SMALLEST_TILE,
                    "{what}: empty tile {r:?}"
                );
                assert!(
                    r.x >= 0 && r.y >= 0 && r.right() <= w as i32 && r.bottom() <= h as i32,
                    "{what}: {r:?} leaves the canvas"
                );
                assert!(
                    r.x % 2 == 0 && r.y % 2 == 0 && r.w % 2 == 0 && r.h % 2 == 0,
                    "{what}: {r:?}"
                );
            }
        }
        assert!(accepted > 2000, "most random option sets are valid: {accepted}");
    }

    #[test]
    fn grid_shows_a_page_of_columns_times_rows_at_the_requested_aspect() {
        let scene = plan("grid", json!({})).scene(&people(25), 1280, 720);
        assert_eq!(scene.tiles.len(), 20, "5 columns x 4 rows");
        let scene = plan("grid", json!({"grid.columns": 2, "grid.rows": 2})).scene(&people(6), 1280, 720);
        assert_eq!(scene.tiles.len(), 4);
        for ratio in ["1/1", "9/16", "4/3"] {
            let (a, b) = ratio.split_once('/').unwrap();
            let want = a.parse::<f64>().unwrap() / b.parse::<f64>().unwrap();
            let scene = plan("grid", json!({"participant.aspect_ratio": ratio})).scene(&people(4), 1280, 720);
            for t in &scene.tiles {
                let got = f64::from(t.rect.w) / f64::from(t.rect.h);
                assert!((got - want).abs() / want < 0.05, "{ratio}: {:?}", t.rect);
            }
        }
    }

    #[test]
    fn grid_spacing_and_size_follow_the_options() {
        let scene = plan(
            "grid",
            json!({"grid.cell_padding": 20, "grid.size_percentage": 100}),
        )
        .scene(&people(2), 1280, 720);
        let (a, b) = (scene.tiles[0].rect, scene.tiles[1].rect);
        assert_eq!(b.x - a.right(), 20);
        let small = plan("grid", json!({"grid.size_percentage": 50})).scene(&people(1), 1280, 720);
        assert!(small.tiles[0].rect.w <= 640, "{:?}", small.tiles[0].rect);
    }

    #[test]
    fn spotlight_bar_goes_to_each_side() {
        for side in ["top", "bottom", "left", "right"] {
            let scene = plan("spotlight", json!({"grid.position": side})).scene(&people(4), 1280, 720);
            let main = scene.tiles.iter().find(|t| t.z == 1).unwrap().rect;
            let bar: Vec<Rect> = scene.tiles.iter().filter(|t| t.z == 2).map(|t| t.rect).collect();
            assert_eq!(bar.len(), 3, "{side}");
            for t in &bar {
                let ok = match side {
                    "top" => t.bottom() <= main.y,
                    "bottom" => t.y >= main.bottom(),
                    "left" => t.right() <= main.x,
                    _ => t.x >= main.right(),
                };
                assert!(ok, "{side}: bar tile {t:?} vs main {main:?}");
            }
            assert!(
                main.w * main.h > 4 * bar[0].w * bar[0].h,
                "{side}: the spotlight is the big one"
            );
        }
    }

    #[test]
    fn spotlight_bar_thickness_is_the_size_percentage_and_margin_separates() {
        let scene = plan(
            "spotlight",
            json!({"grid.size_percentage": 30, "grid.margin": 40, "grid.cell_padding": 0, "grid.columns": 2}),
        )
        .scene(&people(3), 1280, 720);
        let main = scene.tiles[0].rect;
        let bar = scene.tiles[1].rect;
        assert!((bar.h as i32 - 216).abs() <= 2, "30% of 720: {bar:?}");
        assert!(bar.y - main.bottom() >= 40, "margin: {main:?} {bar:?}");
    }

    #[test]
    fn spotlight_features_the_screen_share_and_the_presenter_goes_to_the_bar() {
        let mut call = people(3);
        call[2].screenshare = Some("u2/screenshare".into());
        let scene = plan("spotlight", json!({})).scene(&call, 1280, 720);
        assert_eq!(input_of(&scene.tiles[0]), "u2/screenshare");
        assert!(matches!(
            scene.tiles[0].content,
            TileContent::Video {
                scale: ScaleMode::Fit,
                ..
            }
        ));
        let bar: Vec<&str> = scene.tiles[1..].iter().map(input_of).collect();
        assert_eq!(bar, ["u0/camera", "u1/camera", "u2/camera"]);
        let hidden = plan("spotlight", json!({"presenter_visible": false})).scene(&call, 1280, 720);
        assert!(hidden.tile_of("u2/camera").is_none());
    }

    #[test]
    fn grid_switches_to_the_screenshare_layout() {
        let mut call = people(3);
        call[1].screenshare = Some("u1/screenshare".into());
        assert_eq!(
            plan("grid", json!({})).scene(&call, 1280, 720).layout,
            LayoutKind::Spotlight
        );
        let single =
            plan("grid", json!({"screenshare_layout": "single-participant"})).scene(&call, 1280, 720);
        assert_eq!(single.layout, LayoutKind::SingleParticipant);
        let grid = plan("grid", json!({"screenshare_layout": "grid"})).scene(&call, 1280, 720);
        assert_eq!(grid.layout, LayoutKind::Grid);
        assert_eq!(input_of(&grid.tiles[0]), "u1/screenshare", "screen shares first");
    }

    #[test]
    fn single_participant_follows_the_priority_order() {
        let p = plan("single-participant", json!({}));
        let mut call = people(4);
        call[0].camera = None;
        assert_eq!(p.scene(&call, 1280, 720).tiles[0].user_id, "u1", "has video");
        call[3].dominant = true;
        assert_eq!(
            p.scene(&call, 1280, 720).tiles[0].user_id,
            "u3",
            "dominant speaker"
        );
        call[2].screenshare = Some("u2/screenshare".into());
        let sharing = p.scene(&call, 1280, 720);
        assert_eq!(input_of(&sharing.tiles[0]), "u2/screenshare", "screen sharing");
        assert_eq!(sharing.tiles.len(), 2, "presenter camera picture-in-picture");
        assert!(sharing.tiles[0].rect.contains(&sharing.tiles[1].rect));
        call[0].pinned = true;
        let pinned = p.scene(&call, 1280, 720);
        assert_eq!(pinned.tiles.len(), 1);
        assert!(
            matches!(pinned.tiles[0].content, TileContent::Placeholder { .. }),
            "pinned, even without video"
        );
    }

    #[test]
    fn single_participant_padding_inline() {
        let scene = plan(
            "single-participant",
            json!({"layout.single-participant.padding_inline": "20%"}),
        )
        .scene(&people(1), 1280, 720);
        assert_eq!(
            scene.tiles[0].rect,
            Rect {
                x: 256,
                y: 0,
                w: 768,
                h: 720
            }
        );
        let px = plan(
            "single-participant",
            json!({"layout.single-participant.padding_inline": "40px"}),
        )
        .scene(&people(1), 640, 360);
        assert_eq!(px.tiles[0].rect.x, 20, "40 px at 720 lines is 20 at 360");
    }

    #[test]
    fn filters_hide_participants() {
        let mut call = people(4);
        call[1].roles = vec!["guest".into()];
        call[2].camera = None;
        let scene = plan(
            "grid",
            json!({"participant.filter": {"$not": {"roles": {"$contains": "guest"}}}}),
        )
        .scene(&call, 1280, 720);
        let who: Vec<&str> = scene.tiles.iter().map(|t| t.user_id.as_str()).collect();
        assert_eq!(who, ["u0", "u2", "u3"]);
        let scene = plan("grid", json!({"participant.filter": {"hasVideo": true}})).scene(&call, 1280, 720);
        assert_eq!(scene.tiles.len(), 3);
    }

    #[test]
    fn custom_actions_switch_layout_and_options_with_the_call() {
        let p = plan(
            "grid",
            json!({"custom_actions": [
                {"action_type": "layout_override", "condition": {"pinned_participant_count": {"$gte": 1}}, "layout": "dominant-speaker"},
                {"action_type": "options_override", "condition": {"participant_count": {"$gt": 1}}, "options": {"layout.background_color": "hotpink"}}
            ]}),
        );
        let mut call = people(1);
        let one = p.scene(&call, 1280, 720);
        assert_eq!((one.layout, one.background.rgb()), (LayoutKind::Grid, 0x000000));
        call = people(2);
        assert_eq!(p.scene(&call, 1280, 720).background.rgb(), 0xff69b4);
        call[1].pinned = true;
        let pinned = p.scene(&call, 1280, 720);
        assert_eq!(pinned.layout, LayoutKind::SingleParticipant);
        assert_eq!(pinned.tiles[0].user_id, "u1");
    }

    #[test]
    fn placeholders_labels_borders_and_highlight() {
        let mut call = people(2);
        call[0].camera = None;
        call[0].name = "Ada Lovelace".into();
        call[1].speaking = true;
        let scene = plan(
            "grid",
            json!({"participant.placeholder_background_color": "#1f1f1f"}),
        )
        .scene(&call, 1280, 720);
        assert_eq!(
            scene.tiles[0].content,
            TileContent::Placeholder {
                colour: crate::layout::Rgba::opaque(0x1f1f1f),
                initials: "AL".into()
            }
        );
        assert_eq!(scene.tiles[0].label.as_deref(), Some("Ada Lovelace"));
        assert_eq!(scene.tiles[0].border.unwrap().colour.rgb(), 0xcccccc);
        assert!(scene.tiles[1].highlighted);
        assert_eq!(scene.tiles[1].border.unwrap().colour.rgb(), 0x7cfc00);
        assert_eq!(scene.tiles[0].radius, 13, "1.2 rem at 720 lines");
        let bare = plan(
            "grid",
            json!({"participant.label_display": false, "participant.video_border_width": false, "participant.video_border_rounded": false}),
        )
        .scene(&people(2), 1280, 720);
        assert!(
            bare.tiles
                .iter()
                .all(|t| t.label.is_none() && t.border.is_none() && t.radius == 0)
        );
    }

    #[test]
    fn scale_modes_per_track_type() {
        let mut call = people(2);
        call[0].screenshare = Some("u0/screenshare".into());
        let scene = plan("grid", json!({"screenshare_layout": "grid", "video.scale_mode": "fit", "video.screenshare_scale_mode": "fill"}))
            .scene(&call, 1280, 720);
        assert!(matches!(
            scene.tile_of("u0/screenshare").unwrap().content,
            TileContent::Video {
                scale: ScaleMode::Fill,
                ..
            }
        ));
        assert!(matches!(
            scene.tile_of("u1/camera").unwrap().content,
            TileContent::Video {
                scale: ScaleMode::Fit,
                ..
            }
        ));
    }

    #[test]
    fn initials_of_names() {
        assert_eq!(initials("Ada Lovelace"), "AL");
        assert_eq!(initials("grace"), "G");
        assert_eq!(initials("Jean Claude Van Damme"), "JD");
        assert_eq!(initials("  "), "?");
    }
}
