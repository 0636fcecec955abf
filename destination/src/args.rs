//! Command-line flags of `oxlink-destination` and the process around the library.

use crate::{
    index::{
        Config,
        policy::{DefaultPolicy, Networks, PolicyConfig},
    },
    ports::PortSet,
    serve::{Transport, spawn_with},
};
use anyhow::Context;
use clap::Parser;
use oxlink_admin::{
    LogArgs,
    serve::{LimitArgs, Limits},
    shutdown_signal,
};
use oxlink_crds::{
    duration::parse_duration,
    names::{
        control_plane::{
            CLUSTER_DOMAIN, DEFAULT_CLUSTER_NETWORKS, DEFAULT_INBOUND_POLICY, DEFAULT_OPAQUE_PORTS,
            DEFAULT_PROBE_NETWORKS, DESTINATION_ADMIN_PORT, DESTINATION_GRPC_PORT,
            DESTINATION_SERVICE_ACCOUNT, IDENTITY_GRPC_PORT, IDENTITY_SERVICE,
            IDENTITY_SERVICE_ACCOUNT, NAMESPACE, POLICY_GRPC_PORT, TRUST_DOMAIN, TRUST_ROOTS_PATH,
        },
        identity::service_account_identity,
        proxy::IDENTITY_TOKEN_PATH,
    },
};
use oxlink_tls::{CertifyConfig, TrustBundle};
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

/// Service discovery and policy for linkerd2-proxy: answers Destination.Get and GetProfile,
/// InboundServerPolicies and OutboundPolicies.
#[derive(Debug, Parser)]
#[command(name = "oxlink-destination", version)]
pub struct Args {
    /// Address of the gRPC server.
    #[arg(long, env = "OXLINK_DESTINATION_ADDR", default_value_t = SocketAddr::from(([0, 0, 0, 0], DESTINATION_GRPC_PORT)))]
    addr: SocketAddr,

    /// Address of the policy gRPC server (InboundServerPolicies, OutboundPolicies).
    #[arg(long, env = "OXLINK_DESTINATION_POLICY_ADDR", default_value_t = SocketAddr::from(([0, 0, 0, 0], POLICY_GRPC_PORT)))]
    policy_addr: SocketAddr,

    /// Address of the admin server (`/live`, `/ready`, `/metrics`).
    #[arg(long, env = "OXLINK_DESTINATION_ADMIN_ADDR", default_value_t = SocketAddr::from(([0, 0, 0, 0], DESTINATION_ADMIN_PORT)))]
    admin_addr: SocketAddr,

    /// Namespace of the control plane; pods labelled with it get TLS identities.
    #[arg(long, env = "OXLINK_CONTROLLER_NAMESPACE", default_value = NAMESPACE)]
    controller_namespace: String,

    /// Trust domain of mesh identities.
    #[arg(long, env = "OXLINK_IDENTITY_TRUST_DOMAIN", default_value = TRUST_DOMAIN)]
    identity_trust_domain: String,

    /// The cluster's DNS domain.
    #[arg(long, env = "OXLINK_CLUSTER_DOMAIN", default_value = CLUSTER_DOMAIN)]
    cluster_domain: String,

    /// Opaque ports of pods and Services without an opaque-ports annotation.
    #[arg(long, env = "OXLINK_DEFAULT_OPAQUE_PORTS", default_value = DEFAULT_OPAQUE_PORTS)]
    default_opaque_ports: String,

    /// Hint HTTP/2 for meshed endpoints on non-opaque ports.
    #[arg(long, env = "OXLINK_ENABLE_H2_UPGRADE", default_value_t = true, action = clap::ArgAction::Set)]
    enable_h2_upgrade: bool,

    /// Inbound policy of ports no Server selects, unless a pod's
    /// `config.linkerd.io/default-inbound-policy` says otherwise.
    #[arg(long, env = "OXLINK_DEFAULT_INBOUND_POLICY", default_value = DEFAULT_INBOUND_POLICY)]
    default_policy: DefaultPolicy,

    /// Networks of the cluster, admitted by `cluster-*` policies (comma-separated CIDRs).
    #[arg(long, env = "OXLINK_CLUSTER_NETWORKS", default_value = DEFAULT_CLUSTER_NETWORKS)]
    cluster_networks: Networks,

    /// Networks whose HTTP probes default policies admit (comma-separated CIDRs).
    #[arg(long, env = "OXLINK_PROBE_NETWORKS", default_value = DEFAULT_PROBE_NETWORKS)]
    probe_networks: Networks,

    /// Serve h2c instead of mesh TLS (behind a proxy sidecar that terminates TLS).
    #[arg(long, env = "OXLINK_DESTINATION_PLAINTEXT")]
    plaintext: bool,

