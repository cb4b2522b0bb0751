//! Talking to servers the way curl does: [`client`] (requests, redirects), [`trust`]
//! (which certificate authorities),
//! [`proxy`], [`cookie`], [`auth`] (netrc and tokens), [`hosts`] (what real model hosts
//! do: Drive interstitials, `X-Linked-*` pins), [`s3`] (object stores: settings, SigV4
//! signing, error bodies). URLs arrive parsed, as [`crate::source::Source`]. Nothing here
//! knows about models, files on disk or the user interface.

pub(crate) mod auth;
pub(crate) mod client;
pub(crate) mod cookie;
pub(crate) mod faults;
pub(crate) mod forward;
pub(crate) mod headers;
pub(crate) mod hosts;
pub(crate) mod proxy;
pub(crate) mod s3;
pub(crate) mod trust;
