//! Command-line flags of `oxlink-proxy-injector` and the process around the library.

use crate::{
    admission::{FileConfig, Injector},
    cert::SelfManagedCert,
    cluster::CachedCluster,
    events::Events,
    serve,
    server::{self, Admission, DEFAULT_MAX_BODY_BYTES},
};
use anyhow::Context;
use clap::Parser;
use oxlink_admin::{
    LogArgs, Tasks,
    serve::{LimitArgs, Limits},
    shutdown_signal,
};
use oxlink_crds::names;
use oxlink_crds::names::control_plane::NAMESPACE;
use oxlink_tls::ServingCert;
use std::{net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

/// How often the self-managed certificate's Secret is read again besides its watch (the
/// rotation grace, [`crate::cert::DEFAULT_ROTATION_GRACE`], is five times this).
const CERT_RESYNC_INTERVAL: Duration = Duration::from_secs(60);

/// The admission webhook that injects linkerd2-proxy into pods.
#[derive(Debug, Parser)]
#[command(name = "oxlink-proxy-injector", version)]
pub struct Args {
    /// Address of the HTTPS admission server.
    #[arg(long, env = "OXLINK_PROXY_INJECTOR_ADDR", default_value_t = SocketAddr::from(([0, 0, 0, 0], names::control_plane::PROXY_INJECTOR_PORT)))]
    addr: SocketAddr,

    /// Address of the admin server (`/live`, `/ready`, `/metrics`).
    #[arg(long, env = "OXLINK_PROXY_INJECTOR_ADMIN_ADDR", default_value_t = SocketAddr::from(([0, 0, 0, 0], names::control_plane::PROXY_INJECTOR_ADMIN_PORT)))]
    admin_addr: SocketAddr,

    /// Namespace of the control plane.
    #[arg(long, env = "OXLINK_CONTROLLER_NAMESPACE", default_value = NAMESPACE)]
    controller_namespace: String,

    /// Serve the certificate in `--tls-cert` / `--tls-key` (from cert-manager or the chart)
    /// instead of managing one in Secret `linkerd-proxy-injector-k8s-tls`.
    #[arg(long, env = "OXLINK_PROXY_INJECTOR_EXTERNAL_CERT")]
    external_cert: bool,

    /// The MutatingWebhookConfiguration whose `caBundle` the self-managed certificate is
    /// written to.
    #[arg(long, env = "OXLINK_PROXY_INJECTOR_WEBHOOK_CONFIG", default_value = names::control_plane::PROXY_INJECTOR_WEBHOOK_CONFIG)]
    webhook_config: String,

    /// Extra subject alternative names of the self-managed certificate, comma-separated: DNS
    /// names, or IP addresses (which become IP SANs), e.g. `127.0.0.1,localhost` for a local
    /// process that a URL-mode webhook calls at `https://127.0.0.1:PORT/inject`.
    #[arg(
        long,
        env = "OXLINK_PROXY_INJECTOR_TLS_EXTRA_NAMES",
        value_delimiter = ',',
        value_parser = parse_san,
        conflicts_with = "external_cert"
    )]
    tls_extra_names: Vec<String>,

    /// Serving certificate chain (PEM) with `--external-cert`, re-read when it changes.
    #[arg(
        long,
        env = "OXLINK_PROXY_INJECTOR_TLS_CERT",
        default_value = "/var/run/linkerd/tls/tls.crt"
    )]
    tls_cert: PathBuf,

    /// Serving certificate key (PEM) with `--external-cert`.
    #[arg(
        long,
        env = "OXLINK_PROXY_INJECTOR_TLS_KEY",
        default_value = "/var/run/linkerd/tls/tls.key"
    )]
    tls_key: PathBuf,

    /// The `values` document of ConfigMap `linkerd-config`, read on every request.
    #[arg(long, env = "OXLINK_PROXY_INJECTOR_CONFIG_VALUES", default_value = names::control_plane::CONFIG_VALUES_PATH)]
    config_values: PathBuf,

    /// The trust anchors' PEM bundle, read on every request.
    #[arg(long, env = "OXLINK_PROXY_INJECTOR_TRUST_ANCHORS", default_value = names::control_plane::TRUST_ROOTS_PATH)]
    trust_anchors: PathBuf,

    /// Largest AdmissionReview body accepted, in bytes.
    #[arg(long, env = "OXLINK_PROXY_INJECTOR_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: usize,

    #[command(flatten)]
    limits: LimitArgs,

    #[command(flatten)]
    logs: LogArgs,
}

/// How long in-flight admission requests get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

impl Args {
    /// Parses the command line and runs the injector until SIGINT or SIGTERM.
    pub fn parse_and_run() -> ExitCode {
        oxlink_admin::exit_code("oxlink-proxy-injector", Self::parse().run())
    }

