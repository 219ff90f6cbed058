//! A Whisper model in ggml format, loaded once and shared; each call transcribes one stretch of
//! 16 kHz mono speech in a state of its own, so several speakers can be transcribed at once.

use anyhow::Context;
use std::path::Path;
use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

/// Whisper's input sample rate.
pub const SAMPLE_RATE: u32 = 16_000;

pub struct SpeechModel {
    context: WhisperContext,
    threads: i32,
}

/// A piece of text with its time from the start of the audio given.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcribed {
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
    /// The language heard (ISO 639-1): the one asked for, or the one detected under `auto`.
    pub language: String,
}

impl SpeechModel {
    /// Loads the model file; a missing or unreadable file is told in plain words.
    pub fn load(path: &Path, threads: usize) -> anyhow::Result<SpeechModel> {
        let metadata = std::fs::metadata(path)
            .with_context(|| format!("transcription model {} is missing", path.display()))?;
        anyhow::ensure!(
            metadata.is_file() && metadata.len() > 0,
            "transcription model {} is not a model file",
            path.display()
        );
        silence_library_logs();
        let path_text = path.to_str().context("the model path is not UTF-8")?;
        let context = WhisperContext::new_with_params(path_text, WhisperContextParameters::default())
            .map_err(|e| {
                anyhow::anyhow!(
                    "transcription model {} cannot be loaded (not a whisper.cpp ggml model, or damaged): {e}",
                    path.display()
                )
            })?;
        Ok(SpeechModel {
            context,
            threads: i32::try_from(threads.max(1)).unwrap_or(1),
        })
    }

    /// True when the model knows other languages than English (and can detect them).
    pub fn is_multilingual(&self) -> bool {
        self.context.is_multilingual()
    }

    /// Transcribes 16 kHz mono samples in `language` (`None` or `"auto"` detects it, with a
    /// multilingual model).
    pub fn transcribe(&self, samples: &[f32], language: Option<&str>) -> anyhow::Result<Vec<Transcribed>> {
        self.run(samples, language, false)
    }

    /// Translates 16 kHz mono samples spoken in `language` (detected when `None` or `"auto"`)
    /// into English, with the model's own translate task (a multilingual model only).
    pub fn translate(&self, samples: &[f32], language: Option<&str>) -> anyhow::Result<Vec<Transcribed>> {
        self.run(samples, language, true)
    }

    fn run(
        &self,
        samples: &[f32],
        language: Option<&str>,
        translate: bool,
    ) -> anyhow::Result<Vec<Transcribed>> {
        let mut state = self
            .context
            .create_state()
            .map_err(|e| anyhow::anyhow!("cannot start a transcription: {e}"))?;
        let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
        params.set_n_threads(self.threads);
        params.set_language(Some(language.unwrap_or("auto")));
        params.set_translate(translate);
        params.set_print_special(false);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_timestamps(false);
        // Each call is one utterance: no text carried over from an earlier one.
        params.set_no_context(true);
        params.set_suppress_blank(true);
        // The encoder works on 30 s windows; an utterance needs only its own length (50 frames a
        // second), which makes short captions several times cheaper.
        let seconds = samples.len() as f32 / SAMPLE_RATE as f32;
        params.set_audio_ctx(((seconds + 1.0) * 50.0).ceil().min(1500.0) as i32);
        params.set_suppress_nst(true);
        state
            .full(params, samples)
            .map_err(|e| anyhow::anyhow!("transcription failed: {e}"))?;
        let language = match language.filter(|l| *l != "auto") {
            Some(asked) => asked.to_owned(),
            None if self.is_multilingual() => whisper_rs::get_lang_str(state.full_lang_id_from_state())
                .unwrap_or("en")
                .to_owned(),
            // An English-only model hears English.
            None => "en".to_owned(),
        };
        let mut out = Vec::new();
        for segment in state.as_iter() {
            let text = segment.to_str_lossy().map_err(|e| anyhow::anyhow!("{e}"))?;
            let text = text.trim();
            // Punctuation alone (".", "...") is what the model makes of a noise: no speech.
            if !text.chars().any(char::is_alphanumeric) {
                continue;
            }
            // whisper.cpp counts time in hundredths of a second.
            out.push(Transcribed {
                start_ms: u64::try_from(segment.start_timestamp()).unwrap_or(0) * 10,
                end_ms: u64::try_from(segment.end_timestamp()).unwrap_or(0) * 10,
                text: text.to_owned(),
                language: language.clone(),
            });
        }
        Ok(out)
    }
}

/// whisper.cpp prints its progress to stderr unless its logs are taken over; without a
/// logging backend feature, whisper-rs drops them, which the worker's log is better without.
fn silence_library_logs() {
    whisper_rs::install_logging_hooks();
}
