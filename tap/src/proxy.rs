//! The proxy's side: the `Observe` request for a client's filters, the mesh-TLS connection to a
//! pod's tap port, and the proxy's events in the shape clients read.

use linkerd2_proxy_api::{
    http_types::{HttpMethod, Scheme, http_method, scheme},
    tap::{
        ObserveRequest, TapEvent as ProtoEvent,
        eos::End,
        observe_request::{
            Match,
            r#match::{self, Label, Seq, http::StringMatch, http::string_match},
        },
        tap_client::TapClient,
        tap_event::{self, ProxyDirection},
    },
};
use oxlink_tls::ClientConfig;
use oxlink_viz::tap::{
    Direction, HttpEvent, Peer, RequestInit, ResponseEnd, ResponseInit, StreamId, TapEvent,
    TapRequest,
};
use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};
use tokio_rustls::rustls::pki_types::ServerName;
use tonic::transport::{Channel, Endpoint};

/// How long connecting to a proxy (TCP, TLS, HTTP/2) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A tap to a proxy failed.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("connecting to its tap port: {0}")]
    Connect(std::io::Error),
    #[error("mesh TLS with its proxy: {0}")]
    Tls(std::io::Error),
    #[error("{0:?} is not a mesh identity")]
    ServerName(String),
    #[error("HTTP/2 with its proxy: {0}")]
    Channel(tonic::transport::Error),
    #[error("Observe: {}: {}", .0.code(), .0.message())]
    Observe(Box<tonic::Status>),
    #[error("its proxy did not answer within {CONNECT_TIMEOUT:?}")]
    Timeout,
}

/// The `Observe` request for a client's filters (Linkerd's tap API builds the same match):
/// everything given must hold. The proxy requires a match: without filters it is an empty
/// `all`, which every request satisfies.
pub fn observe_request(req: &TapRequest, limit: u32) -> ObserveRequest {
    let http = |m: r#match::http::Match| Match {
        r#match: Some(r#match::Match::Http(r#match::Http { r#match: Some(m) })),
    };
    let label = |key: &str, value: &str| Match {
        r#match: Some(r#match::Match::DestinationLabel(Label {
            key: key.to_string(),
            value: value.to_string(),
        })),
    };
    let mut all = Vec::new();
    if let Some(to) = &req.to {
        if let Some(name) = &to.name {
            all.push(label(to.kind.label(), name));
        }
        if to.kind != oxlink_viz::Kind::Namespace {
            all.push(label("namespace", &req.to_namespace));
        }
    }
    if let Some(path) = &req.path {
        all.push(http(r#match::http::Match::Path(StringMatch {
            r#match: Some(string_match::Match::Prefix(path.clone())),
        })));
    }
    if let Some(method) = &req.method {
        let method = http::Method::from_bytes(method.as_bytes()).map_or_else(
            |_| HttpMethod {
                r#type: Some(http_method::Type::Unregistered(method.clone())),
            },
            HttpMethod::from,
        );
        all.push(http(r#match::http::Match::Method(method)));
    }
    if let Some(authority) = &req.authority {
        all.push(http(r#match::http::Match::Authority(StringMatch {
            r#match: Some(string_match::Match::Exact(authority.clone())),
        })));
    }
    if let Some(s) = &req.scheme {
        all.push(http(r#match::http::Match::Scheme(Scheme::from(s.as_str()))));
    }
    ObserveRequest {
        limit,
        r#match: Some(Match {
            r#match: Some(r#match::Match::All(Seq { matches: all })),
        }),
        extract: None,
    }
}

/// Connects to the proxy at `ip`'s tap port over mesh TLS, presenting our identity (`tls`'s
/// client certificate) and expecting the proxy's (`identity`).
pub async fn connect(
    ip: IpAddr,
    port: u16,
    identity: &str,
    tls: Arc<ClientConfig>,
) -> Result<TapClient<Channel>, ProxyError> {
    let name = rustls_name(identity)?;
    let connect = async move {
        let tcp = tokio::net::TcpStream::connect(SocketAddr::new(ip, port))
            .await
            .map_err(ProxyError::Connect)?;
        let _ = tcp.set_nodelay(true);
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(ProxyError::Tls)?;
        let stream = parking_lot::Mutex::new(Some(stream));
        // One connection per tap: the channel gets the stream we made and cannot reconnect.
        let connector = tower::service_fn(move |_: http::Uri| {
            let stream = stream.lock().take();
            async move {
                stream
                    .map(hyper_util::rt::TokioIo::new)
                    .ok_or_else(|| std::io::Error::other("the tap connection is gone"))
            }
        });
        let channel = Endpoint::from_static("http://tap.proxy")
            .connect_with_connector(connector)
            .await
            .map_err(ProxyError::Channel)?;
        Ok(TapClient::new(channel))
    };
    tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| ProxyError::Timeout)?
}

