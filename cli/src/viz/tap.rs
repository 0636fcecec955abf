//! `viz tap` and `viz top`: the tap server's event stream, read through the API server's
//! Service proxy (`services/tap:8088/proxy/tap`), printed as Linkerd's lines or aggregated into
//! Linkerd's live table.

use super::NAMESPACE;
use crate::client::ClusterArgs;
use anyhow::{Context, Result, bail};
use futures::{AsyncBufReadExt, StreamExt};
use oxlink_crds::names::control_plane::{TAP_PORT, TAP_SERVICE_ACCOUNT};
use oxlink_viz::{
    Kind, Resource,
    tap::{DEFAULT_MAX_RPS, StreamLine, StreamStatus, TapEvent, TapRequest, render_line},
    top::Top,
};
use std::{
    io::{IsTerminal, Write},
    time::Duration,
};

/// The namespace the commands use without `-n`.
const DEFAULT_NAMESPACE: &str = "default";
/// How often `top` redraws its table.
const REFRESH: Duration = Duration::from_secs(1);
/// How often `top` prints its table when its output is not a terminal.
const PRINT_EVERY: Duration = Duration::from_secs(2);

/// The filters `tap` and `top` share (Linkerd's flags).
#[derive(Debug, clap::Args)]
pub(crate) struct Filters {
    /// The resource to tap: TYPE/NAME or TYPE NAME (deploy/web, po/web-1, ns/todo, svc/web), or
    /// only TYPE for every one of that type in the namespace.
    #[arg(required = true, num_args = 1..=2, value_name = "RESOURCE")]
    resource: Vec<String>,
    /// Namespace of the specified resource.
    #[arg(short = 'n', long, default_value = DEFAULT_NAMESPACE)]
    namespace: String,
    /// Display requests to this resource.
    #[arg(long)]
    to: Option<String>,
    /// Sets the namespace used to lookup the "--to" resource; by default the current "--namespace" is used.
    #[arg(long)]
    to_namespace: Option<String>,
    /// Display requests with paths that start with this prefix.
    #[arg(long)]
    path: Option<String>,
    /// Display requests with this HTTP method.
    #[arg(long)]
    method: Option<String>,
    /// Display requests with this :authority.
    #[arg(long)]
    authority: Option<String>,
    /// Display requests with this scheme.
    #[arg(long)]
    scheme: Option<String>,
    /// Maximum requests per second to tap.
    #[arg(long, default_value_t = DEFAULT_MAX_RPS)]
    max_rps: f64,
}

#[derive(Debug, clap::Args)]
pub(crate) struct TapArgs {
    #[command(flatten)]
    filters: Filters,
    /// Output format. One of: "wide", "json".
    #[arg(short = 'o', long, default_value = "", hide_default_value = true)]
    output: String,
}

#[derive(Debug, clap::Args)]
pub(crate) struct TopArgs {
    #[command(flatten)]
    filters: Filters,
}

/// How `tap` prints each event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TapOutput {
    Line,
    Wide,
    Json,
}

fn tap_output(s: &str) -> Result<TapOutput> {
    match s {
        "" => Ok(TapOutput::Line),
        "wide" => Ok(TapOutput::Wide),
        "json" => Ok(TapOutput::Json),
        other => bail!("output format \"{other}\" not recognized: expected \"wide\" or \"json\""),
    }
}

impl Filters {
    /// The request for the tap server, checked before anything is sent.
    pub(crate) fn request(&self) -> Result<TapRequest> {
        let mut resources = Resource::parse_args(&self.resource)?;
        if resources.len() != 1 {
            bail!("please specify one resource to tap: TYPE/NAME or TYPE NAME");
        }
        let mut resource = resources.remove(0);
        resource.namespace = Some(self.namespace.clone());
        let mut req = TapRequest::new(resource, &self.namespace);
        req.to_namespace = self
            .to_namespace
            .clone()
            .unwrap_or_else(|| self.namespace.clone());
        req.to = self
            .to
            .as_deref()
            .map(|t| {
                Resource::parse(t).map(|mut r| {
                    r.namespace = Some(req.to_namespace.clone());
                    r
                })
            })
            .transpose()?;
        req.path = self.path.clone();
        req.method = self.method.clone();
        req.authority = self.authority.clone();
        req.scheme = self.scheme.clone();
        req.max_rps = self.max_rps;
        // The server holds its own limit; here only what can never be right.
        req.validate(f64::MAX)?;
        Ok(req)
    }
}

/// Reads the tap server's stream for `req`, calling `on_event` for each event; the server's
/// words about the stream go to stderr. Returns when the stream ends or `on_event` says stop.
async fn stream(
    cluster: &ClusterArgs,
    req: &TapRequest,
    mut on_event: impl FnMut(TapEvent) -> Result<bool>,
) -> Result<()> {
    let client = cluster.client().await?;
    let path = format!(
        "/api/v1/namespaces/{NAMESPACE}/services/{TAP_SERVICE_ACCOUNT}:{TAP_PORT}/proxy/tap?{}",
        req.to_query()
    );
    let request = http::Request::get(&path)
        .body(Vec::new())
        .context("building the tap request")?;
    let body = match client.request_stream(request).await {
        Ok(body) => body,
        Err(kube::Error::Api(e)) => bail!("{}", api_error(&e)),
        Err(e) => return Err(e).context("calling the tap server"),
    };
    let mut lines = body.lines();
    while let Some(line) = lines.next().await {
        let line = line.context("reading the tap stream")?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<StreamLine>(&line) {
            Ok(StreamLine::Event(event)) => {
                if !on_event(*event)? {
                    return Ok(());
                }
            }
            Ok(StreamLine::Status(status)) => report(&status),
            Err(e) => bail!("the tap server sent a line this CLI cannot read ({e}): {line}"),
        }
    }
    Ok(())
}

