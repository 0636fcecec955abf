//! AdmissionReview → inject → JSON patch. The input is either a whole AdmissionReview body or
//! the object of a pod (or Service) CREATE review built around it; the injector must answer
//! without panicking, and a patch it makes must apply to the object it was made for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxlink_fuzz::admission;
use serde_json::Value;
use std::sync::LazyLock;

static INJECTOR: LazyLock<oxlink_proxy_injector::admission::Injector> =
    LazyLock::new(admission::injector);

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    oxlink_fuzz::block_on(async {
        if mode & 1 == 1 {
            admission::inject(&INJECTOR, rest, None).await;
            return;
        }
        let Ok(object) = serde_json::from_slice::<Value>(rest) else {
            return;
        };
        let body = if mode & 2 == 0 {
            admission::review("", "v1", "Pod", "pods", &object)
        } else {
            admission::review("", "v1", "Service", "services", &object)
        };
        admission::inject(&INJECTOR, &body, Some(&object)).await;
    });
});
