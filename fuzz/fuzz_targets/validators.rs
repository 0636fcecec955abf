//! The ServiceProfile and policy validators: either a whole AdmissionReview body, or the
//! object of a CREATE review of one of the validated kinds built around it. Neither webhook
//! may panic, a well-formed review is always answered, and the answer says what was decided.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxlink_fuzz::admission::{self, VALIDATED};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    oxlink_fuzz::block_on(async {
        if mode & 1 == 1 {
            admission::validate(rest, false).await;
            return;
        }
        let Ok(object) = serde_json::from_slice::<Value>(rest) else {
            return;
        };
        let (group, version, kind, resource) = VALIDATED[usize::from(mode >> 1) % VALIDATED.len()];
        let body = admission::review(group, version, kind, resource, &object);
        admission::validate(&body, true).await;
    });
});
