//! The live call: who is in it, who speaks, and the scene each mix shows.

use crate::job::{Job, LayoutConfig, Quality};
use crate::layout::{self, LayoutPlan, Scene, TileContent};
use crate::media::{Composite, MixScene, MixSpec};
use crate::participants::{Roster, input_id};
use crate::render;
use crate::source::{SourceEvent, TrackKind};
use crate::speaking::SpeakingDetector;
use image::RgbaImage;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

/// A camera with no frame for this long shows the layout's placeholder until frames return.
pub const MEDIA_STALL: Duration = Duration::from_secs(2);

/// One picture of the call: a layout at one orientation, drawn at its largest output size.
pub struct MixPlan {
    layout: LayoutConfig,
    portrait: bool,
    pub size: (u32, u32),
    plan: LayoutPlan,
    scene: Option<Scene>,
}

/// Which mix each output takes its video from.
pub struct MixAssignment {
    pub recording: Option<usize>,
    pub hls: Option<usize>,
    pub rtmp: Vec<usize>,
}

/// Groups the job's video outputs by layout and orientation: outputs in one group share a
/// compositor, and those of one size also share an encoder.
pub fn plan_mixes(job: &Job) -> anyhow::Result<(Vec<MixPlan>, MixAssignment)> {
    let default_layout = job
        .recording
        .as_ref()
        .map(|r| r.layout.clone())
        .unwrap_or_default();
    let mut mixes: Vec<MixPlan> = Vec::new();
    let mut assign = |layout: &LayoutConfig, quality: Quality| -> anyhow::Result<usize> {
        let (w, h) = quality.size();
        let portrait = h > w;
        if let Some(i) = mixes
            .iter()
            .position(|m| &m.layout == layout && m.portrait == portrait)
        {
            let m = &mut mixes[i];
            if w * h > m.size.0 * m.size.1 {
                m.size = (w, h);
            }
            return Ok(i);
        }
        let plan = LayoutPlan::new(layout.name.as_str(), &layout.options)
            .map_err(|e| anyhow::anyhow!("layout options: {e:?}"))?;
        mixes.push(MixPlan {
            layout: layout.clone(),
            portrait,
            size: (w, h),
            plan,
            scene: None,
        });
        Ok(mixes.len() - 1)
    };
    let recording = match &job.recording {
        Some(r) if !r.audio_only => Some(assign(&r.layout, r.quality)?),
        _ => None,
    };
    let mut hls = None;
    if let Some(h) = &job.hls {
        let layout = h.layout.as_ref().unwrap_or(&default_layout);
        for q in h.quality_tracks.iter().filter_map(|t| t.video()) {
            hls = Some(assign(layout, q)?);
        }
    }
    let rtmp = job
        .rtmp
        .iter()
        .map(|r| assign(r.layout.as_ref().unwrap_or(&default_layout), r.quality))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if job.has_no_output() {
        // Ready for outputs started during the call: the default layout at the default size,
        // composited but encoded only once an output asks for it.
        assign(&default_layout, Quality::default())?;
    }
    Ok((mixes, MixAssignment { recording, hls, rtmp }))
}

impl MixPlan {
    /// One mix of `layout` at the size of `quality` (a render's).
    pub fn new(layout: &LayoutConfig, quality: Quality) -> anyhow::Result<MixPlan> {
        let (w, h) = quality.size();
        let plan = LayoutPlan::new(layout.name.as_str(), &layout.options).map_err(|errors| {
            let said: Vec<String> = errors
                .iter()
                .map(|(key, problem)| format!("layout.options.{key}: {problem}"))
                .collect();
            anyhow::anyhow!("{}", said.join("; "))
        })?;
        Ok(MixPlan {
            layout: layout.clone(),
            portrait: h > w,
            size: (w, h),
            plan,
            scene: None,
        })
    }

    /// What the media graph needs to build this mix.
    pub fn spec(&self) -> MixSpec {
        let scene = self.plan.scene(&[], self.size.0, self.size.1);
        MixSpec {
            size: self.size,
            background_rgb: scene.background.rgb(),
        }
    }
}

/// The font and logos the layouts draw, loaded once at job start.
pub struct LayoutAssets {
    font: Option<ab_glyph::FontArc>,
    logos: HashMap<String, RgbaImage>,
}

impl LayoutAssets {
    /// Loads the font and every logo the layouts or their overrides name. A logo that cannot
    /// be loaded is left out with a warning: a logo is not worth losing a recording over.
    pub fn load(mixes: &[MixPlan], base_dir: &Path) -> Self {
        let font = render::load_font();
        if font.is_none() {
            tracing::warn!(paths = ?render::FONT_PATHS, "no font found; labels and titles are not drawn");
        }
        let mut urls: Vec<String> = Vec::new();
        for mix in mixes {
            crate::layout::collect_logo_urls(
                &serde_json::to_value(&mix.layout.options).unwrap_or_default(),
                &mut urls,
            );
        }
        let logos = urls
            .into_iter()
            .filter_map(|url| match render::load_logo(&url, base_dir) {
                Ok(image) => Some((url, image)),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "logo left out");
                    None
                }
            })
            .collect();
        LayoutAssets { font, logos }
    }
}

