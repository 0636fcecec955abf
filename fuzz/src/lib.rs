//! What the fuzz targets share: a small seeded cluster index, the Kubernetes kinds the index
//! converts, a driver for the destination and policy HTTP/2 server over an in-memory
//! connection, and the admission webhook's inputs.
//!
//! Every target runs one input on a fresh current-thread runtime with paused time, so timers
//! fire as soon as nothing else can run: a stream that never ends or a timeout costs no wall
//! time, and a run is deterministic.

pub mod admission;
pub mod grpc;
pub mod objects;

use std::future::Future;

/// Runs `f` to completion on a fresh single-threaded runtime whose clock only moves when every
/// task waits on a timer.
pub fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime builds")
        .block_on(f)
}
