//! The hand-written HTTP/2 server of Destination (and the policy APIs): any bytes a client
//! sends on its connection, with or without the connection preface in front. The server may
//! refuse or close, but must not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    oxlink_fuzz::block_on(oxlink_fuzz::grpc::raw_connection(rest, mode & 1 == 0));
});
