//! The validating webhooks against the real API server: the admission server runs in-process on
//! 127.0.0.1 with a self-managed certificate that carries `127.0.0.1` as an IP SAN (as
//! `--tls-extra-names` asks), and a ValidatingWebhookConfiguration in URL mode, scoped to the
//! test namespace, sends ServiceProfiles and policy resources to `/validate/serviceprofile` and
//! `/validate/policy`. The API server itself then refuses a bad object with our message, and
//! stores the workshop's profile untouched.

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::{
    ByteString, api::admissionregistration::v1::ValidatingWebhookConfiguration,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client,
    api::{
        ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
    },
};
use oxlink_e2e::{CONVERGE, eventually, with_temp_ns};
use oxlink_proxy_injector::{
    Values,
    admission::{Injector, StaticConfig},
    cert::{self, SelfManagedCert},
    cluster::KubeCluster,
    server::{self, Admission},
};
use oxlink_tls::ServingCert;
use serde_json::{Value, json};
use std::{path::PathBuf, sync::Arc, time::SystemTime};
use tokio::{net::TcpListener, sync::oneshot};

/// Server-side applies every CRD and waits until the API server serves them.
async fn install_crds(client: &Client) -> Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply("oxlink-e2e-validator").force();
    for crd in oxlink_crds::install::crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        crds.patch(&name, &params, &Patch::Apply(&crd))
            .await
            .with_context(|| format!("applying CRD {name}"))?;
        eventually(&format!("CRD {name} established"), CONVERGE, || {
            let crds = crds.clone();
            let name = name.clone();
            async move {
                let crd = crds.get(&name).await?;
                let established = crd
                    .status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True");
                Ok(if established { Ok(()) } else { Err("not yet") })
            }
        })
        .await?;
    }
    Ok(())
}

/// The admission server on 127.0.0.1, presenting a self-managed certificate; stops when dropped.
struct Running {
    url: String,
    ca_pem: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn start(client: Client) -> Result<Self> {
        let managed = SelfManagedCert::for_service("linkerd", "linkerd-proxy-injector", "unused")
            .with_extra_names(["127.0.0.1".to_string()]);
        let pem = managed.mint(SystemTime::now())?;
        let serving = Arc::new(ServingCert::default());
        cert::load(&serving, &pem)?;
        let admission = Admission::new(
            Injector::new(
                Arc::new(KubeCluster::new(client)),
                Arc::new(StaticConfig {
                    values: Arc::new(Values::default()),
                    trust_anchors_pem: "".into(),
                }),
                "linkerd".into(),
            ),
            server::DEFAULT_MAX_BODY_BYTES,
        );
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server::serve_https(
            listener,
            server::tls_config(serving)?,
            admission,
            &oxlink_admin::serve::Limits::WEBHOOK,
            async move {
                let _ = stopped.await;
            },
        ));
        Ok(Self {
            url: format!("https://{addr}"),
            ca_pem: pem.crt,
            stop: Some(stop),
            task,
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

/// Linkerd's two validating webhooks, in URL mode, for objects in `ns` only.
fn webhook_config(
    name: &str,
    ns: &str,
    base: &str,
    ca_pem: &str,
) -> Result<ValidatingWebhookConfiguration> {
    let hook = |hook: &str, path: &str, group: &str, resources: Value| {
        json!({
            "name": hook,
            "clientConfig": {
                "url": format!("{base}{path}"),
                "caBundle": ByteString(ca_pem.as_bytes().to_vec()),
            },
            "rules": [{
                "operations": ["CREATE", "UPDATE"],
                "apiGroups": [group],
                "apiVersions": ["*"],
                "resources": resources,
                "scope": "Namespaced",
            }],
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 10,
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
        })
    };
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"oxlink.io/e2e": "validator"}},
        "webhooks": [
            hook("linkerd-sp-validator.linkerd.io", "/validate/serviceprofile", "linkerd.io", json!(["serviceprofiles"])),
            hook("linkerd-policy-validator.linkerd.io", "/validate/policy", "policy.linkerd.io", json!(["*"])),
        ],
    }))?)
}