    /// Serve only clients that present a mesh certificate (meshed proxies do): every request of
    /// another client is answered UNAUTHENTICATED. Needs mesh TLS.
    #[arg(
        long,
        env = "OXLINK_DESTINATION_REQUIRE_CLIENT_IDENTITY",
        default_value_t = false,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true",
    )]
    require_client_identity: bool,

    /// identity's gRPC address, where our certificate comes from
    /// [default: linkerd-identity.<controller-namespace>.svc.<cluster-domain>:8080].
    #[arg(long, env = "OXLINK_DESTINATION_IDENTITY_ADDR")]
    identity_addr: Option<String>,

    /// Our ServiceAccount token (projected for the audience identity checks), read for every
    /// Certify.
    #[arg(long, env = "OXLINK_DESTINATION_IDENTITY_TOKEN_PATH", default_value = IDENTITY_TOKEN_PATH)]
    identity_token_path: PathBuf,

    /// The mesh's trust anchors (PEM), which identity's and our certificates chain to.
    #[arg(long, env = "OXLINK_DESTINATION_IDENTITY_TRUST_ANCHORS", default_value = TRUST_ROOTS_PATH)]
    identity_trust_anchors: PathBuf,

    #[command(flatten)]
    limits: LimitArgs,

    /// How long open streams get to finish on shutdown (Go duration syntax).
    #[arg(long, env = "OXLINK_SHUTDOWN_GRACE_PERIOD", default_value = "5s", value_parser = parse_duration)]
    shutdown_grace_period: Duration,

    #[command(flatten)]
    logs: LogArgs,
}

impl Args {
    /// Parses the command line and runs destination until SIGINT or SIGTERM.
    pub fn parse_and_run() -> ExitCode {
        match Self::parse().run() {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!("{error:#}");
                eprintln!("oxlink-destination: {error:#}");
                ExitCode::FAILURE
            }
        }
    }

    fn run(self) -> anyhow::Result<()> {
        let Self {
            addr,
            policy_addr,
            admin_addr,
            controller_namespace,
            identity_trust_domain,
            cluster_domain,
            default_opaque_ports,
            enable_h2_upgrade,
            default_policy,
            cluster_networks,
            probe_networks,
            plaintext,
            require_client_identity,
            identity_addr,
            identity_token_path,
            identity_trust_anchors,
            limits,
            shutdown_grace_period,
            logs,
        } = self;
        if plaintext && require_client_identity {
            anyhow::bail!(
                "--require-client-identity needs mesh TLS: it cannot be combined with \
                 --plaintext, where a sidecar terminates TLS"
            );
        }
        let limits = limits.limits(Limits::GRPC);
        logs.init().context("--log-level")?;
        let transport = if plaintext {
            Transport::Plaintext
        } else {
            let anchors = load_anchors(&identity_trust_anchors)?;
            let certify = certify_config(
                &controller_namespace,
                &identity_trust_domain,
                &cluster_domain,
                identity_addr,
                anchors,
                identity_token_path,
            );
            if require_client_identity {
                Transport::TlsRequiringClientIdentity(certify)
            } else {
                Transport::Tls(certify)
            }
        };
        let config = Config {
            controller_namespace,
            identity_trust_domain,
            cluster_domain,
            default_opaque_ports: PortSet::parse(&default_opaque_ports, |_| None),
            enable_h2_upgrade,
            policy: PolicyConfig {
                default_policy,
                cluster_networks: cluster_networks.0,
                probe_networks: probe_networks.0,
            },
        };
        oxlink_admin::runtime()
            .context("starting the runtime")?
            .block_on(async move {
                let client = oxlink_kube::infer().await.context("Kubernetes client")?;
                let (grpc, admin) = oxlink_admin::bind_pair(addr, admin_addr).await?;
                let policy = tokio::net::TcpListener::bind(policy_addr)
                    .await
                    .with_context(|| format!("binding {policy_addr}"))?;
                let running = spawn_with(
                    client,
                    config,
                    transport,
                    limits,
                    grpc,
                    Some(policy),
                    Some(admin),
                )
                .context("starting")?;
                shutdown_signal().await;
                tracing::info!("shutting down");
                running.shutdown(shutdown_grace_period).await;
                Ok(())
            })
    }
}

fn load_anchors(path: &Path) -> anyhow::Result<TrustBundle> {
    let context = || format!("--identity-trust-anchors {}", path.display());
    let pem = std::fs::read(path).with_context(context)?;
    TrustBundle::from_pem(&pem).with_context(context)
}

/// Where identity is and the names on both ends: identity's
/// (`linkerd-identity.<ns>.serviceaccount.identity.<ns>.<td>`) and ours (`linkerd-destination`'s).
fn certify_config(
    ns: &str,
    trust_domain: &str,
    cluster_domain: &str,
    identity_addr: Option<String>,
    anchors: TrustBundle,
    token_path: PathBuf,
) -> CertifyConfig {
    let name = |sa: &str| service_account_identity(sa, ns, ns, trust_domain);
    CertifyConfig {
        identity_addr: identity_addr.unwrap_or_else(|| {
            format!("{IDENTITY_SERVICE}.{ns}.svc.{cluster_domain}:{IDENTITY_GRPC_PORT}")
        }),
        identity_server_name: name(IDENTITY_SERVICE_ACCOUNT),
        anchors,
        name: name(DESTINATION_SERVICE_ACCOUNT),
        token_path,
    }
}

#[cfg(test)]
mod tests;