fn rustls_name(identity: &str) -> Result<ServerName<'static>, ProxyError> {
    ServerName::try_from(identity.to_string())
        .map_err(|_| ProxyError::ServerName(identity.to_string()))
}

fn micros(d: Option<prost_types::Duration>) -> u64 {
    d.map_or(0, |d| {
        u64::try_from(d.seconds).unwrap_or(0) * 1_000_000
            + u64::try_from(d.nanos).unwrap_or(0) / 1_000
    })
}

fn peer(
    addr: Option<linkerd2_proxy_api::net::TcpAddress>,
    meta: Option<tap_event::EndpointMeta>,
) -> Peer {
    let (ip, port) = addr.map_or((String::new(), 0), |a| {
        let ip =
            a.ip.and_then(|ip| IpAddr::try_from(ip).ok())
                .map_or_else(String::new, |ip| ip.to_string());
        (ip, a.port)
    });
    Peer {
        ip,
        port,
        metadata: meta
            .map(|m| m.labels.into_iter().collect())
            .unwrap_or_default(),
    }
}

fn id(id: Option<tap_event::http::StreamId>) -> StreamId {
    id.map_or_else(StreamId::default, |i| StreamId {
        base: i.base,
        stream: i.stream,
    })
}

fn method(m: Option<HttpMethod>) -> String {
    match m.and_then(|m| m.r#type) {
        Some(http_method::Type::Unregistered(s)) => s,
        Some(t @ http_method::Type::Registered(_)) => http::Method::try_from(t)
            .map(|m| m.to_string())
            .unwrap_or_default(),
        None => String::new(),
    }
}

fn scheme_of(s: Option<Scheme>) -> String {
    match s.and_then(|s| s.r#type) {
        Some(scheme::Type::Unregistered(s)) => s,
        Some(scheme::Type::Registered(r)) => match scheme::Registered::try_from(r) {
            Ok(scheme::Registered::Http) => "http".into(),
            Ok(scheme::Registered::Https) => "https".into(),
            Err(_) => String::new(),
        },
        None => String::new(),
    }
}

/// The proxy's event in the shape clients read; `None` for an event without an HTTP part.
pub fn event(ev: ProtoEvent) -> Option<TapEvent> {
    use tap_event::http::Event as E;
    let tap_event::Event::Http(http) = ev.event?;
    let http = match http.event? {
        E::RequestInit(r) => HttpEvent::RequestInitEvent(RequestInit {
            id: id(r.id),
            method: method(r.method),
            scheme: scheme_of(r.scheme),
            authority: r.authority,
            path: r.path,
        }),
        E::ResponseInit(r) => HttpEvent::ResponseInitEvent(ResponseInit {
            id: id(r.id),
            since_request_init_us: micros(r.since_request_init),
            http_status: r.http_status,
        }),
        E::ResponseEnd(r) => {
            let (grpc, reset) = match r.eos.and_then(|e| e.end) {
                Some(End::GrpcStatusCode(c)) => (Some(c), None),
                Some(End::ResetErrorCode(c)) => (None, Some(c)),
                None => (None, None),
            };
            HttpEvent::ResponseEndEvent(ResponseEnd {
                id: id(r.id),
                since_request_init_us: micros(r.since_request_init),
                since_response_init_us: micros(r.since_response_init),
                response_bytes: r.response_bytes,
                grpc_status_code: grpc,
                reset_error_code: reset,
            })
        }
    };
    let direction = match ProxyDirection::try_from(ev.proxy_direction) {
        Ok(ProxyDirection::Inbound) => Direction::Inbound,
        Ok(ProxyDirection::Outbound) => Direction::Outbound,
        _ => Direction::Unknown,
    };
    Some(TapEvent {
        source: peer(ev.source, ev.source_meta),
        destination: peer(ev.destination, ev.destination_meta),
        route_meta: ev
            .route_meta
            .map(|m| m.labels.into_iter().collect::<BTreeMap<_, _>>())
            .unwrap_or_default(),
        proxy_direction: direction,
        http,
    })
}

#[cfg(test)]
mod tests;
