//! Running as a fleet on RabbitMQ: the worker (`egress worker`), its configuration, admission by
//! estimated CPU cost, control messages, and the coordinator helpers (`egress submit`, `stop`).

mod amqp;
pub mod config;
pub mod control;
pub mod cost;
mod helpers;
mod lease;
pub mod storages;
mod worker;

pub use amqp::AmqpDestination;
pub use config::WorkerConfig;
pub use helpers::{request_status, send_pause, send_start, send_stop, send_update, submit};
pub use worker::run as run_worker;
