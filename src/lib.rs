//! Headless media egress worker: joins a call, composites it and writes recordings.

pub mod backoff;
pub mod events;
pub mod job;
pub mod layout;
pub mod manifest;
pub mod media;
pub mod participants;
pub mod queue;
pub mod redact;
pub mod render;
pub mod server;
pub mod session;
pub mod source;
pub mod speaking;
pub mod storage;
pub mod tls;
pub mod transcribe;