/// Deletes the webhook configuration when dropped, also after a panic.
struct WebhookGuard(Option<String>);

impl Drop for WebhookGuard {
    fn drop(&mut self) {
        if let Some(name) = self.0.take() {
            let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
            let _ = std::process::Command::new(kubectl)
                .args([
                    "delete",
                    "validatingwebhookconfiguration",
                    &name,
                    "--ignore-not-found",
                ])
                .status();
        }
    }
}

fn fixture(file: &str) -> Result<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(file);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {file}"))?;
    serde_saphyr::from_str(&text).with_context(|| format!("parsing {file}"))
}

fn api_for(client: &Client, ns: &str, object: &Value) -> Result<Api<DynamicObject>> {
    let api_version = object["apiVersion"].as_str().context("apiVersion")?;
    let kind = object["kind"].as_str().context("kind")?;
    let (group, version) = api_version.split_once('/').context("group/version")?;
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    Ok(Api::namespaced_with(client.clone(), ns, &ar))
}

async fn create(client: &Client, ns: &str, object: &Value) -> Result<DynamicObject, kube::Error> {
    let api = api_for(client, ns, object).expect("a fixture with apiVersion and kind");
    let object: DynamicObject =
        serde_json::from_value(object.clone()).expect("a Kubernetes object");
    api.create(&PostParams::default(), &object).await
}

/// Creating `object` is refused by our webhook, with `message` in the API server's answer.
async fn refused(
    client: &Client,
    ns: &str,
    hook: &str,
    object: &Value,
    message: &str,
) -> Result<()> {
    match create(client, ns, object).await {
        Ok(_) => bail!("the API server stored {object}; expected {hook} to refuse it"),
        Err(kube::Error::Api(status)) => {
            let want = format!("admission webhook \"{hook}\" denied the request: ");
            ensure!(
                status.message.contains(&want) && status.message.contains(message),
                "unexpected refusal: {}",
                status.message
            );
            Ok(())
        }
        Err(other) => Err(other.into()),
    }
}

/// The webhook answers as soon as the API server reaches it; until the configuration is
/// picked up, a bad object may still be stored, so wait for the first refusal.
async fn await_webhook(client: &Client, ns: &str) -> Result<()> {
    let probe = json!({
        "apiVersion": "linkerd.io/v1alpha2",
        "kind": "ServiceProfile",
        "metadata": {"name": "probe.svc.cluster.local"},
        "spec": {"routes": [{"name": "p", "condition": {"pathRegex": "("}}]},
    });
    eventually(
        "the API server calls the validating webhook",
        CONVERGE,
        || {
            let (client, ns, probe) = (client.clone(), ns.to_string(), probe.clone());
            async move {
                match create(&client, &ns, &probe).await {
                    Err(kube::Error::Api(s)) if s.message.contains("linkerd-sp-validator") => {
                        Ok(Ok(()))
                    }
                    Ok(_) => {
                        let api = api_for(&client, &ns, &probe)?;
                        api.delete("probe.svc.cluster.local", &DeleteParams::default())
                            .await?;
                        Ok(Err("stored".to_string()))
                    }
                    Err(e) => Ok(Err(e.to_string())),
                }
            }
        },
    )
    .await
}

