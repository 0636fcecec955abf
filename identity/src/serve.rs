//! Wiring: the gRPC server (native TLS or plaintext), the server's own certificate, the issuer
//! watch and the admin server, started together.

use crate::{
    certify::{Certifier, IssuerState},
    events::Events,
    grpc::IdentityGrpc,
    index::{IssuerWatch, SecretError, load_trust_roots},
    metrics::Metrics,
    name::{IdentityDomain, NameError},
    token::{
        ApiServerKeys, BoundObjects, IssuerKeys, LocalTokens, TokenReviewer, Tokens, ValidateToken,
    },
};
use linkerd2_proxy_api::identity::identity_server::IdentityServer;
use oxlink_admin::{
    Admin, Readiness, ScrapeHook, Tasks,
    serve::{Limits, Protocol, ServerMetrics, accept, serve_http},
    serve_admin,
};
use oxlink_crds::names::control_plane::IDENTITY_SERVICE_ACCOUNT;
use oxlink_tls::{
    IssuancePolicy, KeyPair, PrivateKeyDer, ServingCert, ServingError, server_config,
};
use prometheus_client::registry::Registry;
use std::{
    future::Future,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, SystemTime},
};
use tokio::{net::TcpListener, task::JoinHandle};

/// What one identity server needs to know.
#[derive(Clone, Debug)]
pub struct Config {
    /// The control-plane namespace: where the issuer Secret and trust roots live, and the
    /// namespace part of every identity.
    pub namespace: String,
    pub trust_domain: String,
    /// How issued leaves are dated.
    pub issuance: IssuancePolicy,
    /// Serve h2c instead of TLS (behind a proxy sidecar).
    pub plaintext: bool,
    /// The gRPC listener's limits.
    pub limits: Limits,
    /// Check every token with a TokenReview, as Linkerd does, instead of verifying tokens in
    /// process against the service-account issuer's keys and the bound objects.
    pub token_review_only: bool,
    /// Certify calls answered at once; more wait their turn.
    pub max_concurrent_certify: usize,
}

