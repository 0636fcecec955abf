//! The proxy-injector against the real API server: the admission server runs in-process on
//! 127.0.0.1 with its own serving certificate, a MutatingWebhookConfiguration (URL mode, scoped
//! to the test namespace) points the API server at it, and the pods that controllers create
//! come out injected because the API server called the webhook. With the injector down, the
//! webhook's failure policy decides: `Fail` refuses pods, `Ignore` creates them uninjected.
//!
//! Every webhook configuration is named after its test namespace and deleted at the end of the
//! test, also when the test fails.

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::{
    ByteString,
    api::{
        admissionregistration::v1::MutatingWebhookConfiguration,
        apps::v1::Deployment,
        core::v1::{Namespace, Pod, Service},
    },
};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use oxlink_e2e::{CONVERGE, eventually, with_temp_ns};
use oxlink_proxy_injector::{
    Values,
    admission::{Cluster, Injector, StaticConfig},
    cert::SelfManagedCert,
    cluster::{CachedCluster, KubeCluster},
    events::Events,
    server::{self, Admission},
    workload::{InjectOptions, inject_object},
};
use oxlink_tls::{CertificateDer, PrivateKeyDer, ServingCert};
use serde_json::{Value, json};
use std::{collections::BTreeMap, net::SocketAddr, sync::Arc, time::Duration};
use tokio::{net::TcpListener, sync::oneshot};

/// A CA and a serving certificate for `127.0.0.1` signed by it.
struct Certs {
    ca_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn certs() -> Result<Certs> {
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "oxlink e2e webhook CA");
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate()?;
    let leaf =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])?.signed_by(&key, &issuer)?;
    Ok(Certs {
        ca_pem: ca_cert.pem(),
        chain: vec![CertificateDer::from(leaf.der().to_vec())],
        key: PrivateKeyDer::try_from(key.serialize_der())
            .map_err(|e| anyhow::anyhow!("serving key: {e}"))?,
    })
}

/// The admission server running in this process; stops when dropped.
struct RunningInjector {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningInjector {
    /// Serves whatever `cert` holds (possibly nothing yet).
    async fn start_with(client: Client, cert: Arc<ServingCert>, anchors: &str) -> Result<Self> {
        let cluster = Arc::new(KubeCluster::new(client.clone()));
        Self::start_on(cluster, client, cert, anchors).await
    }

    /// Serves with `cluster` answering namespace and owner lookups.
    async fn start_on(
        cluster: Arc<dyn Cluster>,
        client: Client,
        cert: Arc<ServingCert>,
        anchors: &str,
    ) -> Result<Self> {
        let admission = Admission::with_events(
            Injector::new(
                cluster,
                Arc::new(StaticConfig {
                    values: Arc::new(Values::default()),
                    trust_anchors_pem: anchors.into(),
                }),
                "linkerd".into(),
            ),
            Events::new(client),
            server::DEFAULT_MAX_BODY_BYTES,
        );
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server::serve_https(
            listener,
            server::tls_config(cert)?,
            admission,
            &oxlink_admin::serve::Limits::WEBHOOK,
            async move {
                let _ = stopped.await;
            },
        ));
        Ok(Self {
            addr,
            stop: Some(stop),
            task,
        })
    }

    /// Stops accepting and closes every connection, kept-alive ones included.
    async fn stop(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task)
            .await
            .context("the admission server task")?;
        Ok(())
    }
}

