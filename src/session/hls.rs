//! The HLS output of a session: publishes each segment to storage as soon as its playlist lists
//! it (so viewers can play from storage during the call), then the playlist, and the master
//! playlist once every rendition has a segment.

use super::OutputKind;
use super::control::{Answer, Running};
use super::lifecycle::{OutputId, Step};
use super::output::{Live, OutputModule, SessionOutput};
use crate::events::EventBody;
use crate::job::{HlsConfig, Job};
use crate::media::{Composite, HlsFeeds, HlsRendition, HlsSpec, attach_hls, master_playlist};
use crate::storage::{self, Output, Uploader};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often new segments are looked for.
const PUBLISH_EVERY: Duration = Duration::from_millis(250);
/// How long the playlists of HLS stopped alone may take to get their end tag.
const ENDING_WAIT: Duration = Duration::from_secs(10);

pub struct HlsOutput {
    root: PathBuf,
    renditions: Vec<HlsRendition>,
    /// Storage key prefix of the broadcast, e.g. `recordings/hls/eg_1`.
    prefix: String,
    published: HashSet<PathBuf>,
    /// The last text of each media playlist published.
    playlists: HashMap<PathBuf, String>,
    /// With signed URLs (a private bucket), every URI a player follows is one, valid as long as
    /// the URL of the master: relative URIs would carry no signature.
    signed: bool,
    pub started: bool,
    /// The master playlist as stored.
    master: String,
    /// The branches from the encoders, until HLS is stopped alone.
    feeds: Option<HlsFeeds>,
    /// Stopped by the coordinator at this time: its playlists are ending, the stopped event
    /// follows.
    ending_since: Option<Instant>,
    /// Stopped alone and announced.
    pub stopped_alone: bool,
    last_publish: Instant,
}

impl HlsOutput {
    pub fn attach(
        graph: &mut Composite,
        job: &Job,
        egress_id: &str,
        config: &HlsConfig,
        mix: Option<usize>,
        spool: &Path,
    ) -> anyhow::Result<HlsOutput> {
        let root = spool.join("hls");
        let (renditions, feeds) = attach_hls(
            graph,
            &HlsSpec {
                mix,
                renditions: config.quality_tracks.clone(),
                segment_duration_s: config.segment_duration_s,
                dir: root.clone(),
            },
        )?;
        let prefix = storage::object_key(job.storage.path.as_deref(), &format!("hls/{egress_id}"))?;
        Ok(HlsOutput {
            root,
            renditions,
            prefix,
            published: HashSet::new(),
            playlists: HashMap::new(),
            signed: job.storage.url_expiry_s.is_some(),
            started: false,
            master: String::new(),
            feeds: Some(feeds),
            ending_since: None,
            stopped_alone: false,
            last_publish: Instant::now(),
        })
    }

    /// Ends the broadcast while the call and the other outputs run on: the playlists get their
    /// end tag, and `publish` announces the stop once they are stored. False when it had ended.
    pub fn stop_alone(&mut self) -> bool {
        let Some(feeds) = &self.feeds else {
            return false;
        };
        if self.ending_since.is_some() || self.stopped_alone {
            return false;
        }
        feeds.end();
        self.ending_since = Some(Instant::now());
        true
    }

    /// Whether HLS still runs (not stopped alone, nor stopping).
    pub fn running(&self) -> bool {
        self.ending_since.is_none() && !self.stopped_alone
    }

