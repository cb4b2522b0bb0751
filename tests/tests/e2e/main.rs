//! End-to-end tests: the real binary against a loopback server this process starts.
//!
//! Each test states in its name the promise it guards.

mod adopt;
mod chaos;
mod clean;
mod diagnosis;
mod doctor;
mod edges;
mod faults;
mod fetch;
mod habits;
mod hosts;
mod interop;
mod links;
mod manifest;
mod pins;
mod ramp;
mod readme;
mod resume;
mod robustness;
mod run;
mod s3;
mod safety;
mod secrets;
mod segments;
mod share;
mod verify;
mod windows;

use tests::{Sandbox, Scenario};

pub fn sandbox() -> Sandbox {
    Sandbox::new(env!("CARGO_BIN_EXE_xtask-under-test"))
}

/// A loopback server and a sandbox whose manifest the test fills.
pub fn scenario() -> Scenario {
    Scenario::new(env!("CARGO_BIN_EXE_xtask-under-test"))
}

/// `--timeout` for the tests whose subject is the stall timeout itself (a stall the tool
/// must cut): far above anything a loopback exchange takes, so only the stall the test
/// scripted can reach it. Tests about anything else end their stalls themselves (a reset,
/// a gate the test opens) and keep the default.
pub const STALL_TIMEOUT: &str = "2";

/// Retries in tests wait a millisecond, not half a second: nothing here tests backoff length.
pub const FAST: &[&str] = &["--backoff-ms", "1"];
