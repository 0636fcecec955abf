//! Every name that must match Linkerd's spelling exactly, in one place.
//!
//! Other crates import these constants; no `linkerd.io` string is written twice.

pub mod annotations;
pub mod control_plane;
pub mod env;
pub mod groups;
pub mod labels;
pub mod proxy;