/// How often the service-account issuer keys are read even when no token names a new key.
const KEYS_REFRESH: Duration = Duration::from_secs(10 * 60);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(transparent)]
    TrustRoots(#[from] SecretError),
    #[error(transparent)]
    Tls(#[from] ServingError),
    #[error("listener address: {0}")]
    Addr(std::io::Error),
}

/// A started identity server. Dropping it stops every task.
pub struct Running {
    /// The identity the server presents over TLS.
    pub identity: String,
    pub grpc_addr: SocketAddr,
    pub admin_addr: Option<SocketAddr>,
    pub ready: Readiness,
    pub metrics: Arc<Metrics>,
    pub issuer: IssuerState,
    /// The in-process verifier's state (None with `token_review_only`).
    pub local_tokens: Option<LocalState>,
    tasks: Tasks,
}

/// What local token verification has loaded.
#[derive(Clone)]
pub struct LocalState {
    pub keys: Arc<IssuerKeys<ApiServerKeys>>,
    pub bound: Arc<BoundObjects>,
}

impl LocalState {
    /// The issuer keys are loaded and the bound-object watches have listed once.
    pub fn synced(&self) -> bool {
        self.keys.current().is_some() && self.bound.synced()
    }
}

/// Starts identity for the cluster `client` talks to: reads the trust roots, watches the issuer
/// Secret, keeps its own certificate, and serves gRPC on `grpc` and the admin endpoints on
/// `admin`.
pub async fn spawn(
    client: kube::Client,
    config: Config,
    grpc: TcpListener,
    admin: Option<TcpListener>,
) -> Result<Running, StartError> {
    let domain = IdentityDomain::new(&config.namespace, &config.trust_domain)?;
    let anchors = load_trust_roots(client.clone(), &config.namespace).await?;
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    oxlink_kube::metrics::register(&mut registry);
    let issuer = IssuerState::default();
    let ready = Readiness::default();
    let synced = ready.latch("the issuer Secret watch has not synced");
    require_issuer(&ready, &issuer);
    let events = Events::kube(client.clone(), &config.namespace);
    let mut tasks = Tasks::default();

    let watch = IssuerWatch::new(
        issuer.clone(),
        anchors.clone(),
        config.issuance,
        events.clone(),
    );
    let (ns, c) = (config.namespace.clone(), client.clone());
    tasks.background("the issuer Secret watch", async move {
        watch.run(c, &ns, synced).await
    });

    let identity = domain.service_account(IDENTITY_SERVICE_ACCOUNT, &config.namespace);
    let tls = if config.plaintext {
        None
    } else {
        let cert = Arc::new(ServingCert::default());
        tasks.adopt(
            "the serving certificate renewal",
            spawn_self_certificate(issuer.clone(), identity.clone(), cert.clone()),
        );
        Some(Arc::new(server_config(cert, Some(&anchors))?))
    };

    let reviewer = TokenReviewer::new(client.clone(), metrics.clone());
    let (tokens, local_tokens) = if config.token_review_only {
        (Tokens::Review(reviewer), None)
    } else {
        let keys = Arc::new(IssuerKeys::new(ApiServerKeys::new(client.clone())));
        let bound = Arc::new(BoundObjects::default());
        for (name, task) in bound.spawn(client.clone()) {
            tasks.adopt(name, task);
        }
        let k = keys.clone();
        tasks.background("the service-account issuer keys refresh", async move {
            loop {
                if let Err(error) = k.refresh().await {
                    tracing::warn!(%error, "reading the service-account issuer keys; tokens go to TokenReview");
                }
                tokio::time::sleep(KEYS_REFRESH).await;
            }
        });
        let local = LocalTokens::new(
            keys.clone(),
            bound.clone(),
            reviewer,
            config.issuance.clock_skew,
            metrics.clone(),
        );
        (Tokens::Local(local), Some(LocalState { keys, bound }))
    };
    let certifier = Arc::new(
        Certifier::new(issuer.clone(), tokens, domain, events, metrics.clone())
            .with_max_concurrent(config.max_concurrent_certify),
    );
    let grpc_addr = grpc.local_addr().map_err(StartError::Addr)?;
    let svc = IdentityGrpc::new(certifier).svc();
    let connections = ServerMetrics::register(&mut registry, "identity");
    let (limits, c, signal) = (config.limits, connections.clone(), tasks.signal());
    tasks.server("the gRPC server", async move {
        serve_grpc(grpc, svc, tls, &limits, c, signal).await
    });

    let admin_addr = match admin {
        Some(listener) => {
            let addr = listener.local_addr().map_err(StartError::Addr)?;
            let (m, i) = (metrics.clone(), issuer.clone());
            let refresh_expiry: ScrapeHook = Arc::new(move || {
                m.refresh_issuer_expiry(i.current().map(|i| i.credentials().not_after()))
            });
            let admin = Admin {
                registry: Arc::new(registry),
                ready: ready.clone(),
                live: tasks.liveness(),
                on_scrape: Some(refresh_expiry),
                connections: connections.for_server("admin"),
            };
            tasks.server(
                "the admin server",
                serve_admin(listener, admin, tasks.signal()),
            );
            Some(addr)
        }
        None => None,
    };
    tracing::info!(%grpc_addr, ?admin_addr, %identity, plaintext = config.plaintext, "identity started");
    Ok(Running {
        identity,
        grpc_addr,
        admin_addr,
        ready,
        metrics,
        issuer,
        local_tokens,
        tasks,
    })
}

/// Ready only while Certify could issue: an issuer is loaded and valid now (an expired one
/// makes identity not Ready, so that a rollout stops or traffic moves to a healthy replica).
pub(crate) fn require_issuer(ready: &Readiness, issuer: &IssuerState) {
    let issuer = issuer.clone();
    ready.require("no valid issuer is loaded", move || {
        issuer.can_issue(SystemTime::now())
    });
}

impl Running {
    /// Stops accepting, lets in-flight calls finish (up to 5 seconds), and stops the
    /// background tasks.
    pub async fn shutdown(self) {
        self.tasks.shutdown(Duration::from_secs(5)).await;
    }
}

#[cfg(test)]
mod tests;

/// Serves Identity on `listener`, over TLS with `tls` or as h2c without, within `limits`,
/// until `shutdown`.
pub async fn serve_grpc<V: ValidateToken>(
    listener: TcpListener,
    svc: IdentityServer<IdentityGrpc<V>>,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: &Limits,
    connections: ServerMetrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let incoming = accept(listener, limits, tls, connections.clone());
    let svc = hyper_util::service::TowerToHyperService::new(svc);
    serve_http(
        incoming,
        svc,
        Protocol::Http2,
        limits,
        connections,
        shutdown,
    )
    .await;
}

/// Keeps `cert` holding a certificate for `name` signed by the current issuer: re-signed when
/// the issuer changes and at 70% of each certificate's lifetime.
pub fn spawn_self_certificate(
    issuer: IssuerState,
    name: String,
    cert: Arc<ServingCert>,
) -> JoinHandle<()> {
    let mut rx = issuer.subscribe();
    tokio::spawn(async move {
        let key = match KeyPair::generate() {
            Ok(key) => key,
            Err(error) => {
                tracing::error!(%error, "generating the serving key failed");
                return;
            }
        };
        loop {
            let current = rx.borrow_and_update().clone();
            let mut renew = None;
            if let Some(issuer) = current {
                let now = SystemTime::now();
                match issuer.sign_for(&name, &key, now) {
                    Ok(leaf) => {
                        let lifetime = leaf.not_after.duration_since(now).unwrap_or_default();
                        let der = PrivateKeyDer::Pkcs8(key.serialize_der().into());
                        match cert.set(&leaf, der) {
                            Ok(()) => {
                                tracing::info!(%name, not_after = ?leaf.not_after, "serving certificate issued");
                                renew = Some(lifetime.mul_f64(0.7).max(Duration::from_secs(10)));
                            }
                            Err(error) => tracing::error!(%error, "serving certificate"),
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot sign the serving certificate");
                        renew = Some(Duration::from_secs(10));
                    }
                }
            }
            let sleep = async {
                match renew {
                    Some(d) => tokio::time::sleep(d).await,
                    None => futures::future::pending().await,
                }
            };
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return },
                _ = sleep => {}
            }
        }
    })
}
