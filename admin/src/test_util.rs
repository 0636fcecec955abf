//! A raw HTTP/2 client for tests of the servers' limits: it writes exactly the frames it is
//! told to (ignoring the server's SETTINGS, never answering a PING unless asked), so a test
//! can behave as an abusive client would.

use std::{net::SocketAddr, time::Duration};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
};

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub const DATA: u8 = 0;
pub const HEADERS: u8 = 1;
pub const RST_STREAM: u8 = 3;
pub const SETTINGS: u8 = 4;
pub const PING: u8 = 6;
pub const GOAWAY: u8 = 7;
pub const CONTINUATION: u8 = 9;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

pub const REFUSED_STREAM: u32 = 0x7;

/// One frame read from the server.
#[derive(Clone, Debug)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The error code of a RST_STREAM.
    pub fn reset_code(&self) -> Option<u32> {
        (self.kind == RST_STREAM && self.payload.len() == 4)
            .then(|| u32::from_be_bytes(self.payload[..4].try_into().unwrap()))
    }
}

/// A raw HTTP/2 connection over any byte stream.
pub struct RawH2<IO = TcpStream> {
    io: IO,
}

impl RawH2<TcpStream> {
    /// A TCP connection that has sent nothing yet.
    pub async fn tcp(addr: SocketAddr) -> std::io::Result<Self> {
        Ok(Self {
            io: TcpStream::connect(addr).await?,
        })
    }

    /// Connects and completes the HTTP/2 handshake: preface, empty SETTINGS, the server's
    /// SETTINGS read and acknowledged (so its limits are in force).
    pub async fn connect(addr: SocketAddr) -> std::io::Result<Self> {
        let mut raw = Self::tcp(addr).await?;
        raw.handshake().await?;
        Ok(raw)
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> RawH2<IO> {
    pub fn new(io: IO) -> Self {
        Self { io }
    }

    pub async fn handshake(&mut self) -> std::io::Result<()> {
        self.io.write_all(PREFACE).await?;
        self.frame(SETTINGS, 0, 0, &[]).await?;
        loop {
            let Some(frame) = self.read().await? else {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            };
            if frame.kind == SETTINGS && frame.flags & ACK == 0 {
                return self.frame(SETTINGS, ACK, 0, &[]).await;
            }
        }
    }

    /// Writes one frame.
    pub async fn frame(
        &mut self,
        kind: u8,
        flags: u8,
        stream: u32,
        payload: &[u8],
    ) -> std::io::Result<()> {
        let len = payload.len() as u32;
        let mut head = [0u8; 9];
        head[..3].copy_from_slice(&len.to_be_bytes()[1..]);
        head[3] = kind;
        head[4] = flags;
        head[5..].copy_from_slice(&stream.to_be_bytes());
        self.io.write_all(&head).await?;
        self.io.write_all(payload).await?;
        self.io.flush().await
    }

    /// Opens `stream` with a POST to `path` and the `extra` headers, split into CONTINUATION
    /// frames as needed; with `end_stream` the request has no body.
    pub async fn request(
        &mut self,
        stream: u32,
        path: &str,
        extra: &[(&str, &str)],
        end_stream: bool,
    ) -> std::io::Result<()> {
        let mut block = Vec::new();
        for (name, value) in [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", "localhost"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ]
        .into_iter()
        .chain(extra.iter().copied())
        {
            literal(&mut block, name, value);
        }
        let chunks: Vec<&[u8]> = block.chunks(16_384).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let last = i + 1 == chunks.len();
            let (kind, mut flags) = if i == 0 {
                (HEADERS, 0)
            } else {
                (CONTINUATION, 0)
            };
            if i == 0 && end_stream {
                flags |= END_STREAM;
            }
            if last {
                flags |= END_HEADERS;
            }
            self.frame(kind, flags, stream, chunk).await?;
        }
        Ok(())
    }

    /// Sends `message` as one gRPC message on `stream`, ending the request.
    pub async fn grpc_message(&mut self, stream: u32, message: &[u8]) -> std::io::Result<()> {
        let mut payload = vec![0u8];
        payload.extend_from_slice(&(message.len() as u32).to_be_bytes());
        payload.extend_from_slice(message);
        self.frame(DATA, END_STREAM, stream, &payload).await
    }

    /// The next frame, `None` when the server closed the connection.
    pub async fn read(&mut self) -> std::io::Result<Option<Frame>> {
        let mut head = [0u8; 9];
        match self.io.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e),
        }
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0u8; len];
        self.io.read_exact(&mut payload).await?;
        Ok(Some(Frame {
            kind: head[3],
            flags: head[4],
            stream: u32::from_be_bytes(head[5..].try_into().unwrap()) & 0x7fff_ffff,
            payload,
        }))
    }

    /// Reads frames until `want` returns true for one (returned) or the connection closes
    /// (`None`); fails the test after `within`.
    pub async fn read_until(
        &mut self,
        within: Duration,
        mut want: impl FnMut(&Frame) -> bool,
    ) -> Option<Frame> {
        tokio::time::timeout(within, async {
            while let Some(frame) = self.read().await.ok().flatten() {
                if want(&frame) {
                    return Some(frame);
                }
            }
            None
        })
        .await
        .expect("the server neither sent the frame waited for nor closed the connection")
    }

    /// Whether the server closes the connection (EOF or reset, after any frames) within
    /// `within`; frames are read and dropped, PINGs are not answered.
    pub async fn closed_within(&mut self, within: Duration) -> bool {
        tokio::time::timeout(within, async {
            while let Ok(Some(_)) = self.read().await {}
        })
        .await
        .is_ok()
    }
}

/// An HPACK "literal header field without indexing, new name" (no Huffman coding).
fn literal(block: &mut Vec<u8>, name: &str, value: &str) {
    block.push(0);
    integer(block, name.len(), 7);
    block.extend_from_slice(name.as_bytes());
    integer(block, value.len(), 7);
    block.extend_from_slice(value.as_bytes());
}

/// An HPACK integer with an `n`-bit prefix, in a byte whose other bits are 0.
fn integer(block: &mut Vec<u8>, value: usize, n: u32) {
    let max = (1usize << n) - 1;
    if value < max {
        block.push(value as u8);
        return;
    }
    block.push(max as u8);
    let mut rest = value - max;
    while rest >= 128 {
        block.push((rest % 128 + 128) as u8);
        rest /= 128;
    }
    block.push(rest as u8);
}