impl Drop for RunningInjector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Deletes the webhook configuration when dropped, should the test end before it does (a
/// panic): the API server must never keep calling a webhook that no longer exists.
struct WebhookGuard {
    name: Option<String>,
}

impl Drop for WebhookGuard {
    fn drop(&mut self) {
        if let Some(name) = self.name.take() {
            let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
            let _ = std::process::Command::new(kubectl)
                .args([
                    "delete",
                    "mutatingwebhookconfiguration",
                    &name,
                    "--ignore-not-found",
                ])
                .status();
        }
    }
}

fn webhook_config(
    name: &str,
    ns: &str,
    url: &str,
    ca_pem: &str,
    policy: &str,
) -> Result<MutatingWebhookConfiguration> {
    let mut config: MutatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"oxlink.io/e2e": "injector"}},
        "webhooks": [{
            "name": "linkerd-proxy-injector.linkerd.io",
            "clientConfig": {"url": url},
            "rules": [{
                "operations": ["CREATE"],
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["pods", "services"],
                "scope": "Namespaced",
            }],
            "failurePolicy": policy,
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 10,
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
        }],
    }))?;
    if let Some(hook) = config.webhooks.as_mut().and_then(|w| w.first_mut())
        && !ca_pem.is_empty()
    {
        hook.client_config.ca_bundle = Some(ByteString(ca_pem.as_bytes().to_vec()));
    }
    Ok(config)
}

/// Registers the webhook for `ns`, runs `test`, and deletes the registration whatever happens.
async fn with_webhook<F, Fut>(
    client: &Client,
    ns: &str,
    url: &str,
    ca_pem: &str,
    policy: &str,
    test: F,
) -> Result<()>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let name = format!("oxlink-{ns}");
    api.create(
        &PostParams::default(),
        &webhook_config(&name, ns, url, ca_pem, policy)?,
    )
    .await
    .context("registering the webhook")?;
    let mut guard = WebhookGuard {
        name: Some(name.clone()),
    };
    let result = test(name.clone()).await;
    let deleted = api.delete(&name, &DeleteParams::default()).await;
    guard.name = None;
    result?;
    deleted.context("deleting the webhook configuration")?;
    Ok(())
}

async fn annotate_namespace(client: &Client, ns: &str) -> Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .patch(
            ns,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"linkerd.io/inject": "enabled"}}})),
        )
        .await?;
    Ok(())
}

fn deployment(name: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{
                    "name": "app",
                    "image": "example/app:1",
                    "ports": [{"containerPort": 8080}],
                }]},
            },
        },
    })
}

fn bare_pod() -> Result<Pod> {
    Ok(serde_json::from_value(json!({
        "metadata": {"generateName": "probe-"},
        "spec": {"containers": [{"name": "app", "image": "example/app:1"}]},
    }))?)
}

fn is_injected(pod: &Pod) -> bool {
    pod.spec.as_ref().is_some_and(|s| {
        s.init_containers
            .iter()
            .flatten()
            .any(|c| c.name == "linkerd-proxy" && c.restart_policy.as_deref() == Some("Always"))
    })
}

/// The pods of Deployment `app`, once there is at least one.
async fn pods_of(client: &Client, ns: &str, app: &str) -> Result<Vec<Pod>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    eventually(&format!("a pod of {app}"), CONVERGE, || {
        let pods = pods.clone();
        async move {
            let list = pods
                .list(&ListParams::default().labels(&format!("app={app}")))
                .await?;
            Ok(if list.items.is_empty() {
                Err("no pods yet")
            } else {
                Ok(list.items)
            })
        }
    })
    .await
}

