//! `postgres`: plays the database as opaque TCP, a line echo server.

use crate::listen::{self, Server};
use std::{
    io,
    net::{IpAddr, SocketAddr},
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// `postgres`'s flags.
#[derive(clap::Args, Clone, Debug)]
pub struct PostgresArgs {
    /// The TCP port to echo lines on.
    #[arg(long, default_value_t = 5432)]
    pub port: u16,
}

impl PostgresArgs {
    /// Serves until the process ends.
    pub async fn run(self, ip: IpAddr) -> anyhow::Result<()> {
        let Self { port } = self;
        let server = start(SocketAddr::new(ip, port)).await?;
        eprintln!(
            "oxlink-testapp postgres: echoing TCP lines on {} (postgres played as opaque TCP)",
            server.addr()
        );
        std::future::pending().await
    }
}

/// Echoes every line received on `addr` back to its sender.
pub async fn start(addr: SocketAddr) -> io::Result<Server> {
    let listener = listen::bind(addr).await?;
    Server::spawn(listener, |stream| async move {
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read);
        let mut line = Vec::new();
        loop {
            line.clear();
            match read.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if write.write_all(&line).await.is_err() {
                        return;
                    }
                }
            }
        }
    })
}