    fn run(self) -> anyhow::Result<()> {
        let Self {
            addr,
            admin_addr,
            controller_namespace,
            external_cert,
            webhook_config,
            tls_extra_names,
            tls_cert,
            tls_key,
            config_values,
            trust_anchors,
            max_body_bytes,
            limits,
            logs,
        } = self;
        let limits = limits.limits(Limits::WEBHOOK);
        logs.init().context("--log-level")?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let cert = Arc::new(ServingCert::default());
        let loaded = if external_cert {
            Some(load_cert(&cert, &tls_cert, &tls_key)?)
        } else {
            None
        };
        oxlink_admin::runtime()
            .context("starting the runtime")?
            .block_on(async move {
                let mut tasks = Tasks::default();
                let client = oxlink_kube::infer().await.context("Kubernetes client")?;
                match loaded {
                    Some(loaded) => {
                        tasks.background(
                            "the serving certificate reload",
                            reload_cert(cert.clone(), tls_cert, tls_key, loaded),
                        );
                    }
                    None => {
                        let managed = SelfManagedCert::for_service(
                            &controller_namespace,
                            names::control_plane::PROXY_INJECTOR_SERVICE,
                            &webhook_config,
                        )
                        .with_extra_names(tls_extra_names);
                        managed
                            .ensure(&client, &cert)
                            .await
                            .context("the self-managed serving certificate")?;
                        tasks.background(
                            "the serving certificate's watch and rotation",
                            managed.run(client.clone(), cert.clone(), CERT_RESYNC_INTERVAL),
                        );
                    }
                }
                let config = FileConfig::new(Some(config_values), trust_anchors);
                let (cluster, synced, watches) = CachedCluster::spawn(client.clone());
                for (name, watch) in watches {
                    tasks.adopt(name, watch);
                }
                let admission = Admission::with_events(
                    Injector::new(Arc::new(cluster), Arc::new(config), controller_namespace),
                    Events::new(client),
                    max_body_bytes,
                );
                admission.set_ready(false);
                tasks.once({
                    let admission = admission.clone();
                    async move {
                        synced.await;
                        tracing::info!("metadata caches synced");
                        admission.set_ready(true);
                    }
                });
                let (https, admin) = oxlink_admin::bind_pair(addr, admin_addr).await?;
                let tls = server::tls_config(cert.clone())?;
                let running = serve::spawn(admission, tls, limits, https, Some(admin), tasks)?;
                shutdown_signal().await;
                tracing::info!("shutting down");
                running.shutdown(SHUTDOWN_GRACE).await;
                Ok(())
            })
    }
}

/// A subject alternative name: an IP address, or a DNS name (letters, digits, `-`, `.`,
/// optionally a leading `*.`).
fn parse_san(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.parse::<std::net::IpAddr>().is_ok() {
        return Ok(s.to_string());
    }
    let host = s.strip_prefix("*.").unwrap_or(s);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if host.len() <= 253 && host.split('.').all(label_ok) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!("{s:?} is neither an IP address nor a DNS name"))
    }
}

/// Loads the serving certificate; returns the files' contents to detect changes.
fn load_cert(cert: &ServingCert, crt: &PathBuf, key: &PathBuf) -> anyhow::Result<Vec<u8>> {
    let crt_pem = std::fs::read(crt).with_context(|| format!("reading {}", crt.display()))?;
    let key_pem = std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
    let chain = oxlink_tls::pem::certificates(&crt_pem)
        .with_context(|| format!("certificates in {}", crt.display()))?;
    let private = oxlink_tls::pem::private_key(&key_pem)
        .with_context(|| format!("private key in {}", key.display()))?;
    cert.set_chain(chain, private)
        .context("the serving certificate and key do not work together")?;
    Ok([crt_pem, key_pem].concat())
}

/// Re-reads the serving certificate every 30 seconds and swaps it in when it changed.
async fn reload_cert(cert: Arc<ServingCert>, crt: PathBuf, key: PathBuf, mut last: Vec<u8>) {
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    loop {
        tick.tick().await;
        let current = [
            std::fs::read(&crt).unwrap_or_default(),
            std::fs::read(&key).unwrap_or_default(),
        ]
        .concat();
        if current == last {
            continue;
        }
        match load_cert(&cert, &crt, &key) {
            Ok(loaded) => {
                tracing::info!("reloaded the serving certificate");
                last = loaded;
            }
            Err(error) => tracing::warn!("keeping the current serving certificate: {error:#}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extra_names(args: &[&str]) -> Result<Vec<String>, clap::Error> {
        let argv = std::iter::once("oxlink-proxy-injector").chain(args.iter().copied());
        Args::try_parse_from(argv).map(|a| a.tls_extra_names)
    }

    #[test]
    fn extra_names_are_a_comma_separated_list_of_ips_and_dns_names() {
        assert_eq!(extra_names(&[]).unwrap(), Vec::<String>::new());
        assert_eq!(
            extra_names(&["--tls-extra-names", "127.0.0.1,localhost,::1"]).unwrap(),
            ["127.0.0.1", "localhost", "::1"]
        );
        assert_eq!(
            extra_names(&[
                "--tls-extra-names",
                "Injector.Example",
                "--tls-extra-names",
                "*.x.y"
            ])
            .unwrap(),
            ["injector.example", "*.x.y"]
        );
    }

    #[test]
    fn a_bad_extra_name_is_refused_with_the_reason() {
        for bad in ["under_score", "-lead.example", "a..b", "127.0.0.1:8443", ""] {
            let flag = format!("--tls-extra-names={bad}");
            let error = extra_names(&[&flag]).unwrap_err().to_string();
            assert!(
                error.contains("neither an IP address nor a DNS name"),
                "{bad:?}: {error}"
            );
        }
        let error = extra_names(&["--external-cert", "--tls-extra-names", "127.0.0.1"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("cannot be used with"), "{error}");
    }
}