/// The live state of the call and what the graph shows of it.
pub struct LiveCall {
    roster: Roster,
    speaking: SpeakingDetector,
    mixes: Vec<MixPlan>,
    assets: LayoutAssets,
    /// Updates received so far, applied to participants who join later too.
    updates: Vec<super::JobUpdate>,
    /// Cameras whose media stopped while their publisher stays: shown as placeholders.
    stalled: HashSet<String>,
}

impl LiveCall {
    pub fn new(mixes: Vec<MixPlan>, assets: LayoutAssets) -> Self {
        LiveCall {
            roster: Roster::default(),
            speaking: SpeakingDetector::default(),
            mixes,
            assets,
            updates: Vec::new(),
            stalled: HashSet::new(),
        }
    }

    /// Shows the placeholder of each camera whose frames stopped, and the camera again when
    /// they return.
    pub fn watch_media(&mut self, graph: &Composite) -> anyhow::Result<()> {
        if !graph.has_video() {
            return Ok(());
        }
        let silent: HashSet<String> = graph
            .silent_video_inputs(MEDIA_STALL)
            .filter(|id| id.ends_with(&input_id("", TrackKind::Camera)))
            .map(str::to_owned)
            .collect();
        if silent == self.stalled {
            return Ok(());
        }
        for id in silent.difference(&self.stalled) {
            tracing::info!(input = %id, "no frames for {MEDIA_STALL:?}; showing the placeholder");
        }
        for id in self.stalled.difference(&silent) {
            tracing::info!(input = %id, "frames are back");
        }
        self.stalled = silent;
        self.relayout(graph, None)
    }

    /// The running mix an output started during the call joins: one of the orientation of `quality`, at
    /// least its size, showing `layout` (any layout when `None`); the error lists what runs.
    pub fn mix_for(&self, layout: Option<&LayoutConfig>, quality: Quality) -> Result<usize, String> {
        let (w, h) = quality.size();
        let fits = |m: &MixPlan| m.portrait == (h > w) && m.size.0 * m.size.1 >= w * h;
        self.mixes
            .iter()
            .position(|m| fits(m) && layout.is_none_or(|l| &m.layout == l))
            .ok_or_else(|| {
                let running: Vec<String> = self
                    .mixes
                    .iter()
                    .map(|m| format!("{} at {}x{}", m.layout.name.as_str(), m.size.0, m.size.1))
                    .collect();
                format!(
                    "no running composite shows that layout at {w}x{h} or larger (running: {}); an output started during the call joins one of the job's composites",
                    match running.is_empty() {
                        true => "none".to_owned(),
                        false => running.join(", "),
                    }
                )
            })
    }

    /// Applies a coordinator's update (pins, names, roles) and re-lays out.
    pub fn update(&mut self, update: &super::JobUpdate, graph: &Composite) -> anyhow::Result<()> {
        self.update_from(update, graph, None)
    }

    fn update_from(
        &mut self,
        update: &super::JobUpdate,
        graph: &Composite,
        from: Option<Duration>,
    ) -> anyhow::Result<()> {
        if let Some(layout) = &update.layout {
            self.change_layout(layout);
        }
        self.roster.update(update);
        self.updates.push(update.clone());
        self.relayout(graph, from)
    }

    /// Lays every mix out anew with `layout`; an update whose options do not check out is left
    /// aside with a warning (the job runs on as it was).
    fn change_layout(&mut self, layout: &LayoutConfig) {
        let plan = match LayoutPlan::new(layout.name.as_str(), &layout.options) {
            Ok(plan) => plan,
            Err(problems) => {
                tracing::warn!(?problems, "layout update refused");
                return;
            }
        };
        tracing::info!(layout = layout.name.as_str(), "layout changed");
        for mix in &mut self.mixes {
            mix.layout = layout.clone();
            mix.plan = plan.clone();
            mix.scene = None;
        }
    }

    /// Everyone in the call now, in join order.
    pub fn participants(&self) -> Vec<crate::source::ParticipantInfo> {
        self.roster.infos().cloned().collect()
    }

    /// Who `user_id` is, while in the call.
    pub fn participant(&self, user_id: &str) -> Option<&crate::source::ParticipantInfo> {
        self.roster.info(user_id)
    }

    /// Applies one source event to the call and the graph; `Ok(false)` when the call has ended.
    pub fn apply(&mut self, event: SourceEvent, graph: &mut Composite) -> anyhow::Result<bool> {
        self.apply_from(event, graph, None)
    }

    /// Applies an event of a recorded call (a render): the scene it leads to starts at call
    /// time `at`, whatever the event says.
    pub fn replay(
        &mut self,
        event: SourceEvent,
        graph: &mut Composite,
        at: Duration,
    ) -> anyhow::Result<bool> {
        self.apply_from(event, graph, Some(at))
    }