fn report(status: &StreamStatus) {
    if status.dropped > 0 {
        eprintln!(
            "tap: {} events dropped (this client read too slowly)",
            status.dropped
        );
    }
    if let Some(error) = &status.error {
        eprintln!("tap: {error}");
    }
}

/// An error answer: the tap server's own words (plain text), or the API server's.
pub(crate) fn api_error(e: &kube::core::Status) -> String {
    // Not a Kubernetes Status: the body is the tap server's plain-text message.
    let from_tap = e.reason == "Failed to parse error data";
    match e.code {
        _ if from_tap => e.message.trim().to_string(),
        404 | 503 => format!(
            "the tap server of the linkerd-viz extension is not reachable ({}); is it installed \
             and running? Try `oxlink viz check`",
            e.message
        ),
        _ => format!("HTTP error, status Code [{}] ({})", e.code, e.message),
    }
}

impl TapArgs {
    pub(crate) fn run(self, cluster: &ClusterArgs, out: &mut impl Write) -> Result<()> {
        let output = tap_output(&self.output)?;
        let req = self.filters.request()?;
        let wide = (output == TapOutput::Wide).then_some(req.resource.kind);
        super::cluster::block_on(stream(cluster, &req, |event| {
            let text = match output {
                TapOutput::Json => serde_json::to_string_pretty(&event)?,
                _ => render_line(&event, wide),
            };
            match writeln!(out, "{text}").and_then(|()| out.flush()) {
                Ok(()) => Ok(true),
                // The reader went away (`| head`): stop quietly.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
                Err(e) => Err(e.into()),
            }
        }))
    }
}

impl TopArgs {
    pub(crate) fn run(self, cluster: &ClusterArgs, out: &mut impl Write) -> Result<()> {
        let req = self.filters.request()?;
        if req.resource.kind == Kind::Authority {
            bail!("a resource name is required to tap an authority");
        }
        let interactive = std::io::stdout().is_terminal();
        let keys = if interactive {
            Some(terminal::Keys::start()?)
        } else {
            None
        };
        let mut top = Top::default();
        let mut last = std::time::Instant::now();
        let mut printed = String::new();
        let every = if interactive { REFRESH } else { PRINT_EVERY };
        let result = super::cluster::block_on(async {
            let quit = async {
                match &keys {
                    Some(k) => k.quit().await,
                    None => std::future::pending().await,
                }
            };
            let events = stream(cluster, &req, |event| {
                top.observe(&event);
                if last.elapsed() >= every {
                    last = std::time::Instant::now();
                    draw(out, &top, interactive, &mut printed)?;
                }
                Ok(true)
            });
            tokio::select! {
                r = events => r,
                () = quit => Ok(()),
            }
        });
        drop(keys);
        draw(out, &top, interactive, &mut printed)?;
        result
    }
}

/// Redraws the table (interactive) or prints it when it changed (otherwise).
fn draw(out: &mut impl Write, top: &Top, interactive: bool, printed: &mut String) -> Result<()> {
    let table = top.render();
    if interactive {
        // Raw mode: lines end in CR LF.
        let text = format!("(press q to quit)\n\n{table}").replace('\n', "\r\n");
        write!(out, "\x1b[H\x1b[2J{text}")?;
    } else if table != *printed {
        writeln!(out, "{table}")?;
        *printed = table;
    }
    out.flush()?;
    Ok(())
}

/// The terminal of an interactive `top`: keys read raw, restored on drop.
mod terminal {
    use anyhow::{Context, Result};
    use nix::sys::termios::{self, LocalFlags, SetArg, Termios};
    use tokio::sync::watch;

    pub(super) struct Keys {
        saved: Option<Termios>,
        quit: watch::Receiver<bool>,
    }

    impl Keys {
        /// Puts stdin into raw mode (when it is a terminal) and watches for `q` or Ctrl-C.
        pub(super) fn start() -> Result<Self> {
            let stdin = std::io::stdin();
            let saved = termios::tcgetattr(&stdin).ok();
            if let Some(saved) = &saved {
                let mut raw = saved.clone();
                raw.local_flags
                    .remove(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG);
                termios::tcsetattr(&stdin, SetArg::TCSANOW, &raw)
                    .context("putting the terminal into raw mode")?;
            }
            let (tx, quit) = watch::channel(false);
            std::thread::spawn(move || {
                use std::io::Read;
                let mut byte = [0u8; 1];
                let mut stdin = std::io::stdin();
                while let Ok(1) = stdin.read(&mut byte) {
                    if matches!(byte[0], b'q' | b'Q' | 3) {
                        let _ = tx.send(true);
                        return;
                    }
                }
            });
            Ok(Self { saved, quit })
        }

        pub(super) async fn quit(&self) {
            let mut rx = self.quit.clone();
            let _ = rx.wait_for(|q| *q).await;
        }
    }

    impl Drop for Keys {
        fn drop(&mut self) {
            if let Some(saved) = &self.saved {
                let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSANOW, saved);
            }
        }
    }
}

#[cfg(test)]
mod tests;
