//! Every name that must match Linkerd's spelling exactly, in one place.
//!
//! Other crates import these constants; no `linkerd.io` string is written twice. The formats
//! the mesh writes are here too, each once: mesh identity names ([`identity`]), networks
//! ([`cidr::Cidr`]), base64 and SHA-256 hex ([`encoding`]).

pub mod annotations;
pub mod cidr;
pub mod control_plane;
pub mod encoding;
pub mod env;
pub mod groups;
pub mod identity;
pub mod labels;
pub mod proxy;
