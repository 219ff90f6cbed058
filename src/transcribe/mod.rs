//! Speech to text with a local Whisper model (whisper.cpp through `whisper-rs`).

mod audio_file;
mod model;

pub use audio_file::read_speech;
pub use model::{SAMPLE_RATE, SpeechModel, Transcribed};

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
