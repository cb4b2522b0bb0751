//! The engine behind `cargo xtask models`: provisions pinned model checkpoints.
//!
//! Layers live in folders and import one way only; `ARCHITECTURE.md` at the repository's
//! root maps every file, states the invariants and follows one fetch through the code.
//!
//! Dependencies are kept few on purpose: each one is compiled by every fresh `cargo
//! xtask`. A crate earns its place only by doing a job better than code we would write.
//!
//! # Adopting it in another workspace
//!
//! Another project's xtask runs the same command line with its own defaults:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     xtask::run_models(std::env::args_os(), &xtask::Defaults::from_workspace())
//! }
//! ```
//!
//! or calls [`verify`] and [`fetch`] on a manifest and a folder directly.

mod cli;
mod commands;
mod engine;
pub mod error;
mod net;
mod places;
mod probe;
mod publish;
pub mod source;
mod store;
mod text;
mod ui;

pub use cli::{Defaults, main, run, run_models, run_pins};
pub use commands::api::{
    Attempted, Ended, Event, FetchOptions, ModelResult, Ranged, Report, Wait, fetch, verify,
};
pub use engine::manifest::{Manifest, Model};
pub use error::{Error, Result};
pub use store::hash::{hash_file, hex};
