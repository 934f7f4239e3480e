//! All integration tests in one binary, so the suite links once: a module per area.

mod architecture;
mod bench;
mod browser;
mod common;
mod counters;
mod crash;
mod cut_proxy;
mod fixture;
mod jobs;
mod postgres_scratch;
mod private_postgres;
mod processes;
mod properties;
mod queries;
mod replay_errors;
mod retention;
mod server_restart;
mod sinks;
mod ui;
mod verify;
