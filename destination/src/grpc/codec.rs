//! A gRPC codec that sends messages encoded once in the index: each stream copies the shared
//! bytes into its frame instead of encoding the message again. Requests are decoded with prost.

use prost::{
    Message,
    bytes::{BufMut, Bytes},
};
use std::marker::PhantomData;
use tonic::{
    Status,
    codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
};

/// Encodes pre-encoded `Bytes`, decodes `R`.
#[derive(Debug)]
pub(crate) struct PreEncodedCodec<R>(PhantomData<fn() -> R>);

impl<R> Default for PreEncodedCodec<R> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<R: Message + Default + Send + 'static> Codec for PreEncodedCodec<R> {
    type Encode = Bytes;
    type Decode = R;
    type Encoder = BytesEncoder;
    type Decoder = MessageDecoder<R>;

    fn encoder(&mut self) -> Self::Encoder {
        BytesEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        MessageDecoder(PhantomData)
    }
}

#[derive(Debug)]
pub(crate) struct BytesEncoder;

impl Encoder for BytesEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }

    /// A small initial buffer: every open stream holds one, and most of the time a stream is
    /// idle. It grows to fit a large update while it is being sent.
    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::new(256, 32 * 1024)
    }
}

#[derive(Debug)]
pub(crate) struct MessageDecoder<R>(PhantomData<fn() -> R>);

impl<R: Message + Default> Decoder for MessageDecoder<R> {
    type Item = R;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<R>, Status> {
        R::decode(src)
            .map(Some)
            .map_err(|e| Status::invalid_argument(format!("malformed request: {e}")))
    }
}
