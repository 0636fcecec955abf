//! `todoui`: an HTML page of the backend's todos, and a form that adds one.

use super::{STRESS_DELAY, form};
use crate::{
    args,
    client::{self, Client},
    httpd::{self, Handler},
    listen::Server,
};
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use http_body_util::Full;
use hyper::body::Bytes;
use std::{
    fmt::Write,
    io,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

/// `todoui`'s flags.
#[derive(clap::Args, Clone, Debug)]
pub struct UiArgs {
    /// The HTTP port.
    #[arg(long, default_value_t = 8090)]
    pub port: u16,
    /// The backend's host.
    #[arg(long, env = "BACKEND_HOST", default_value = "todobackend")]
    pub backend_host: String,
    /// The backend's port.
    #[arg(long, default_value_t = 8080)]
    pub backend_port: u16,
    /// How long a call to the backend may take.
    #[arg(long, default_value = "10s", value_parser = args::duration)]
    pub backend_timeout: Duration,
}

/// The UI's state.
#[derive(Debug)]
pub struct Ui {
    pod: String,
    todos_url: Uri,
    client: Client,
    timeout: Duration,
}

// === impl UiArgs ===

impl UiArgs {
    /// Serves until the process ends.
    pub async fn run(self, ip: IpAddr, pod: String) -> anyhow::Result<()> {
        let Self {
            port,
            backend_host,
            backend_port,
            backend_timeout,
        } = self;
        let ui = Ui::new(pod, &backend_host, backend_port, backend_timeout)
            .map_err(anyhow::Error::msg)?;
        let server = ui.start(SocketAddr::new(ip, port)).await?;
        eprintln!(
            "oxlink-testapp todoui: pod {} serving GET|POST / and GET /stress on {} \
             (HTTP/1.1 and h2c), backend {}",
            ui.pod,
            server.addr(),
            ui.todos_url,
        );
        std::future::pending().await
    }
}

// === impl Ui ===

impl Ui {
    /// A UI in front of the backend at `backend_host:backend_port`.
    pub fn new(
        pod: String,
        backend_host: &str,
        backend_port: u16,
        timeout: Duration,
    ) -> Result<Arc<Self>, String> {
        let url = format!("http://{backend_host}:{backend_port}/todos");
        let todos_url = args::http_url(&url)?;
        Ok(Arc::new(Self {
            pod,
            todos_url,
            client: client::new(false),
            timeout,
        }))
    }

    /// Serves on `addr`.
    pub async fn start(self: &Arc<Self>, addr: SocketAddr) -> io::Result<Server> {
        httpd::serve(addr, &self.pod, self.clone()).await
    }

    /// Calls the backend, and answers its body if it succeeds.
    async fn backend(&self, method: Method, body: String) -> Result<Bytes, String> {
        let mut req = Request::new(Full::new(Bytes::from(body)));
        *req.method_mut() = method;
        *req.uri_mut() = self.todos_url.clone();
        let url = &self.todos_url;
        match client::send(&self.client, req, self.timeout).await {
            Ok(rsp) if rsp.status.is_success() => Ok(rsp.body),
            Ok(rsp) => Err(format!(
                "backend {url} answered {}: {}",
                rsp.status,
                String::from_utf8_lossy(&rsp.body).trim()
            )),
            Err(e) => Err(format!("backend {url}: {e}")),
        }
    }

    async fn list(&self) -> Response<httpd::Body> {
        let todos = match self.backend(Method::GET, String::new()).await {
            Ok(body) => serde_json::from_slice::<Vec<String>>(&body)
                .map_err(|e| format!("backend {} sent no todo list: {e}", self.todos_url)),
            Err(e) => Err(e),
        };
        match todos {
            Ok(todos) => httpd::html(StatusCode::OK, page(&self.pod, &todos)),
            Err(e) => httpd::text(StatusCode::BAD_GATEWAY, format!("{e}\n")),
        }
    }

    async fn add(&self, body: &[u8]) -> Response<httpd::Body> {
        let Some(todo) = form::field(&String::from_utf8_lossy(body), "toDo") else {
            return httpd::text(StatusCode::BAD_REQUEST, "no form field toDo\n");
        };
        match self.backend(Method::POST, todo).await {
            Ok(_) => {
                let mut rsp = httpd::text(StatusCode::FOUND, "");
                rsp.headers_mut()
                    .insert(header::LOCATION, HeaderValue::from_static("/"));
                rsp
            }
            Err(e) => httpd::text(StatusCode::BAD_GATEWAY, format!("{e}\n")),
        }
    }
}

impl Handler for Ui {
    async fn handle(&self, req: Request<Bytes>) -> Response<httpd::Body> {
        match (req.method(), req.uri().path()) {
            (_, "/healthz") => httpd::text(StatusCode::OK, "ok"),
            (&Method::GET, "/") => self.list().await,
            (&Method::POST, "/") => self.add(req.body()).await,
            (&Method::GET, "/stress") => {
                tokio::time::sleep(STRESS_DELAY).await;
                httpd::text(StatusCode::OK, "stressed\n")
            }
            (method, path) => {
                httpd::text(StatusCode::NOT_FOUND, format!("no route {method} {path}\n"))
            }
        }
    }
}

/// The todo page.
fn page(pod: &str, todos: &[String]) -> String {
    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><title>ToDo</title></head><body>\n\
         <h1>ToDo list</h1>\n<p>served by {}</p>\n<ul>\n",
        form::escape(pod)
    );
    for todo in todos {
        let _ = writeln!(html, "<li>{}</li>", form::escape(todo));
    }
    html.push_str(
        "</ul>\n<form method=\"post\" action=\"/\"><input name=\"toDo\">\
         <button type=\"submit\">Add</button></form>\n</body></html>\n",
    );
    html
}
