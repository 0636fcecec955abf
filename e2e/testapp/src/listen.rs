//! Listening sockets and their accept loops, shared by the HTTP and TCP servers.

use std::{future::Future, io, net::SocketAddr, time::Duration};
use tokio::{
    net::{TcpListener, TcpStream},
    task::{JoinHandle, JoinSet},
};

/// Binds a listener, naming the address in the error.
pub async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("bind {addr}: {e}")))
}

/// A running accept loop. Dropping it stops accepting and closes every open connection.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Server {
    /// Accepts connections on `listener`, each served by `conn` on a task of its own.
    pub fn spawn<F, Fut>(listener: TcpListener, conn: F) -> io::Result<Self>
    where
        F: Fn(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            // Held here so that aborting the loop drops (and closes) the connections too.
            let mut conns = JoinSet::new();
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let _ = stream.set_nodelay(true);
                        while conns.try_join_next().is_some() {}
                        conns.spawn(conn(stream));
                    }
                    // Out of file descriptors and the like: don't spin.
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        Ok(Self { addr, task })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}
