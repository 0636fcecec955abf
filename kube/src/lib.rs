//! The Kubernetes client of every oxlink controller and of the CLI, set up in one place.
//!
//! kube's default stack speaks HTTP/1.1 with an unbounded connection pool: under concurrent
//! requests (identity's TokenReviews), hyper opens a new TLS connection whenever no idle one is
//! at hand and keeps it in the pool afterwards, so connections and API-server handshakes grow
//! with the load. [`client`] builds the same kube layers over a hyper client that negotiates
//! HTTP/2 with the API server (one multiplexed connection, as client-go keeps), bounds requests
//! in flight and idle connections, closes idle connections after a timeout, and counts requests
//! and connections in process-wide [`metrics`]. [`events`] records Kubernetes Events the way
//! client-go aggregates them.

mod client;
mod connect;
pub mod events;
pub mod metrics;
pub mod pods;
#[cfg(feature = "test-util")]
pub mod proc;

pub use self::client::{Options, client, client_with, infer};