#[tokio::test]
async fn the_api_server_refuses_bad_profiles_and_policy_with_our_message() -> Result<()> {
    with_temp_ns("validator", |client, ns| async move {
        install_crds(&client).await?;
        let running = Running::start(client.clone()).await?;
        let configs: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
        let name = format!("oxlink-{ns}");
        configs
            .create(&PostParams::default(), &webhook_config(&name, &ns, &running.url, &running.ca_pem)?)
            .await
            .context("registering the validating webhooks")?;
        let mut guard = WebhookGuard(Some(name.clone()));
        let result = async {
            await_webhook(&client, &ns).await?;

            // The workshop's profile is accepted and stored as written.
            let todoui = fixture("serviceprofile-todoui.yaml")?;
            let stored = create(&client, &ns, &todoui).await.context("the workshop's profile")?;
            ensure!(
                serde_json::to_value(&stored)?["spec"] == todoui["spec"],
                "stored {:?}",
                stored.data
            );

            // The same profile with a regex the proxy cannot compile: the schema lets it
            // through, our webhook does not.
            let mut bad = todoui.clone();
            bad["metadata"]["name"] = json!("todoui-bad.todo.svc.cluster.local");
            bad["spec"]["routes"][3]["condition"]["pathRegex"] = json!("/([^/]+");
            refused(
                &client,
                &ns,
                "linkerd-sp-validator.linkerd.io",
                &bad,
                r#"ServiceProfile "todoui-bad.todo.svc.cluster.local": spec.routes[3].condition.pathRegex: invalid regular expression "/([^/]+": unclosed group"#,
            )
            .await?;
            // An update that breaks a stored profile is refused too, and changes nothing.
            let api = api_for(&client, &ns, &todoui)?;
            let patch = json!({"spec": {"retryBudget": {"retryRatio": 0.2, "minRetriesPerSecond": 10, "ttl": "2m"}}});
            match api
                .patch("todoui.todo.svc.cluster.local", &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Err(kube::Error::Api(s)) if s.message.contains("spec.retryBudget.ttl: 2m is out of range") => {}
                other => bail!("expected the update to be refused, got {other:?}"),
            }
            let after = api.get("todoui.todo.svc.cluster.local").await?;
            ensure!(serde_json::to_value(&after)?["spec"] == todoui["spec"], "the refused update changed the profile");

            // Policy: what the CRD schemas cannot say.
            let na = json!({
                "apiVersion": "policy.linkerd.io/v1alpha1",
                "kind": "NetworkAuthentication",
                "metadata": {"name": "cluster"},
                "spec": {"networks": [{"cidr": "10.0.0.0/8", "except": ["192.168.0.0/16"]}]},
            });
            refused(&client, &ns, "linkerd-policy-validator.linkerd.io", &na,
                "spec.networks[0].except[0]: 192.168.0.0/16 is not inside 10.0.0.0/8").await?;
            let ap = json!({
                "apiVersion": "policy.linkerd.io/v1alpha1",
                "kind": "AuthorizationPolicy",
                "metadata": {"name": "web"},
                "spec": {"targetRef": {"group": "apps", "kind": "Deployment", "name": "web"}, "requiredAuthenticationRefs": []},
            });
            refused(&client, &ns, "linkerd-policy-validator.linkerd.io", &ap,
                "spec.targetRef: apps/Deployment cannot be targeted").await?;
            let mut good = ap.clone();
            good["spec"]["targetRef"] = json!({"group": "policy.linkerd.io", "kind": "Server", "name": "web"});
            create(&client, &ns, &good).await.context("a valid AuthorizationPolicy")?;
            let mut fine = na.clone();
            fine["spec"]["networks"][0]["except"] = json!(["10.1.0.0/16"]);
            create(&client, &ns, &fine).await.context("a valid NetworkAuthentication")?;

            // A Server that selects the pods and port of a stored one is refused, with
            // Linkerd's message naming that one; another port is fine, and so is an update of
            // the stored Server itself.
            let server = |name: &str, port: i32| json!({
                "apiVersion": "policy.linkerd.io/v1beta3",
                "kind": "Server",
                "metadata": {"name": name},
                "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "port": port},
            });
            create(&client, &ns, &server("web-http", 8080)).await.context("the first Server")?;
            refused(&client, &ns, "linkerd-policy-validator.linkerd.io", &server("web-too", 8080),
                &format!("Server spec '{ns}/web-http' already defines a policy for port 8080, \
                          and selects pods that would be selected by this Server")).await?;
            create(&client, &ns, &server("web-admin", 9990)).await.context("a Server on another port")?;
            api_for(&client, &ns, &server("web-http", 8080))?
                .patch("web-http", &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"podSelector": {"matchLabels": {}}}})))
                .await
                .context("an update of the stored Server itself")?;
            Ok(())
        }
        .await;
        let deleted = configs.delete(&name, &DeleteParams::default()).await;
        guard.0 = None;
        drop(running);
        result?;
        deleted.context("deleting the webhook configuration")?;
        Ok(())
    })
    .await
}