    /// Publishes what is new; announces the broadcast when every rendition can be played.
    pub fn publish(
        &mut self,
        uploader: &mut Uploader,
        graph: &Composite,
        emit: super::Emit,
        warnings: &mut Vec<String>,
    ) -> anyhow::Result<()> {
        if self.stopped_alone {
            return Ok(());
        }
        let mut playable = true;
        let mut ended = true;
        for rendition in &self.renditions {
            let Some((text, segments)) = read_playlist(&rendition.playlist) else {
                playable = false;
                ended = false;
                continue;
            };
            playable &= !segments.is_empty();
            ended &= text.ends_with("#EXT-X-ENDLIST");
            for segment in segments {
                let path = rendition.dir.join(&segment);
                if self.published.contains(&path) {
                    continue;
                }
                uploader.submit_file(Output::Hls, &path, &self.key(&path), None)?;
                self.published.insert(path);
            }
            if self.playlists.get(&rendition.playlist) != Some(&text) {
                // The sink rewrites its playlist; publish the text read and leave the file alone.
                let key = self.key(&rendition.playlist);
                let stored = match self.signed {
                    true => with_signed_segments(&text, |segment| {
                        uploader.url(&self.key(&rendition.dir.join(segment)))
                    }),
                    false => text.clone(),
                };
                uploader.submit_bytes(Output::Hls, stored.as_bytes(), &key, None)?;
                self.playlists.insert(rendition.playlist.clone(), text);
            }
        }
        if playable && !self.started {
            let key = self.key(&self.root.join("master.m3u8"));
            // Announced once the master playlist is stored, after the segments before it.
            let started = EventBody::HlsStarted {
                hls_playlist_url: uploader.url(&key),
                warnings: std::mem::take(warnings),
            };
            let master = master_playlist(&self.renditions, |r| match self.signed {
                true => uploader.url(&self.key(&r.playlist)),
                false => {
                    let relative = r.playlist.strip_prefix(&self.root).unwrap_or(&r.playlist);
                    relative.to_string_lossy().into_owned()
                }
            });
            uploader.submit_bytes(Output::Hls, master.as_bytes(), &key, Some(started))?;
            self.started = true;
            self.master = master;
        }
        // A rendition with no segment yet may never write a playlist.
        let given_up = self
            .ending_since
            .is_some_and(|since| since.elapsed() > ENDING_WAIT);
        if self.ending_since.is_some() && (ended || given_up) {
            self.ending_since = None;
            self.stopped_alone = true;
            if let Some(feeds) = self.feeds.take() {
                feeds.remove(graph.pipeline());
            }
            match self.started {
                // Announced once the ended playlists, queued before, are stored.
                true => {
                    let key = self.key(&self.root.join("master.m3u8"));
                    let master = self.master.clone();
                    uploader.submit_bytes(
                        Output::Hls,
                        master.as_bytes(),
                        &key,
                        Some(EventBody::HlsStopped {}),
                    )?;
                }
                false => emit(EventBody::HlsStopped {}),
            }
        }
        Ok(())
    }

    /// The storage key of a file in the spool's HLS folder.
    fn key(&self, path: &Path) -> String {
        let relative = path.strip_prefix(&self.root).unwrap_or(path);
        format!("{}/{}", self.prefix, relative.to_string_lossy())
    }
}

/// The playlist with each segment's URI replaced by `url_of` it.
fn with_signed_segments(text: &str, url_of: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for line in text.split_inclusive('\n') {
        let uri = line.trim();
        if uri.is_empty() || uri.starts_with('#') {
            out.push_str(line);
        } else {
            out.push_str(&url_of(uri));
            if line.ends_with('\n') {
                out.push('\n');
            }
        }
    }
    out
}

/// A media playlist's text and the segments it lists, or `None` before it is written.
fn read_playlist(path: &Path) -> Option<(String, Vec<String>)> {
    let text = std::fs::read_to_string(path).ok()?;
    // A playlist caught half written is skipped until the next look; the closed one ends
    // with the end tag and no newline.
    let complete = text.ends_with('\n') || text.ends_with("#EXT-X-ENDLIST");
    if !text.starts_with("#EXTM3U") || !complete {
        return None;
    }
    let segments = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    Some((text, segments))
}

impl SessionOutput for HlsOutput {
    fn output_id(&self) -> OutputId {
        OutputId::Hls
    }

    fn running(&self) -> bool {
        HlsOutput::running(self)
    }

    fn tick(&mut self, live: &mut Live) -> anyhow::Result<()> {
        if self.last_publish.elapsed() < PUBLISH_EVERY {
            return Ok(());
        }
        self.last_publish = Instant::now();
        self.publish(live.uploader, live.graph, live.emit, live.warnings)
    }

