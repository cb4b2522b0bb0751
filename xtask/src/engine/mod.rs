//! The fetch pipeline, in the order one model meets it (ARCHITECTURE.md tells the
//! whole story): [`manifest`] reads and checks models.toml → [`plan`] selects models and
//! sees what is on disk → [`provide`] takes a model's lock and goes through the cache or
//! not → [`transfer`] downloads into a partial, retried by [`retry`] and split by
//! [`segments`], reporting [`events`] → [`check`] judges the bytes → [`install`] places
//! the checked file. [`slots`] caps connections per host; [`workers`] runs models on a
//! few threads.

pub(crate) mod check;
pub(crate) mod events;
pub(crate) mod install;
pub(crate) mod manifest;
pub(crate) mod plan;
pub(crate) mod provide;
pub(crate) mod retry;
pub(crate) mod segments;
pub(crate) mod settings;
pub(crate) mod slots;
pub(crate) mod transfer;
pub(crate) mod workers;
