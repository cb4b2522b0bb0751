//! The engine behind `cargo xtask models`: provisions pinned model checkpoints.
//!
//! Layers live in folders and import one way only (a test reads every `use crate::`
//! line and fails on an import that points up):
//!
//! ```text
//! cli       clap types, dispatch, exit codes            → commands
//! commands  Context, one file per command               → engine, store, ui
//! engine    manifest → plan → transfer → check → install → net, store
//! ui        progress, --json records, the attempt log   → engine (types only)
//! net       HTTP client, proxies, cookies, credentials, URLs
//! store     the cache, stamps, locks, atomic file writes
//! error     faults, origins and the one Error type      → source
//! source    where bytes come from: a typed, redacted URL → text
//! text      byte counts and rates for messages          (used by all, uses none)
//! ```
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

pub use cli::{Defaults, main, run, run_models};
pub use commands::api::{FetchOptions, Report, fetch, verify};
pub use engine::manifest::{Manifest, Model};
pub use error::{Error, Result};
pub use store::hash::{hash_file, hex};
