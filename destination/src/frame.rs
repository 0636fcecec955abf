//! gRPC's length-prefixed message framing: a compression flag and a big-endian length before
//! each message. Destination's updates and profiles are encoded once *with* this header, so a
//! stream writes each of them as one HTTP/2 DATA frame, shared and never copied.

use prost::{
    Message,
    bytes::{BufMut, Bytes, BytesMut},
};
use tonic::Status;

/// The header's length: one flag byte and four length bytes.
pub(crate) const HEADER_LEN: usize = 5;

/// `message` encoded behind its gRPC header, in one allocation.
pub(crate) fn framed(message: &impl Message) -> Bytes {
    let len = message.encoded_len();
    let mut buf = BytesMut::with_capacity(HEADER_LEN + len);
    buf.put_u8(0);
    buf.put_u32(len as u32);
    message.encode_raw(&mut buf);
    buf.freeze()
}

/// The request in `body`: exactly one uncompressed framed message of type `M`.
pub(crate) fn decode<M: Message + Default>(body: &[u8]) -> Result<M, Status> {
    M::decode(unframed(body)?)
        .map_err(|e| Status::invalid_argument(format!("malformed request: {e}")))
}

/// The message inside `body`, which must be exactly one uncompressed framed message; each
/// other shape is refused with its own status.
pub(crate) fn unframed(body: &[u8]) -> Result<&[u8], Status> {
    let (header, message) = body
        .split_at_checked(HEADER_LEN)
        .ok_or_else(|| Status::internal("Missing request message."))?;
    if header[0] != 0 {
        return Err(Status::unimplemented(
            "compressed requests are not supported",
        ));
    }
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if len != message.len() {
        return Err(Status::invalid_argument(
            "the request body must be exactly one message",
        ));
    }
    Ok(message)
}
