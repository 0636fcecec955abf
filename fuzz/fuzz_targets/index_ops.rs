//! The destination index as a state machine: random sequences of objects applied and deleted
//! (from small pools of names and addresses, so they collide), subscriptions opened through
//! the same discovery traits the gRPC services use, subscriptions dropped, and sweeps.
//!
//! Invariant: after a sweep, every subscription key has a live subscriber, so there are never
//! more keys than receivers held; once every receiver is dropped and the index swept, it holds
//! no key at all.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    oxlink_fuzz::objects::run_ops(data);
});
