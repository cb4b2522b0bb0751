//! End-to-end tests: the real binary against a loopback server this process starts.
//!
//! Each test states in its name the promise it guards.

mod adopt;
mod chaos;
mod clean;
mod diagnosis;
mod doctor;
mod faults;
mod fetch;
mod hostile;
mod hosts;
mod interop;
mod links;
mod manifest;
mod pins;
mod readme;
mod resume;
mod s3;
mod segments;
mod share;
mod verify;

use tests::{Sandbox, Scenario};

pub fn sandbox() -> Sandbox {
    Sandbox::new(env!("CARGO_BIN_EXE_xtask-under-test"))
}

/// A loopback server and a sandbox whose manifest the test fills.
pub fn scenario() -> Scenario {
    Scenario::new(env!("CARGO_BIN_EXE_xtask-under-test"))
}

/// Retries in tests wait a millisecond, not half a second: nothing here tests backoff length.
pub const FAST: &[&str] = &["--backoff-ms", "1"];
