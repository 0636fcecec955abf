//! Kubernetes object → index conversion: the input is JSON for one of the kinds the
//! destination index watches (any tenant can write these), applied to a seeded index with a
//! subscriber on every API, re-listed and deleted. Nothing may panic, and deleting what was
//! added leaves the seeded objects as they were.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxlink_destination::index::{Config, Index};
use oxlink_fuzz::objects;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let mut index = Index::new(Config::default());
    objects::seed(&mut index);
    let held = objects::subscribe_all(&mut index);
    let before = index.sizes();
    objects::apply_json(&mut index, kind, rest);
    let after = index.sizes();
    // An object that replaced a seeded one and was deleted takes it along; otherwise the
    // seeded objects are all still there.
    assert!(after.services <= before.services && after.pods <= before.pods);
    drop(held);
});
