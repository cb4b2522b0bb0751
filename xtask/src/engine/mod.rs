//! The stages a model goes through, in order: [`manifest`] (read and check models.toml)
//! → [`plan`] (select models, see what is on disk) → [`transfer`] (download with retries
//! and resume, reporting through [`events`]) → [`check`] (size, sha256, content sniffing)
//! → [`install`] (fsync and atomic rename); [`segments`] splits one large file over
//! several connections. [`retry`] decides how long to wait;
//! [`workers`] runs per-model work on a few threads.

pub(crate) mod check;
pub(crate) mod events;
pub(crate) mod install;
pub(crate) mod manifest;
pub(crate) mod plan;
pub(crate) mod probe;
pub(crate) mod provide;
pub(crate) mod publish;
pub(crate) mod retry;
pub(crate) mod segments;
pub(crate) mod slots;
pub(crate) mod transfer;
pub(crate) mod workers;
