//! Command-line flags of `oxlink-identity` and the process around the library.

use crate::{
    certify::MAX_CONCURRENT_CERTIFY,
    serve::{Config, spawn},
};
use anyhow::Context;
use clap::Parser;
use oxlink_admin::{
    LogArgs,
    serve::{LimitArgs, Limits},
    shutdown_signal,
};
use oxlink_crds::duration::parse_duration;
use oxlink_crds::names::control_plane::{
    IDENTITY_ADMIN_PORT, IDENTITY_GRPC_PORT, NAMESPACE, TRUST_DOMAIN,
};
use oxlink_tls::{DEFAULT_CLOCK_SKEW_ALLOWANCE, DEFAULT_ISSUANCE_LIFETIME, IssuancePolicy};
use std::{net::SocketAddr, process::ExitCode, time::Duration};

/// The mesh certificate authority: answers linkerd2-proxy's Certify.
#[derive(Debug, Parser)]
#[command(name = "oxlink-identity", version)]
pub struct Args {
    /// Address of the gRPC server.
    #[arg(long, env = "OXLINK_IDENTITY_ADDR", default_value_t = SocketAddr::from(([0, 0, 0, 0], IDENTITY_GRPC_PORT)))]
    addr: SocketAddr,

    /// Address of the admin server (`/live`, `/ready`, `/metrics`).
    #[arg(long, env = "OXLINK_IDENTITY_ADMIN_ADDR", default_value_t = SocketAddr::from(([0, 0, 0, 0], IDENTITY_ADMIN_PORT)))]
    admin_addr: SocketAddr,

    /// Namespace of the control plane (issuer Secret, trust roots, identity names).
    #[arg(long, env = "OXLINK_CONTROLLER_NAMESPACE", default_value = NAMESPACE)]
    controller_namespace: String,

    /// Trust domain of mesh identities.
    #[arg(long, env = "OXLINK_IDENTITY_TRUST_DOMAIN", default_value = TRUST_DOMAIN)]
    identity_trust_domain: String,

    /// Lifetime of issued leaf certificates (Go duration syntax) [default: 24h0m0s].
    #[arg(long, env = "OXLINK_IDENTITY_ISSUANCE_LIFETIME", value_parser = parse_duration)]
    identity_issuance_lifetime: Option<Duration>,

    /// How far leaves are backdated, and extended, to allow for clock skew [default: 20s].
    #[arg(long, env = "OXLINK_IDENTITY_CLOCK_SKEW_ALLOWANCE", value_parser = parse_duration)]
    identity_clock_skew_allowance: Option<Duration>,

    /// Serve plaintext HTTP/2 instead of TLS, for running behind a proxy sidecar.
    #[arg(long, env = "OXLINK_IDENTITY_PLAINTEXT")]
    plaintext: bool,

    /// Check every token with a TokenReview (as Linkerd does) instead of verifying it in
    /// process against the service-account issuer's keys, with TokenReview only for tokens that
    /// cannot be decided locally.
    #[arg(long, env = "OXLINK_IDENTITY_TOKEN_REVIEW_ONLY")]
    token_review_only: bool,

    /// Certify calls answered at once; more wait their turn.
    #[arg(long, env = "OXLINK_IDENTITY_MAX_CONCURRENT_CERTIFY", default_value_t = MAX_CONCURRENT_CERTIFY)]
    max_concurrent_certify: usize,

    #[command(flatten)]
    limits: LimitArgs,

    #[command(flatten)]
    logs: LogArgs,
}

impl Args {
    /// Parses the command line and runs identity until SIGINT or SIGTERM.
    pub fn parse_and_run() -> ExitCode {
        oxlink_admin::exit_code("oxlink-identity", Self::parse().run())
    }

    fn run(self) -> anyhow::Result<()> {
        let Self {
            addr,
            admin_addr,
            controller_namespace,
            identity_trust_domain,
            identity_issuance_lifetime,
            identity_clock_skew_allowance,
            plaintext,
            limits,
            token_review_only,
            max_concurrent_certify,
            logs,
        } = self;
        logs.init().context("--log-level")?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = Config {
            namespace: controller_namespace,
            trust_domain: identity_trust_domain,
            issuance: IssuancePolicy {
                lifetime: identity_issuance_lifetime.unwrap_or(DEFAULT_ISSUANCE_LIFETIME),
                clock_skew: identity_clock_skew_allowance.unwrap_or(DEFAULT_CLOCK_SKEW_ALLOWANCE),
            },
            plaintext,
            limits: limits.limits(Limits::GRPC),
            token_review_only,
            max_concurrent_certify,
        };
        oxlink_admin::runtime()
            .context("starting the runtime")?
            .block_on(async move {
                let client = oxlink_kube::infer().await.context("Kubernetes client")?;
                let (grpc, admin) = oxlink_admin::bind_pair(addr, admin_addr).await?;
                let running = spawn(client, config, grpc, Some(admin)).await?;
                shutdown_signal().await;
                tracing::info!("shutting down");
                running.shutdown().await;
                Ok(())
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults the chart documents are the ones identity applies without the flags.
    #[test]
    fn the_charts_issuance_defaults_are_identitys() {
        let values = include_str!("../../charts/oxlink-control-plane/values.yaml");
        let value = |key: &str| {
            values
                .lines()
                .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix(':'))
                .map(|v| parse_duration(v.trim()).unwrap())
                .unwrap_or_else(|| panic!("values.yaml has no {key}"))
        };
        assert_eq!(value("issuanceLifetime"), DEFAULT_ISSUANCE_LIFETIME);
        assert_eq!(value("clockSkewAllowance"), DEFAULT_CLOCK_SKEW_ALLOWANCE);
        let args = Args::parse_from(["oxlink-identity"]);
        assert_eq!(args.identity_issuance_lifetime, None);
        let args = Args::parse_from(["oxlink-identity", "--identity-issuance-lifetime=1h"]);
        assert_eq!(
            args.identity_issuance_lifetime,
            Some(Duration::from_secs(3600))
        );
    }
}
