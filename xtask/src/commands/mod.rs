//! One file per command, each working on a [`Context`]: the checked manifest, the
//! checkpoints folder and where output goes.

pub(crate) mod add;
pub(crate) mod api;
pub(crate) mod clean;
mod context;
pub(crate) mod doctor;
pub(crate) mod fetch;
pub(crate) mod hook;
pub(crate) mod init;
pub(crate) mod mirror;
pub(crate) mod run;
pub(crate) mod status;
pub(crate) mod verify;

pub(crate) use context::{Context, Location, absolute, invocation, set_standalone};
pub use context::{Defaults, Report};