/// The parts injection adds, for comparing two pods: containers and init containers named
/// `linkerd-*`, and the `linkerd-*` volumes. The API server's own ServiceAccount token mount
/// (`kube-api-access-<random>`) is left out.
fn injected_parts(pod: &Pod) -> Result<Value> {
    let mut spec = serde_json::to_value(pod.spec.as_ref().context("pod spec")?)?;
    for key in ["initContainers", "containers"] {
        for container in spec[key].as_array_mut().into_iter().flatten() {
            if let Some(mounts) = container["volumeMounts"].as_array_mut() {
                mounts.retain(|m| {
                    !m["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with("kube-api-access-"))
                });
            }
        }
    }
    let linkerd = |key: &str| -> Value {
        spec[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| {
                c["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("linkerd-"))
            })
            .cloned()
            .collect::<Vec<_>>()
            .into()
    };
    Ok(json!({
        "initContainers": linkerd("initContainers"),
        "containers": linkerd("containers"),
        "volumes": linkerd("volumes"),
    }))
}

/// Pods of a Deployment in a namespace with `linkerd.io/inject: enabled` come out injected by
/// the webhook (with the owner label resolved through the ReplicaSet), identical in everything
/// injection adds to the pods of a Deployment injected by `oxlink inject --manual`, which the
/// webhook leaves alone; a Service gets its default opaque ports.
#[tokio::test]
async fn the_api_server_calls_the_webhook_and_pods_come_out_injected() -> Result<()> {
    with_temp_ns("injector", |client, ns| async move {
        let certs = certs()?;
        let cert = Arc::new(ServingCert::default());
        cert.set_chain(certs.chain.clone(), certs.key.clone_key())?;
        // The cache path, as the binary runs it.
        let (cluster, synced, _watches) = CachedCluster::spawn(client.clone());
        tokio::time::timeout(CONVERGE, synced)
            .await
            .context("the metadata caches to sync")?;
        let injector =
            RunningInjector::start_on(Arc::new(cluster), client.clone(), cert, &certs.ca_pem)
                .await?;
        annotate_namespace(&client, &ns).await?;
        let url = format!("https://{}/inject", injector.addr);
        let result = with_webhook(&client, &ns, &url, &certs.ca_pem, "Fail", |_| {
            let (client, ns, anchors) = (client.clone(), ns.clone(), certs.ca_pem.clone());
            async move {
                // The API server picks the new configuration up within a moment; a dry run
                // shows when it does without leaving objects behind.
                await_dry_run_injection(&client, &ns).await?;

                let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
                deployments
                    .create(&PostParams::default(), &serde_json::from_value(deployment("web"))?)
                    .await?;
                let values = Values::default();
                let mut manual = deployment("cli");
                let opts = InjectOptions {
                    values: &values,
                    trust_anchors_pem: &anchors,
                    control_plane_namespace: "linkerd",
                    created_by: "oxlink/cli e2e",
                    manual: true,
                    annotations: BTreeMap::from([(
                        "linkerd.io/inject".to_string(),
                        "enabled".to_string(),
                    )]),
                    service_annotations: BTreeMap::new(),
                };
                inject_object(&mut manual, &opts)?;
                deployments
                    .create(&PostParams::default(), &serde_json::from_value(manual)?)
                    .await?;

                let web = pods_of(&client, &ns, "web").await?;
                for pod in &web {
                    ensure!(is_injected(pod), "webhook pod not injected: {pod:?}");
                    let labels = pod.metadata.labels.clone().unwrap_or_default();
                    ensure!(
                        labels.get("linkerd.io/proxy-deployment").map(String::as_str) == Some("web"),
                        "owner label: {labels:?}"
                    );
                    let annotations = pod.metadata.annotations.clone().unwrap_or_default();
                    ensure!(
                        annotations
                            .get("linkerd.io/created-by")
                            .is_some_and(|c| c.starts_with("oxlink/proxy-injector")),
                        "created-by: {annotations:?}"
                    );
                }
                let cli = pods_of(&client, &ns, "cli").await?;
                let cli_annotations = cli[0].metadata.annotations.clone().unwrap_or_default();
                ensure!(
                    cli_annotations.get("linkerd.io/created-by").map(String::as_str)
                        == Some("oxlink/cli e2e"),
                    "the webhook left the CLI-injected pod alone: {cli_annotations:?}"
                );
                let (from_webhook, from_cli) = (injected_parts(&web[0])?, injected_parts(&cli[0])?);
                if from_webhook != from_cli {
                    bail!(
                        "the webhook and the CLI injected differently:\nwebhook: {from_webhook:#}\ncli: {from_cli:#}"
                    );
                }

                let events: Api<k8s_openapi::api::events::v1::Event> =
                    Api::namespaced(client.clone(), &ns);
                eventually("an Injected event on Deployment web", CONVERGE, || {
                    let events = events.clone();
                    async move {
                        let list = events.list(&ListParams::default()).await?;
                        let found = list.items.iter().any(|e| {
                            e.reason.as_deref() == Some("Injected")
                                && e.regarding.as_ref().is_some_and(|r| {
                                    r.kind.as_deref() == Some("Deployment")
                                        && r.name.as_deref() == Some("web")
                                })
                        });
                        Ok(if found { Ok(()) } else { Err(list.items.len()) })
                    }
                })
                .await?;

                let services: Api<Service> = Api::namespaced(client.clone(), &ns);
                let service = services
                    .create(
                        &PostParams::default(),
                        &serde_json::from_value(json!({
                            "metadata": {"name": "db"},
                            "spec": {"selector": {"app": "db"}, "ports": [{"port": 5432}]},
                        }))?,
                    )
                    .await?;
                let annotations = service.metadata.annotations.unwrap_or_default();
                ensure!(
                    annotations.get("config.linkerd.io/opaque-ports").map(String::as_str)
                        == Some("5432"),
                    "service annotations: {annotations:?}"
                );
                Ok(())
            }
        })
        .await;
        injector.stop().await?;
        result
    })
    .await
}

/// With the injector down, `failurePolicy: Fail` refuses pods and `Ignore` creates them
/// without a proxy.
#[tokio::test]
async fn with_the_injector_down_the_failure_policy_decides() -> Result<()> {
    with_temp_ns("injector-down", |client, ns| async move {
        let certs = certs()?;
        // A port nothing listens on: the injector is down.
        let addr = TcpListener::bind("127.0.0.1:0").await?.local_addr()?;
        annotate_namespace(&client, &ns).await?;
        let url = format!("https://{addr}/inject");
        with_webhook(&client, &ns, &url, &certs.ca_pem, "Fail", |name| {
            let (client, ns) = (client.clone(), ns.clone());
            async move {
                let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
                let refusal = eventually("Fail to refuse a pod", CONVERGE, || {
                    let pods = pods.clone();
                    async move {
                        match pods.create(&PostParams::default(), &bare_pod()?).await {
                            Err(kube::Error::Api(e)) => Ok(Ok(e.message)),
                            Err(e) => Err(e.into()),
                            Ok(pod) => {
                                // Created before the API server saw the configuration.
                                let name = pod.metadata.name.unwrap_or_default();
                                pods.delete(&name, &DeleteParams::default()).await?;
                                Ok(Err("a pod was created"))
                            }
                        }
                    }
                })
                .await?;
                ensure!(
                    refusal.contains("linkerd-proxy-injector.linkerd.io"),
                    "the refusal names the webhook: {refusal}"
                );

                let configs: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
                let mut config = configs.get(&name).await?;
                for hook in config.webhooks.iter_mut().flatten() {
                    hook.failure_policy = Some("Ignore".into());
                }
                configs
                    .replace(&name, &PostParams::default(), &config)
                    .await?;
                let created = eventually("Ignore to admit a pod", CONVERGE, || {
                    let pods = pods.clone();
                    async move {
                        match pods.create(&PostParams::default(), &bare_pod()?).await {
                            Ok(pod) => Ok(Ok(pod)),
                            Err(kube::Error::Api(e)) => Ok(Err(e.message)),
                            Err(e) => Err(e.into()),
                        }
                    }
                })
                .await?;
                ensure!(
                    !is_injected(&created),
                    "a pod admitted without the injector has no proxy"
                );
                Ok(())
            }
        })
        .await
    })
    .await
}

/// `oxlink inject --manual` without `--ignore-cluster` renders with the cluster's
/// `linkerd-config` values and trust anchors.
#[tokio::test]
async fn the_cli_reads_linkerd_config_from_the_cluster() -> Result<()> {
    with_temp_ns("inject-cli", |client, ns| async move {
        let anchors = certs()?.ca_pem;
        let values = json!({
            "identityTrustAnchorsPEM": anchors,
            "proxy": {"logLevel": "debug", "nativeSidecar": false},
        });
        let config_maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
            Api::namespaced(client.clone(), &ns);
        config_maps
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "metadata": {"name": "linkerd-config"},
                    "data": {"values": serde_saphyr::to_string(&values)?},
                }))?,
            )
            .await?;
        let manifest = std::env::temp_dir().join(format!("{ns}.yaml"));
        std::fs::write(&manifest, serde_saphyr::to_string(&deployment("web"))?)?;
        let args = [
            "oxlink".to_string(),
            "inject".into(),
            "--manual".into(),
            "--linkerd-namespace".into(),
            ns.clone(),
            manifest.display().to_string(),
        ];
        let output = tokio::task::spawn_blocking(move || -> Result<String> {
            let cli = <oxlink_cli::Cli as clap::Parser>::try_parse_from(args)?;
            let mut out = Vec::new();
            cli.run(&mut out)?;
            Ok(String::from_utf8(out)?)
        })
        .await?;
        std::fs::remove_file(&manifest)?;
        let injected: Value = serde_saphyr::from_str(&output?)?;
        let containers = &injected["spec"]["template"]["spec"]["containers"];
        ensure!(
            containers[0]["name"] == "linkerd-proxy",
            "nativeSidecar: false from the cluster puts the proxy first: {containers}"
        );
        let env = |name: &str| {
            containers[0]["env"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|e| e["name"] == name)
                .and_then(|e| e["value"].as_str())
                .map(str::to_string)
        };
        ensure!(
            env("LINKERD2_PROXY_LOG").is_some_and(|l| l.starts_with("debug,")),
            "log level from the cluster: {:?}",
            env("LINKERD2_PROXY_LOG")
        );
        ensure!(
            env("LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS")
                .as_deref()
                .map(str::trim)
                == Some(anchors.trim()),
            "trust anchors from the cluster"
        );
        ensure!(
            env("_l5d_ns").as_deref() == Some(ns.as_str()),
            "control-plane namespace"
        );
        Ok(())
    })
    .await
}

