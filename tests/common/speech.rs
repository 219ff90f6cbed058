//! Speech fixtures and how close captions come to them.

use super::{Scratch, cache_dir};
use std::path::PathBuf;

/// The Whisper model the setup converts.
pub fn model_path() -> PathBuf {
    let path = cache_dir().join("models/ggml-tiny.en.bin");
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup.sh",
        path.display()
    );
    path
}

/// The multilingual Whisper base model the setup converts.
pub fn base_model_path() -> PathBuf {
    let path = cache_dir().join("models/ggml-base.bin");
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup.sh",
        path.display()
    );
    path
}

/// `text` spoken by espeak-ng into a WAV file in the scratch folder.
pub fn speak(scratch: &Scratch, name: &str, text: &str) -> PathBuf {
    speak_in(scratch, name, "en-us", text)
}

/// `text` spoken by espeak-ng with `voice` (`de`, `fr`…) into a WAV file in the scratch folder.
pub fn speak_in(scratch: &Scratch, name: &str, voice: &str, text: &str) -> PathBuf {
    let wav = scratch.dir.join(format!("{name}.wav"));
    let status = std::process::Command::new("espeak-ng")
        .args(["-v", voice, "-s", "150", "-w"])
        .arg(&wav)
        .arg(text)
        .status()
        .expect("espeak-ng runs");
    assert!(status.success());
    wav
}

pub fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric() || *c == '\'')
                .collect::<String>()
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Word-level edit distance over the number of reference words.
pub fn word_error_rate(reference: &str, heard: &str) -> f64 {
    let (r, h) = (words(reference), words(heard));
    let mut row: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, hw) in h.iter().enumerate() {
            let substitution = previous + usize::from(rw != hw);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[h.len()] as f64 / r.len().max(1) as f64
}
