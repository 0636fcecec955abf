//! gRPC request decoding of Destination (Get, GetProfile) and the policy APIs
//! (InboundServerPolicies, OutboundPolicies), through the server as a proxy reaches it: one
//! well-formed HTTP/2 request whose body is the input, framed as a gRPC message or not. The
//! path, context token, workload and target parsers behind them, and the index lookups they
//! make, must not panic whatever the message says.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let method = usize::from(mode >> 1);
    oxlink_fuzz::block_on(oxlink_fuzz::grpc::request(method, body, mode & 1 == 0));
});