    fn store_rest(&mut self, live: &mut Live) -> anyhow::Result<()> {
        self.publish(live.uploader, live.graph, live.emit, live.warnings)
    }

    fn stopped_once_stored(&self) -> Option<EventBody> {
        (self.started && !self.stopped_alone).then_some(EventBody::HlsStopped {})
    }
}

/// The live HLS broadcast, as the session knows it.
pub(super) static MODULE: OutputModule = OutputModule {
    kinds: &[OutputKind::Hls],
    asked: |job| job.hls.iter().map(|_| OutputId::Hls).collect(),
    attach: |at| {
        let Some(config) = &at.job.hls else {
            return Ok(vec![]);
        };
        let hls = HlsOutput::attach(at.graph, at.job, &at.id.egress_id, config, at.mixes.hls, at.spool)?;
        Ok(vec![Box::new(hls)])
    },
    start,
    stop: |running, _| {
        Ok(match running.outputs.one::<HlsOutput>().is_some_and(|h| h.stop_alone()) {
            true => Ok("hls stopping; call.hls_broadcasting_stopped follows once its playlists are ended and stored".into()),
            false => Err("hls is not running".into()),
        })
    },
    pause: None,
    step_of: |body| {
        Some(match body {
            EventBody::HlsStarted { .. } => (OutputId::Hls, Step::Start),
            EventBody::HlsStopped {} => (OutputId::Hls, Step::Stop),
            EventBody::HlsFailed { .. } => (OutputId::Hls, Step::Fail),
            _ => return None,
        })
    },
    failed: |output, error| {
        (*output == OutputId::Hls).then(|| EventBody::HlsFailed {
            error: error.to_owned(),
        })
    },
};

/// Starts a live HLS broadcast the job did not have, from the section (the job's shape). It
/// joins the running composite of its layout (the recording's when it names none) and the
/// encoders of its sizes; `call.hls_broadcasting_started` follows once every rendition has a
/// segment stored. A broadcast that was stopped does not start again: its playlists are ended.
fn start(running: &mut Running, _: OutputKind, section: serde_json::Value) -> Answer {
    if let Some(hls) = running.outputs.one::<HlsOutput>() {
        return Err(match hls.running() {
            true => "hls is running already".into(),
            false => {
                "hls ran in this job and was stopped; its playlists are ended, so it does not start again"
                    .into()
            }
        });
    }
    let with_hls = running.checked_section(OutputKind::Hls, &section)?;
    let config = with_hls
        .hls
        .as_ref()
        .ok_or_else(|| "the hls section: expected an object".to_owned())?;
    let largest = config
        .quality_tracks
        .iter()
        .filter_map(|t| t.video())
        .max_by_key(|q| q.size().0 * q.size().1);
    let mix = match largest {
        Some(quality) => Some(running.call.mix_for(config.layout.as_ref(), quality)?),
        None => None,
    };
    let spool = running.spool();
    let hls = HlsOutput::attach(
        running.graph,
        &with_hls,
        &running.id.egress_id,
        config,
        mix,
        &spool,
    )
    .map_err(|e| format!("hls cannot start: {e:#}"))?;
    running.outputs.add_of(&MODULE, hls);
    running.lifecycles.register(OutputId::Hls);
    Ok(
        "hls starting; call.hls_broadcasting_started follows once every rendition has a segment stored"
            .into(),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_segment_lines_are_replaced_and_the_end_tag_stays_last() {
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nsegment00001.ts\n#EXTINF:1.0,\nsegment00002.ts\n#EXT-X-ENDLIST";
        let signed = super::with_signed_segments(text, |s| format!("https://b/{s}?sig=1"));
        assert_eq!(
            signed,
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nhttps://b/segment00001.ts?sig=1\n#EXTINF:1.0,\nhttps://b/segment00002.ts?sig=1\n#EXT-X-ENDLIST"
        );
    }
}
