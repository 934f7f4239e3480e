//! All integration tests in one binary, so the suite links once: a module per area.

mod common;
mod fixture;
mod processes;
mod properties;
mod replay_errors;
mod sinks;
