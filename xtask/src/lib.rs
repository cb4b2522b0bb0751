//! The engine behind `cargo xtask models`: provisions pinned model checkpoints.
//!
//! Data flows one way, one module per stage:
//! [`manifest`] (read and check models.toml) → [`plan`] (select models, see what is on
//! disk) → [`transfer`] (download with retries and resume, helped by [`net`], [`auth`],
//! [`hosts`] and [`retry`]) → [`check`] (size, sha256, content sniffing) → [`install`]
//! (fsync and atomic rename). [`error`] holds the one fault type whose class decides both
//! the retry policy and the hint the user reads.
//!
//! One module per command ([`fetch`], [`verify`], [`status`], [`clean`], [`mirror`],
//! [`add`], [`run`], [`hook`], [`bench`]) strings the stages together; [`cache`],
//! [`lock`], [`stamp`] and [`workers`] let many runs share one machine and skip work
//! already done.
//!
//! Dependencies are kept few on purpose: each one is compiled by every fresh `cargo
//! xtask`. A crate earns its place only by doing a job better than code we would write.

pub mod add;
pub mod attempt_log;
pub mod auth;
pub mod bench;
pub mod cache;
pub mod check;
pub mod clean;
pub mod cli;
pub mod error;
pub mod fetch;
pub mod hook;
pub mod hosts;
pub mod install;
pub mod json;
pub mod lock;
pub mod manifest;
pub mod mirror;
pub mod net;
pub mod plan;
pub mod progress;
pub mod retry;
pub mod run;
pub mod stamp;
pub mod status;
pub mod transfer;
pub mod verify;
pub mod workers;

use camino::{Utf8Path, Utf8PathBuf};

/// The workspace root, found from where this crate was built, so `cargo xtask` works
/// from any subdirectory.
pub fn project_root() -> Utf8PathBuf {
    let dir = Utf8Path::new(env!("CARGO_MANIFEST_DIR"));
    dir.parent().unwrap_or(dir).to_owned()
}
