//! What lives on disk besides the models: the shared [`cache`], [`stamp`]s, [`lock`]s,
//! and the primitives every writer uses ([`fs`]: atomic writes, links, fsync; [`hash`]:
//! sha256 of a file or a stream). Nothing here knows about the network or the UI.

pub(crate) mod cache;
pub(crate) mod fs;
pub(crate) mod hash;
pub(crate) mod lock;
pub(crate) mod partial;
pub(crate) mod stamp;
