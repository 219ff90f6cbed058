//! A small pool of threads running the model on utterances, off the media threads. Utterances
//! wait in a bounded queue; results come back on a channel in the order they finish.

use super::model::SpeechModel;
use super::segmenter::Utterance;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Utterances waiting for a thread; more are held back by their speaker's feeding thread.
const QUEUE: usize = 32;

pub struct Heard {
    pub speaker: String,
    pub utterance_start: std::time::Duration,
    pub utterance_end: std::time::Duration,
    pub text: String,
    /// The language heard; empty when nothing was.
    pub language: String,
    /// The utterance in English, when translations are asked for and it was not English.
    pub translation: Option<String>,
    /// When the utterance was handed over (for the caption latency figure).
    pub queued_at: Instant,
}

pub struct Failed {
    pub speaker: String,
    pub error: String,
}

pub type Outcome = Result<Heard, Failed>;

pub struct TranscriberPool {
    jobs: Option<SyncSender<(String, Utterance, Instant)>>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl TranscriberPool {
    /// `workers` threads, each running the model with `threads_each` threads.
    pub fn start(
        model: Arc<SpeechModel>,
        language: Option<String>,
        translate: bool,
        workers: usize,
        results: mpsc::Sender<Outcome>,
        on_result: Arc<dyn Fn() + Send + Sync>,
    ) -> anyhow::Result<TranscriberPool> {
        let (tx, rx) = mpsc::sync_channel::<(String, Utterance, Instant)>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        let mut handles = Vec::new();
        for n in 0..workers.max(1) {
            let rx = rx.clone();
            let model = model.clone();
            let language = language.clone();
            let results = results.clone();
            let on_result = on_result.clone();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("transcribe-{n}"))
                    .spawn(move || {
                        work(&model, language.as_deref(), translate, &rx, &results, &*on_result)
                    })?,
            );
        }
        Ok(TranscriberPool {
            jobs: Some(tx),
            workers: handles,
        })
    }

    /// A sender for one speaker's feeding thread.
    pub fn sender(&self) -> Option<SyncSender<(String, Utterance, Instant)>> {
        self.jobs.clone()
    }

    /// Waits until every utterance handed over has been transcribed.
    pub fn drain(mut self) {
        self.jobs.take();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

fn work(
    model: &SpeechModel,
    language: Option<&str>,
    translate: bool,
    jobs: &Mutex<Receiver<(String, Utterance, Instant)>>,
    results: &mpsc::Sender<Outcome>,
    on_result: &(dyn Fn() + Send + Sync),
) {
    loop {
        let next = jobs.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok((speaker, utterance, queued_at)) = next else {
            return;
        };
        let outcome = match model.transcribe(&utterance.samples, language) {
            Ok(pieces) => {
                let heard_language = pieces.first().map(|p| p.language.clone()).unwrap_or_default();
                let translation = match translate && !heard_language.is_empty() && heard_language != "en" {
                    true => match model.translate(&utterance.samples, Some(&heard_language)) {
                        Ok(english) => Some(joined(&english)),
                        Err(e) => {
                            tracing::warn!(error = %format!("{e:#}"), "an utterance was not translated");
                            None
                        }
                    },
                    false => None,
                };
                let text = joined(&pieces);
                Ok(Heard {
                    speaker,
                    utterance_start: utterance.start,
                    utterance_end: utterance.end,
                    text,
                    language: heard_language,
                    translation: translation.filter(|t| !t.is_empty()),
                    queued_at,
                })
            }
            Err(e) => Err(Failed {
                speaker,
                error: format!("{e:#}"),
            }),
        };
        let sent = results.send(outcome);
        on_result();
        if sent.is_err() {
            return;
        }
    }
}

/// The text of an utterance's pieces, in order.
fn joined(pieces: &[super::model::Transcribed]) -> String {
    pieces
        .iter()
        .map(|p| p.text.as_str())
        .collect::<Vec<_>>()
        .join(" ")
        .trim()
        .to_owned()
}
