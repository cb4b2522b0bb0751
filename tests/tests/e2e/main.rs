//! End-to-end tests: the real binary against a loopback server this process starts.
//!
//! Each test states in its name the promise it guards.

mod add;
mod adopt;
mod bench;
mod cache;
mod clean;
mod diagnosis;
mod doctor;
mod elsewhere;
mod faults;
mod fetch;
mod hook;
mod hosts;
mod install;
mod interop;
mod json;
mod manifest;
mod mirror;
mod ramp;
mod readme;
mod resume;
mod run;
mod s3;
mod secrets;
mod segments;
mod status;
mod verify;
mod windows;

use tests::{Pin, Reply, Sandbox, Scenario, Server, payload};

/// The tool as the tests run it: suggestions it prints start with this path, as typed.
pub const TOOL: &str = env!("CARGO_BIN_EXE_xtask-under-test");

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

/// The command line `base` with `extra` appended (most often [`FAST`]).
pub fn args_with<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    let mut all = base.to_vec();
    all.extend_from_slice(extra);
    all
}

/// Three models on `server`, each at its own path; returns their pins.
pub fn three_models(server: &Server) -> Vec<Pin> {
    (0..3u64)
        .map(|i| {
            let data = payload(200_000 + i as usize * 1000, 40 + i);
            let path = format!("/m{i}");
            server.script(&path, vec![Reply::Body(data.clone())]);
            Pin::new(&format!("m{i}"), &format!("dir/m{i}.bin"), &data, &[server.url(&path)])
        })
        .collect()
}

/// A scenario with one model fetched and verified once (so it is stamped).
pub fn stamped() -> (Scenario, Vec<u8>) {
    let sc = scenario();
    let data = sc.model("m", "m.bin", payload(100_000, 60));
    sc.models(&["fetch"]).expect(0);
    (sc, data.to_vec())
}

/// A small deterministic generator, so a failing case can be replayed.
pub struct Rng(u64);

impl Rng {
    fn step(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.step() % n.max(1)
    }
}

pub fn one_model(url: String, data: &[u8]) -> tests::Sandbox {
    let sb = sandbox();
    sb.write_manifest(&[Pin::new("m", "m.bin", data, &[url])]);
    sb
}