/// Polls until a dry-run pod comes back injected: the API server reached the webhook and
/// trusted its certificate.
async fn await_dry_run_injection(client: &Client, ns: &str) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    eventually("the webhook to inject a dry-run pod", CONVERGE, || {
        let pods = pods.clone();
        async move {
            let dry_run = PostParams {
                dry_run: true,
                ..PostParams::default()
            };
            Ok(match pods.create(&dry_run, &bare_pod()?).await {
                Ok(pod) if is_injected(&pod) => Ok(()),
                Ok(_) => Err("not injected".to_string()),
                Err(e) => Err(e.to_string()),
            })
        }
    })
    .await
}

async fn ca_bundle(client: &Client, name: &str) -> Result<Vec<u8>> {
    let configs: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let config = configs.get(name).await?;
    Ok(config
        .webhooks
        .into_iter()
        .flatten()
        .next()
        .and_then(|w| w.client_config.ca_bundle)
        .map(|b| b.0)
        .unwrap_or_default())
}

/// The self-managed serving certificate: minted into Secret `linkerd-proxy-injector-k8s-tls`,
/// written as the webhook's `caBundle` and trusted by the API server; kept while valid;
/// replaced (Secret and `caBundle`) when due for renewal.
#[tokio::test]
async fn the_self_managed_certificate_is_stored_published_and_renewed() -> Result<()> {
    with_temp_ns("injector-cert", |client, ns| async move {
        let serving = Arc::new(ServingCert::default());
        let anchors = certs()?.ca_pem;
        let injector =
            RunningInjector::start_with(client.clone(), serving.clone(), &anchors).await?;
        annotate_namespace(&client, &ns).await?;
        let url = format!("https://{}/inject", injector.addr);
        let result = with_webhook(&client, &ns, &url, "", "Fail", |name| {
            let (client, ns, serving) = (client.clone(), ns.clone(), serving.clone());
            async move {
                let managed = SelfManagedCert {
                    namespace: ns.clone(),
                    secret: "linkerd-proxy-injector-k8s-tls".into(),
                    webhook_config: name.clone(),
                    validating_configs: vec![],
                    names: vec!["127.0.0.1".into()],
                    lifetime: Duration::from_secs(365 * 24 * 3600),
                    renew_before: Duration::from_secs(90 * 24 * 3600),
                    // One replica here: the old certificate may go as soon as it is replaced.
                    rotation_grace: Duration::ZERO,
                };
                let first = managed.ensure(&client, &serving).await?;
                let secrets: Api<k8s_openapi::api::core::v1::Secret> =
                    Api::namespaced(client.clone(), &ns);
                let secret = secrets.get("linkerd-proxy-injector-k8s-tls").await?;
                ensure!(
                    secret.type_.as_deref() == Some("kubernetes.io/tls"),
                    "Secret type"
                );
                let stored = secret.data.unwrap_or_default();
                ensure!(
                    stored.get("tls.crt").map(|b| b.0.as_slice()) == Some(first.crt.as_bytes()),
                    "the Secret holds the served certificate"
                );
                ensure!(
                    ca_bundle(&client, &name).await?.trim_ascii() == first.crt.trim().as_bytes(),
                    "caBundle written"
                );
                await_dry_run_injection(&client, &ns).await?;

                let again = managed.ensure(&client, &serving).await?;
                ensure!(again == first, "a valid certificate is kept");

                let due = SelfManagedCert {
                    renew_before: Duration::from_secs(400 * 24 * 3600),
                    ..managed.clone()
                };
                let renewed = due.ensure(&client, &serving).await?;
                ensure!(
                    renewed != first,
                    "a certificate due for renewal is replaced"
                );
                ensure!(
                    ca_bundle(&client, &name).await?.trim_ascii() == renewed.crt.trim().as_bytes(),
                    "the caBundle follows the renewal"
                );
                await_dry_run_injection(&client, &ns).await?;
                Ok(())
            }
        })
        .await;
        injector.stop().await?;
        result
    })
    .await
}

