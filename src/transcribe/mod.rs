//! Speech to text with a local Whisper model (whisper.cpp through `whisper-rs`).

mod audio_file;
mod model;
mod pool;
mod segmenter;

pub use audio_file::read_speech;
pub use model::{SAMPLE_RATE, SpeechModel, Transcribed};
pub use pool::{Failed, Heard, Outcome, TranscriberPool};
pub use segmenter::{Segmenter, SegmenterConfig, Utterance};

/// Where the setup puts the converted tiny.en model: `EGRESS_WHISPER_MODEL`, or
/// `$EGRESS_CACHE/models/ggml-tiny.en.bin` (`~/.cache/egress` by default).
pub fn default_model_path() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("EGRESS_WHISPER_MODEL") {
        return path.into();
    }
    let cache = std::env::var_os("EGRESS_CACHE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/egress")
        });
    cache.join("models/ggml-tiny.en.bin")
}

/// Transcribes a whole recording the way a call's audio is: cut into utterances by voice
/// activity (default caption settings), each transcribed on its own. Times are from the start.
pub fn transcribe_utterances(
    model: &SpeechModel,
    samples: &[f32],
    language: Option<&str>,
) -> anyhow::Result<Vec<Transcribed>> {
    let defaults = crate::job::SpeechSegmentConfig::default();
    let mut segmenter = Segmenter::new(SegmenterConfig {
        max_speech: std::time::Duration::from_millis(u64::from(defaults.max_speech_caption_ms)),
        silence: std::time::Duration::from_millis(u64::from(defaults.silence_duration_ms)),
    });
    let mut utterances = segmenter.push(std::time::Duration::ZERO, samples);
    utterances.extend(segmenter.finish());
    let mut out = Vec::new();
    for utterance in utterances {
        let pieces = model.transcribe(&utterance.samples, language)?;
        if let Some(first) = pieces.first() {
            let language = first.language.clone();
            let text: Vec<String> = pieces.into_iter().map(|piece| piece.text).collect();
            out.push(Transcribed {
                start_ms: utterance.start.as_millis() as u64,
                end_ms: utterance.end.as_millis() as u64,
                text: text.join(" "),
                language,
            });
        }
    }
    Ok(out)
}
