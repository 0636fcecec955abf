//! `todobackend`: the todo list in memory, with a round trip to `postgres` on every call to
//! `/todos` to prove the database path.

use super::{STRESS_DELAY, form};
use crate::{
    httpd::{self, Handler},
    listen::Server,
};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Bytes;
use parking_lot::Mutex;
use std::{
    io,
    net::{IpAddr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

/// How long the database round trip may take.
const DB_TIMEOUT: Duration = Duration::from_secs(5);

/// `todobackend`'s flags.
#[derive(clap::Args, Clone, Debug)]
pub struct BackendArgs {
    /// The HTTP port.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// The database's host.
    #[arg(long, env = "POSTGRES_HOST", default_value = "postgresdb")]
    pub postgres_host: String,
    /// The database's port.
    #[arg(long, default_value_t = 5432)]
    pub postgres_port: u16,
}

/// The backend's state.
#[derive(Debug)]
pub struct Backend {
    pod: String,
    postgres_host: String,
    postgres_port: u16,
    todos: Mutex<Vec<String>>,
    probes: AtomicU64,
}

// === impl BackendArgs ===

impl BackendArgs {
    /// Serves until the process ends.
    pub async fn run(self, ip: IpAddr, pod: String) -> anyhow::Result<()> {
        let Self {
            port,
            postgres_host,
            postgres_port,
        } = self;
        let backend = Backend::new(pod, postgres_host, postgres_port);
        let server = backend.start(SocketAddr::new(ip, port)).await?;
        eprintln!(
            "oxlink-testapp todobackend: pod {} serving GET|POST /todos and GET /stress on {} \
             (HTTP/1.1 and h2c), database {}:{}",
            backend.pod,
            server.addr(),
            backend.postgres_host,
            backend.postgres_port,
        );
        std::future::pending().await
    }
}

// === impl Backend ===

impl Backend {
    /// A backend with no todos that uses the database at `postgres_host:postgres_port`.
    pub fn new(pod: String, postgres_host: String, postgres_port: u16) -> Arc<Self> {
        Arc::new(Self {
            pod,
            postgres_host,
            postgres_port,
            todos: Mutex::default(),
            probes: AtomicU64::new(0),
        })
    }

    /// Serves on `addr`.
    pub async fn start(self: &Arc<Self>, addr: SocketAddr) -> io::Result<Server> {
        httpd::serve(addr, &self.pod, self.clone()).await
    }

    /// Writes a line to the database and reads it back.
    async fn probe_database(&self) -> Result<(), String> {
        let target = format!("{}:{}", self.postgres_host, self.postgres_port);
        let n = self.probes.fetch_add(1, Ordering::Relaxed);
        let line = format!("todobackend {} probe {n}\n", self.pod);
        let round_trip = async {
            let stream = TcpStream::connect(&target).await?;
            let (read, mut write) = stream.into_split();
            write.write_all(line.as_bytes()).await?;
            let mut echo = String::new();
            BufReader::new(read).read_line(&mut echo).await?;
            match echo == line {
                true => Ok(()),
                false => Err(io::Error::other(format!("echoed {echo:?}, not {line:?}"))),
            }
        };
        match tokio::time::timeout(DB_TIMEOUT, round_trip).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("database {target}: {e}")),
            Err(_) => Err(format!("database {target}: no echo within {DB_TIMEOUT:?}")),
        }
    }
}

impl Handler for Backend {
    async fn handle(&self, req: Request<Bytes>) -> Response<httpd::Body> {
        let path = req.uri().path();
        let method = req.method();
        if path == "/healthz" {
            return httpd::text(StatusCode::OK, "ok");
        }
        if path == "/stress" && method == Method::GET {
            tokio::time::sleep(STRESS_DELAY).await;
            return httpd::text(StatusCode::OK, "stressed\n");
        }
        // `POST /todos` with the text as body, or the original app's `POST /todos/{text}`.
        let todo = match (method, path.strip_prefix("/todos")) {
            (&Method::GET, Some("" | "/")) => None,
            (&Method::POST, Some("" | "/")) => Some(String::from_utf8_lossy(req.body()).into()),
            (&Method::POST, Some(rest)) if rest.starts_with('/') => {
                Some(form::percent_decode(&rest[1..], false))
            }
            _ => return httpd::text(StatusCode::NOT_FOUND, format!("no route {method} {path}\n")),
        };
        if let Err(e) = self.probe_database().await {
            return httpd::text(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n"));
        }
        match todo.map(|t| t.trim().to_string()) {
            None => httpd::json(StatusCode::OK, &*self.todos.lock()),
            Some(t) if t.is_empty() => httpd::text(StatusCode::BAD_REQUEST, "empty todo\n"),
            Some(t) => {
                self.todos.lock().push(t.clone());
                httpd::json(StatusCode::CREATED, &t)
            }
        }
    }
}