/// Connections to `front` are handed to the backends in turn, as kube-proxy spreads a
/// Service's connections over its endpoints; counts the connections each backend got.
async fn round_robin(
    front: TcpListener,
    backends: Vec<SocketAddr>,
    counts: Arc<Vec<std::sync::atomic::AtomicU64>>,
) {
    let mut next = 0;
    while let Ok((mut inbound, _)) = front.accept().await {
        let i = next % backends.len();
        next += 1;
        counts[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let backend = backends[i];
        tokio::spawn(async move {
            if let Ok(mut outbound) = tokio::net::TcpStream::connect(backend).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

/// Three injector replicas, each serving the certificate of the shared Secret and watching it,
/// behind one address that spreads connections over them; the webhook fails closed. A
/// rotation forced while pods are created without pause stages the next certificate in the
/// `caBundle` before any replica serves it and drops the old one only after every replica has
/// switched: not one admission fails.
#[tokio::test]
async fn three_replicas_rotate_the_certificate_without_a_failed_admission() -> Result<()> {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    with_temp_ns("injector-rotate", |client, ns| async move {
        let anchors = certs()?.ca_pem;
        let mut replicas = Vec::new();
        let mut servings = Vec::new();
        for _ in 0..3 {
            let serving = Arc::new(ServingCert::default());
            replicas.push(
                RunningInjector::start_with(client.clone(), serving.clone(), &anchors).await?,
            );
            servings.push(serving);
        }
        let front = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("https://{}/inject", front.local_addr()?);
        let counts = Arc::new((0..3).map(|_| AtomicU64::new(0)).collect::<Vec<_>>());
        let balancer = tokio::spawn(round_robin(
            front,
            replicas.iter().map(|r| r.addr).collect(),
            counts.clone(),
        ));
        annotate_namespace(&client, &ns).await?;
        let result = with_webhook(&client, &ns, &url, "", "Fail", |name| {
            let (client, ns) = (client.clone(), ns.clone());
            async move {
                let managed = SelfManagedCert {
                    namespace: ns.clone(),
                    secret: "linkerd-proxy-injector-k8s-tls".into(),
                    webhook_config: name.clone(),
                    validating_configs: vec![],
                    names: vec!["127.0.0.1".into()],
                    lifetime: Duration::from_secs(365 * 24 * 3600),
                    renew_before: Duration::from_secs(90 * 24 * 3600),
                    rotation_grace: Duration::from_secs(6),
                };
                // Each replica starts as the injector does: ensure, then follow the Secret.
                let mut followers = tokio::task::JoinSet::new();
                let mut first = None;
                for serving in &servings {
                    first = Some(managed.ensure(&client, serving).await?);
                    followers.spawn(managed.clone().run(
                        client.clone(),
                        serving.clone(),
                        Duration::from_secs(2),
                    ));
                }
                let first = first.context("three replicas")?;
                await_dry_run_injection(&client, &ns).await?;

                // Pods created without pause, from two clients, until told to stop.
                let stop = Arc::new(AtomicBool::new(false));
                let (admitted, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
                let errors = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
                let mut load = tokio::task::JoinSet::new();
                for _ in 0..2 {
                    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
                    let (stop, admitted, failed, errors) = (
                        stop.clone(),
                        admitted.clone(),
                        failed.clone(),
                        errors.clone(),
                    );
                    load.spawn(async move {
                        let dry_run = PostParams {
                            dry_run: true,
                            ..PostParams::default()
                        };
                        while !stop.load(Ordering::Relaxed) {
                            let Ok(pod) = bare_pod() else { return };
                            match pods.create(&dry_run, &pod).await {
                                Ok(pod) if is_injected(&pod) => {
                                    admitted.fetch_add(1, Ordering::Relaxed);
                                }
                                Ok(_) => {
                                    failed.fetch_add(1, Ordering::Relaxed);
                                    errors
                                        .lock()
                                        .unwrap_or_else(|e| e.into_inner())
                                        .push("admitted without injection".into());
                                }
                                Err(e) => {
                                    failed.fetch_add(1, Ordering::Relaxed);
                                    errors
                                        .lock()
                                        .unwrap_or_else(|e| e.into_inner())
                                        .push(e.to_string());
                                }
                            }
                        }
                    });
                }
                tokio::time::sleep(Duration::from_secs(2)).await;

                // A fourth party finds the certificate due and rotates it (stage and promote);
                // the replicas follow the Secret and drop the old certificate after the grace.
                let due = SelfManagedCert {
                    renew_before: Duration::from_secs(400 * 24 * 3600),
                    ..managed.clone()
                };
                let rotated = due.ensure(&client, &ServingCert::default()).await?;
                ensure!(rotated != first, "the certificate was rotated");
                let both = ca_bundle(&client, &name).await?;
                let has =
                    |bundle: &[u8], pem: &str| String::from_utf8_lossy(bundle).contains(pem.trim());
                ensure!(
                    has(&both, &first.crt) && has(&both, &rotated.crt),
                    "both certificates are trusted right after the rotation"
                );
                eventually(
                    "the old certificate to leave the caBundle",
                    CONVERGE,
                    || {
                        let (client, name, rotated) =
                            (client.clone(), name.clone(), rotated.clone());
                        async move {
                            let bundle = ca_bundle(&client, &name).await?;
                            Ok(if bundle.trim_ascii() == rotated.crt.trim().as_bytes() {
                                Ok(())
                            } else {
                                Err("still two certificates")
                            })
                        }
                    },
                )
                .await?;
                // Keep creating pods a little after the drop, through fresh connections.
                tokio::time::sleep(Duration::from_secs(3)).await;
                stop.store(true, Ordering::Relaxed);
                while load.join_next().await.is_some() {}
                followers.abort_all();

                let (admitted, failed) = (
                    admitted.load(Ordering::Relaxed),
                    failed.load(Ordering::Relaxed),
                );
                let connections: Vec<u64> =
                    counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
                eprintln!(
                    "rotation under load: {admitted} pods admitted and injected, {failed} failed; \
                     connections per replica {connections:?}"
                );
                ensure!(
                    failed == 0,
                    "{failed} admissions failed during the rotation: {:?}",
                    errors
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .iter()
                        .take(3)
                        .map(|e| e.chars().take(300).collect::<String>())
                        .collect::<Vec<_>>()
                );
                ensure!(admitted > 0, "no pod was created during the rotation");
                Ok(())
            }
        })
        .await;
        balancer.abort();
        for replica in replicas {
            replica.stop().await?;
        }
        result
    })
    .await
}