    /// Applies a coordinator's update of a recorded call from call time `at` on (a render).
    pub fn replay_update(
        &mut self,
        update: &super::JobUpdate,
        graph: &Composite,
        at: Duration,
    ) -> anyhow::Result<()> {
        self.update_from(update, graph, Some(at))
    }

    fn apply_from(
        &mut self,
        event: SourceEvent,
        graph: &mut Composite,
        at: Option<Duration>,
    ) -> anyhow::Result<bool> {
        let mut from = None;
        match event {
            SourceEvent::Joined(info) => {
                tracing::info!(user_id = %info.user_id, "participant joined");
                let user_id = info.user_id.clone();
                graph.participant_joined(&user_id)?;
                self.roster.join(info);
                for update in &self.updates {
                    self.roster.update_one(&user_id, update);
                }
            }
            SourceEvent::Left { user_id, at } => {
                tracing::info!(%user_id, ?at, "participant left");
                from = at;
                let prefix = format!("{user_id}/");
                let ids: Vec<String> = graph
                    .input_ids()
                    .filter(|i| i.starts_with(&prefix))
                    .map(str::to_owned)
                    .collect();
                for input in ids {
                    graph.remove_input(&input, at);
                }
                graph.participant_left(&user_id, at);
                self.roster.leave(&user_id);
                self.speaking.remove(&user_id);
            }
            SourceEvent::TrackAdded {
                user_id,
                kind,
                media,
                encoded,
                starts_at,
            } => {
                if kind.is_video() && !graph.has_video() {
                    return Ok(true);
                }
                let id = input_id(&user_id, kind);
                tracing::info!(%user_id, track = kind.label(), encoded, ?starts_at, "track added");
                graph.add_input(&id, media, kind.is_video(), encoded, starts_at)?;
                self.roster.add_track(&user_id, kind);
                from = starts_at;
            }
            SourceEvent::TrackRemoved { user_id, kind, at } => {
                graph.remove_input(&input_id(&user_id, kind), at);
                self.roster.remove_track(&user_id, kind);
                from = at;
            }
            SourceEvent::Ended { .. } => return Ok(false),
            SourceEvent::Failed(message) => anyhow::bail!("source failed: {message}"),
        }
        self.relayout(graph, at.or(from))?;
        Ok(true)
    }

    /// Feeds an audio level reading; when who speaks changed, re-lays out and returns who
    /// speaks now and who is dominant.
    pub fn hear(
        &mut self,
        user_id: &str,
        level_db: f64,
        at: std::time::Duration,
        graph: &Composite,
    ) -> anyhow::Result<Option<(Vec<String>, Option<String>)>> {
        if !self.speaking.update(user_id, level_db, at) {
            return Ok(None);
        }
        self.relayout(graph, None)?;
        Ok(Some((
            self.speaking.speakers(),
            self.speaking.dominant().map(str::to_owned),
        )))
    }

    /// Takes who speaks from a record of the call (a render), from call time `from` on.
    pub fn replay_speaking(
        &mut self,
        speaking: &[String],
        dominant: Option<&str>,
        graph: &Composite,
        from: std::time::Duration,
    ) -> anyhow::Result<()> {
        self.speaking.set(speaking, dominant);
        self.relayout(graph, Some(from))
    }

    /// Computes each mix's scene for the call as it is and shows those that changed, from the
    /// frame at call time `from` on (the next frame when `None`).
    pub fn relayout(&mut self, graph: &Composite, from: Option<std::time::Duration>) -> anyhow::Result<()> {
        if !graph.has_video() {
            return Ok(());
        }
        let mut views = self
            .roster
            .views(|id| self.speaking.is_speaking(id), self.speaking.dominant());
        for view in &mut views {
            if view.camera.as_ref().is_some_and(|id| self.stalled.contains(id)) {
                view.camera = None;
            }
        }
        let inputs: Vec<String> = graph.input_ids().map(str::to_owned).collect();
        for (index, mix) in self.mixes.iter_mut().enumerate() {
            let scene = mix.plan.scene(&views, mix.size.0, mix.size.1);
            if mix.scene.as_ref() == Some(&scene) {
                continue;
            }
            let placements = inputs
                .iter()
                .map(|input| {
                    let placement = scene.tile_of(input).map(|t| match &t.content {
                        TileContent::Video { scale, .. } => (t.rect, *scale, t.z),
                        TileContent::Placeholder { .. } => (t.rect, layout::ScaleMode::Fill, t.z),
                    });
                    (input.clone(), placement)
                })
                .collect();
            let background = mix
                .scene
                .as_ref()
                .is_none_or(|old| old.background != scene.background)
                .then(|| scene.background.rgb());
            let logo = scene.logo.as_ref().and_then(|l| self.assets.logos.get(&l.url));
            let assets = render::Assets {
                font: self.assets.font.as_ref(),
                logo,
            };
            let shown = MixScene {
                placements,
                background,
                sprites: render::sprites(&scene, &assets),
            };
            graph.show(index, shown, from)?;
            tracing::debug!(mix = index, layout = ?scene.layout, tiles = scene.tiles.len(), "scene applied");
            mix.scene = Some(scene);
        }
        Ok(())
    }
}
