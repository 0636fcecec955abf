//! `oxlink check` against the real API server: what passes on a healthy setup, and that each
//! problem is reported in its category.

use anyhow::{Context, Result, ensure};
use clap::Parser;
use k8s_openapi::{
    api::{
        admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration},
        apps::v1::Deployment,
        authentication::v1::{TokenRequest, TokenRequestSpec},
        core::v1::{ConfigMap, Namespace, Pod, PodTemplateSpec, Secret, Service, ServiceAccount},
        rbac::v1::{ClusterRole, ClusterRoleBinding},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, Resource,
    api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams},
    config::Kubeconfig,
};
use oxlink_crds::names::{annotations, control_plane as cp, labels};
use oxlink_e2e::{deployment, with_temp_ns};
use oxlink_proxy_injector::{
    InjectContext, Origin, Values, cert::SelfManagedCert, inject_template,
};
use oxlink_tls::generate;
use serde_json::{Value, json};
use std::{
    collections::BTreeMap,
    io::Write,
    path::PathBuf,
    process::Command,
    time::{Duration, SystemTime},
};

/// Runs `oxlink check ARGS -o json` on a blocking thread (the CLI runs its own runtime) and
/// returns whether it succeeded and the parsed report.
async fn check(args: &[&str]) -> Result<(bool, Value)> {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        check_blocking(&args)
    })
    .await?
}

fn check_blocking(args: &[&str]) -> Result<(bool, Value)> {
    let cli = oxlink_cli::Cli::try_parse_from(
        ["oxlink", "check"]
            .into_iter()
            .chain(args.iter().copied())
            .chain(["-o", "json"]),
    )?;
    let mut out = Vec::new();
    let ok = match cli.run(&mut out) {
        Ok(()) => true,
        Err(e) if oxlink_cli::is_reported(&e) => false,
        Err(e) => return Err(e),
    };
    let report: Value = serde_json::from_slice(&out).context("check -o json prints JSON")?;
    ensure!(
        report["success"] == ok,
        "exit status and report agree: {report:#}"
    );
    Ok((ok, report))
}

/// The result (`success`, `warning`, `error`) and error text of the check named `description`.
fn result_of(report: &Value, category: &str, description: &str) -> (String, String) {
    let check = report["categories"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["categoryName"] == category)
        .flat_map(|c| c["checks"].as_array().cloned().unwrap_or_default())
        .find(|c| c["description"] == description)
        .unwrap_or_else(|| panic!("no check {category}/{description} in {report:#}"));
    (
        check["result"].as_str().unwrap_or_default().to_string(),
        check["error"].as_str().unwrap_or_default().to_string(),
    )
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("oxlink-check-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn pre_passes_for_an_admin_and_names_what_stands_in_the_way() -> Result<()> {
    with_temp_ns("check-pre", |client, ns| async move {
        // A control plane namespace that does not exist yet: everything passes for an admin.
        let fresh = format!("{ns}-cp");
        let (ok, report) = check(&["--pre", "--wait", "0s", "-L", &fresh]).await?;
        ensure!(ok, "pre-flight passes for an admin: {report:#}");

        // The namespace already exists.
        let (ok, report) = check(&["--pre", "--wait", "0s", "-L", &ns]).await?;
        ensure!(!ok);
        let (result, error) = result_of(
            &report,
            "pre-kubernetes-setup",
            "control plane namespace does not already exist",
        );
        ensure!(result == "error" && error.contains(&format!("\"{ns}\" namespace already exists")));

        // A user without rights: a ServiceAccount's own token, checked by the API server's RBAC.
        let kubeconfig = service_account_kubeconfig(&client, &ns, "nobody").await?;
        let (ok, report) = check(&[
            "--pre",
            "--wait",
            "0s",
            "-L",
            &fresh,
            "--kubeconfig",
            &kubeconfig.display().to_string(),
        ])
        .await?;
        ensure!(!ok);
        let (result, error) = result_of(
            &report,
            "pre-kubernetes-setup",
            "can create non-namespaced resources",
        );
        ensure!(
            result == "error" && error.contains("missing permission to create clusterroles"),
            "{error}"
        );
        let (result, _) = result_of(&report, "pre-kubernetes-setup", "can create Deployments");
        ensure!(result == "error");
        let (result, _) = result_of(&report, "kubernetes-api", "can query the Kubernetes API");
        ensure!(
            result == "success",
            "the API itself is reachable with that token"
        );
        std::fs::remove_dir_all(kubeconfig.parent().unwrap())?;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn crds_pass_once_installed() -> Result<()> {
    let manifest = {
        let cli = oxlink_cli::Cli::try_parse_from(["oxlink", "install", "--crds"])?;
        let mut out = Vec::new();
        cli.run(&mut out)?;
        out
    };
    let mut apply = Command::new("kubectl")
        .args(["apply", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()?;
    apply.stdin.take().unwrap().write_all(&manifest)?;
    ensure!(apply.wait()?.success(), "kubectl apply of the CRDs");
    let (ok, report) = check(&["--crds", "--wait", "60s"]).await?;
    ensure!(ok, "{report:#}");
    let (result, _) = result_of(
        &report,
        "linkerd-crd",
        "control plane CustomResourceDefinitions exist",
    );
    ensure!(result == "success");
    Ok(())
}

/// Tests that install a control plane hold this: its webhook configurations have cluster-wide
/// names (Linkerd's), so two installs cannot live side by side.
static CONTROL_PLANE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What [`install_control_plane`] made that a test needs again.
struct Install {
    anchor: generate::GeneratedCa,
    values: Values,
}

/// A PEM document as the API server takes bytes in JSON (base64).
fn pem_bytes(pem: &str) -> Value {
    serde_json::to_value(k8s_openapi::ByteString(pem.as_bytes().to_vec())).unwrap_or_default()
}

/// Server-side applies `doc` as a `K` (in `ns` when given): creates or replaces it.
async fn apply<K: Resource<DynamicType = ()>>(
    client: &Client,
    ns: Option<&str>,
    mut doc: Value,
) -> Result<()> {
    let ar = ApiResource::erase::<K>(&());
    doc["apiVersion"] = json!(ar.api_version);
    doc["kind"] = json!(ar.kind);
    let obj: DynamicObject = serde_json::from_value(doc)?;
    let name = obj.metadata.name.clone().context("the object has a name")?;
    let api: Api<DynamicObject> = match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    api.patch(
        &name,
        &PatchParams::apply("oxlink-e2e").force(),
        &Patch::Apply(&obj),
    )
    .await
    .with_context(|| format!("applying {} {name}", ar.kind))?;
    Ok(())
}

/// The issuer Secret for a fresh issuer of `anchor` that lives `lifetime`.
async fn apply_issuer(
    client: &Client,
    ns: &str,
    anchor: &generate::GeneratedCa,
    lifetime: Duration,
) -> Result<()> {
    let issuer = generate::issuer(
        anchor,
        &format!("identity.{ns}.{}", cp::TRUST_DOMAIN),
        lifetime,
        SystemTime::now(),
    )?;
    apply::<Secret>(
        client,
        Some(ns),
        json!({
            "metadata": {"name": cp::IDENTITY_ISSUER_SECRET},
            "type": cp::ISSUER_SCHEME_LINKERD,
            "stringData": {cp::ISSUER_CRT_KEY: issuer.crt_pem, cp::ISSUER_KEY_KEY: issuer.key_pem},
        }),
    )
    .await
}

/// A control-plane Deployment `name` running as the ServiceAccount of the same name.
async fn apply_component(client: &Client, ns: &str, name: &str) -> Result<()> {
    let mut component = deployment(name, 1);
    component["metadata"]["labels"] = json!({labels::CONTROL_PLANE_NS: ns});
    component["spec"]["template"]["metadata"]["labels"][labels::CONTROL_PLANE_COMPONENT] =
        json!(name.trim_start_matches("linkerd-"));
    component["spec"]["template"]["spec"]["serviceAccountName"] = json!(name);
    apply::<Deployment>(client, Some(ns), component).await
}

/// A healthy control plane in `ns`, object for object as `oxlink install` lays it out: CRDs,
/// identity material, `linkerd-config`, RBAC, ServiceAccounts, Deployments (whose pods
/// localkube makes Ready), Services, the injector's serving certificate and the webhook
/// configurations carrying it as their `caBundle`. The webhooks point at a closed port and
/// ignore failures: nothing is served, but everything `check` reads is real.
async fn install_control_plane(client: &Client, ns: &str) -> Result<Install> {
    for crd in oxlink_crds::install::crds() {
        apply::<CustomResourceDefinition>(client, None, serde_json::to_value(crd)?).await?;
    }
    let now = SystemTime::now();
    let anchor = generate::trust_anchor(
        &format!("root.{ns}.{}", cp::TRUST_DOMAIN),
        Duration::from_secs(365 * 24 * 3600),
        now,
    )?;
    let values = Values {
        identity_trust_anchors_pem: anchor.crt_pem.clone(),
        ..Values::default()
    };
    let part_of = json!({labels::CONTROL_PLANE_NS: ns});
    apply::<ConfigMap>(
        client,
        Some(ns),
        json!({
            "metadata": {"name": cp::TRUST_ROOTS_CONFIGMAP, "labels": part_of},
            "data": {cp::TRUST_ROOTS_KEY: anchor.crt_pem},
        }),
    )
    .await?;
    apply::<ConfigMap>(
        client,
        Some(ns),
        json!({
            "metadata": {"name": cp::CONFIG_CONFIGMAP, "labels": part_of},
            "data": {cp::CONFIG_VALUES_KEY: serde_json::to_string(&values)?},
        }),
    )
    .await?;
    apply_issuer(client, ns, &anchor, Duration::from_secs(180 * 24 * 3600)).await?;

    for component in ["identity", "proxy-injector"] {
        let name = format!("linkerd-{ns}-{component}");
        let meta = json!({"name": name, "labels": part_of});
        apply::<ClusterRole>(client, None, json!({"metadata": meta, "rules": []})).await?;
        apply::<ClusterRoleBinding>(
            client,
            None,
            json!({
                "metadata": meta,
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
                "subjects": [{"kind": "ServiceAccount", "name": format!("linkerd-{component}"), "namespace": ns}],
            }),
        )
        .await?;
    }
    for name in [
        cp::DESTINATION_DEPLOYMENT,
        cp::IDENTITY_DEPLOYMENT,
        cp::PROXY_INJECTOR_DEPLOYMENT,
    ] {
        apply::<ServiceAccount>(
            client,
            Some(ns),
            json!({"metadata": {"name": name, "labels": part_of}}),
        )
        .await?;
        apply_component(client, ns, name).await?;
    }
    for (name, port, headless) in [
        (cp::IDENTITY_SERVICE, cp::IDENTITY_GRPC_PORT, false),
        (cp::IDENTITY_HEADLESS_SERVICE, cp::IDENTITY_GRPC_PORT, true),
        (cp::DESTINATION_SERVICE, cp::DESTINATION_GRPC_PORT, false),
        (
            cp::DESTINATION_HEADLESS_SERVICE,
            cp::DESTINATION_GRPC_PORT,
            true,
        ),
        (cp::POLICY_SERVICE, cp::POLICY_GRPC_PORT, true),
        (cp::PROXY_INJECTOR_SERVICE, 443, false),
    ] {
        let mut spec = json!({
            "selector": {labels::CONTROL_PLANE_NS: ns},
            "ports": [{"name": "grpc", "port": port}],
        });
        if headless {
            spec["clusterIP"] = json!("None");
        }
        apply::<Service>(
            client,
            Some(ns),
            json!({"metadata": {"name": name, "labels": part_of}, "spec": spec}),
        )
        .await?;
    }

    let serving = SelfManagedCert::for_service(
        ns,
        cp::PROXY_INJECTOR_SERVICE,
        cp::PROXY_INJECTOR_WEBHOOK_CONFIG,
    )
    .mint(now)?;
    apply::<Secret>(
        client,
        Some(ns),
        json!({
            "metadata": {"name": cp::PROXY_INJECTOR_TLS_SECRET, "labels": part_of},
            "type": cp::ISSUER_SCHEME_KUBERNETES,
            "stringData": {cp::TLS_CRT_KEY: serving.crt, cp::TLS_KEY_KEY: serving.key},
        }),
    )
    .await?;
    let webhook = |name: &str, path: &str, resource: &str| {
        json!({
            "name": name,
            "clientConfig": {
                "url": format!("https://127.0.0.1:1{path}"),
                "caBundle": pem_bytes(&serving.crt),
            },
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": [resource]}],
            "namespaceSelector": {"matchExpressions": [{
                "key": labels::ADMISSION_WEBHOOKS, "operator": "NotIn",
                "values": [labels::ADMISSION_WEBHOOKS_DISABLED],
            }]},
            "failurePolicy": "Ignore",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
        })
    };
    apply::<MutatingWebhookConfiguration>(
        client,
        None,
        json!({
            "metadata": {"name": cp::PROXY_INJECTOR_WEBHOOK_CONFIG, "labels": part_of},
            "webhooks": [webhook("linkerd-proxy-injector.linkerd.io", "/inject", "pods")],
        }),
    )
    .await?;
    apply::<ValidatingWebhookConfiguration>(
        client,
        None,
        json!({
            "metadata": {"name": cp::SP_VALIDATOR_WEBHOOK_CONFIG, "labels": part_of},
            "webhooks": [webhook("linkerd-sp-validator.linkerd.io", "/serviceprofile", "nonexistent")],
        }),
    )
    .await?;
    Ok(Install { anchor, values })
}

/// Removes the cluster-wide objects of the control plane in `ns`.
async fn uninstall_control_plane(client: &Client, ns: &str) -> Result<()> {
    let dp = DeleteParams::default();
    for component in ["identity", "proxy-injector"] {
        let name = format!("linkerd-{ns}-{component}");
        Api::<ClusterRole>::all(client.clone())
            .delete(&name, &dp)
            .await?;
        Api::<ClusterRoleBinding>::all(client.clone())
            .delete(&name, &dp)
            .await?;
    }
    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .delete(cp::PROXY_INJECTOR_WEBHOOK_CONFIG, &dp)
        .await?;
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .delete(cp::SP_VALIDATOR_WEBHOOK_CONFIG, &dp)
        .await?;
    Ok(())
}

/// A pod `name` in `ns` with the proxy added by the injector's own pure function, for the
/// control plane in `control_plane_ns`, trusting `anchors_pem`.
async fn apply_injected_pod(
    client: &Client,
    ns: &str,
    name: &str,
    control_plane_ns: &str,
    install: &Install,
    anchors_pem: &str,
) -> Result<()> {
    let template: PodTemplateSpec = serde_json::from_value(json!({
        "metadata": {
            "labels": {"app": "web"},
            "annotations": {annotations::INJECT: annotations::INJECT_ENABLED},
        },
        "spec": deployment("web", 1)["spec"]["template"]["spec"].clone(),
    }))?;
    let injection = inject_template(
        &template,
        &InjectContext {
            values: &install.values,
            trust_anchors_pem: anchors_pem,
            control_plane_namespace: control_plane_ns,
            namespace: ns,
            namespace_annotations: &BTreeMap::new(),
            owner: None,
            created_by: "oxlink/e2e",
            origin: Origin::Webhook,
        },
    );
    ensure!(
        injection.outcome.is_ok(),
        "injected: {:?}",
        injection.outcome
    );
    let mut pod = injection.template;
    pod["metadata"]["name"] = json!(name);
    apply::<Pod>(client, Some(ns), pod).await
}

/// The names of the categories in a report, in order.
fn categories(report: &Value) -> Vec<String> {
    report["categories"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["categoryName"].as_str().map(String::from))
        .collect()
}

/// Every check in the report that did not pass, as `category/description: error`.
fn problems(report: &Value) -> Vec<String> {
    report["categories"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| {
            c["checks"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|check| check["result"] != "success")
                .map(move |check| {
                    format!(
                        "{}/{}: {} {}",
                        c["categoryName"].as_str().unwrap_or_default(),
                        check["description"].as_str().unwrap_or_default(),
                        check["result"].as_str().unwrap_or_default(),
                        check["error"].as_str().unwrap_or_default()
                    )
                })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_healthy_install_passes_and_a_missing_deployment_fails_existence() -> Result<()> {
    let _only = CONTROL_PLANE.lock().await;
    with_temp_ns("check-cp", |client, ns| async move {
        let install = install_control_plane(&client, &ns).await?;
        let result = async {
            let (ok, report) = check(&["--wait", "60s", "-L", &ns]).await?;
            ensure!(ok, "a healthy install passes: {report:#}");
            ensure!(
                problems(&report).is_empty(),
                "no warnings either: {:#?}",
                problems(&report)
            );
            ensure!(
                categories(&report)
                    == [
                        "kubernetes-api",
                        "kubernetes-version",
                        "linkerd-existence",
                        "linkerd-config",
                        "linkerd-identity",
                        "linkerd-webhooks-and-apisvc-tls",
                        "control-plane-version",
                    ],
                "Linkerd's categories in Linkerd's order; the skipped ones left out: {:?}",
                categories(&report)
            );

            // The data plane: one pod injected by the injector's own function.
            let data = format!("{ns}-data");
            apply::<Namespace>(&client, None, json!({"metadata": {"name": data}})).await?;
            apply_injected_pod(&client, &data, "web", &ns, &install, &install.anchor.crt_pem)
                .await?;
            let (ok, report) =
                check(&["--proxy", "-n", &data, "--wait", "60s", "-L", &ns]).await?;
            ensure!(ok, "the proxy checks pass: {report:#}");
            ensure!(problems(&report).is_empty(), "{:#?}", problems(&report));
            for (category, description) in [
                ("linkerd-identity-data-plane", "data plane proxies certificate match CA"),
                ("linkerd-data-plane", "data plane namespace exists"),
                ("linkerd-data-plane", "data plane proxies are ready"),
                ("linkerd-data-plane", "data plane is up-to-date"),
                ("linkerd-data-plane", "data plane and cli versions match"),
            ] {
                let (result, error) = result_of(&report, category, description);
                ensure!(result == "success", "{category}/{description}: {error}");
            }
            ensure!(!categories(&report).contains(&"control-plane-version".to_string()));

            // A pod injected with other trust anchors: Linkerd's warning, naming it.
            let old = generate::trust_anchor(
                "old-root",
                Duration::from_secs(365 * 24 * 3600),
                SystemTime::now(),
            )?;
            apply_injected_pod(&client, &data, "stale", &ns, &install, &old.crt_pem).await?;
            let (ok, report) =
                check(&["--proxy", "-n", &data, "--wait", "60s", "-L", &ns]).await?;
            Api::<Namespace>::all(client.clone())
                .delete(&data, &DeleteParams::default())
                .await?;
            ensure!(ok, "a warning only: {report:#}");
            ensure!(
                problems(&report)
                    == ["linkerd-identity-data-plane/data plane proxies certificate match CA: \
                         warning Some pods do not have the current trust bundle and must be \
                         restarted:\n\t* stale"],
                "{:#?}",
                problems(&report)
            );

            // Without the data plane namespace: that category's first check stops the run.
            let (ok, report) =
                check(&["--proxy", "-n", "no-such-ns", "--wait", "0s", "-L", &ns]).await?;
            ensure!(!ok);
            let (result, error) =
                result_of(&report, "linkerd-data-plane", "data plane namespace exists");
            ensure!(
                result == "error" && error == "The \"no-such-ns\" namespace does not exist",
                "{result} {error}"
            );

            // One control-plane Deployment goes: linkerd-existence fails, and nothing after it
            // runs (Linkerd's fatal check).
            Api::<Deployment>::namespaced(client.clone(), &ns)
                .delete(cp::DESTINATION_DEPLOYMENT, &DeleteParams::default())
                .await?;
            let (ok, report) = check(&["--wait", "0s", "-L", &ns]).await?;
            ensure!(!ok, "a missing Deployment fails the check: {report:#}");
            ensure!(
                problems(&report)
                    == ["linkerd-existence/control plane pods are ready: error No running pods for \"linkerd-destination\""],
                "{:#?}",
                problems(&report)
            );
            ensure!(
                categories(&report).last().map(String::as_str) == Some("linkerd-existence"),
                "{:?}",
                categories(&report)
            );
            let failed = &report["categories"][2]["checks"]
                .as_array()
                .context("checks")?
                .iter()
                .find(|c| c["result"] == "error")
                .context("the failed check")?
                .clone();
            ensure!(failed["hint"] == "https://linkerd.io/2/checks/#l5d-api-control-ready");

            // It comes back while `check --wait` is waiting: the check then passes.
            let late = {
                let (client, ns) = (client.clone(), ns.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    apply_component(&client, &ns, cp::DESTINATION_DEPLOYMENT).await
                })
            };
            let (ok, report) = check(&["--wait", "60s", "-L", &ns]).await?;
            late.await??;
            ensure!(ok, "passes once every pod is ready again: {report:#}");
            Ok(())
        }
        .await;
        uninstall_control_plane(&client, &ns).await?;
        result
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_are_judged_in_their_categories() -> Result<()> {
    let _only = CONTROL_PLANE.lock().await;
    with_temp_ns("check-certs", |client, ns| async move {
        let install = install_control_plane(&client, &ns).await?;
        let result = async {
            // An issuer with 30 days left: Linkerd's warning, which does not fail the run.
            apply_issuer(
                &client,
                &ns,
                &install.anchor,
                Duration::from_secs(30 * 24 * 3600),
            )
            .await?;
            let (ok, report) = check(&["--wait", "60s", "-L", &ns]).await?;
            ensure!(ok, "a warning keeps the exit code 0: {report:#}");
            let (result, error) = result_of(
                &report,
                "linkerd-identity",
                "issuer cert is valid for at least 60 days",
            );
            ensure!(
                result == "warning" && error.starts_with("issuer certificate will expire on "),
                "{result} {error}"
            );
            ensure!(
                problems(&report).len() == 1,
                "only that: {:#?}",
                problems(&report)
            );

            // An anchor with 30 days left beside the installed one: the same warning, naming it;
            // and a trust anchor rotation left unfinished: a warning naming its step.
            let short = generate::trust_anchor(
                "short-lived",
                Duration::from_secs(30 * 24 * 3600),
                SystemTime::now(),
            )?;
            let roots = |bundle: String, rotation: Option<&str>| {
                json!({
                    "metadata": {
                        "name": cp::TRUST_ROOTS_CONFIGMAP,
                        "labels": {labels::CONTROL_PLANE_NS: &ns},
                        "annotations": rotation
                            .map(|r| json!({annotations::ANCHOR_ROTATION: r}))
                            .unwrap_or_else(|| json!({})),
                    },
                    "data": {cp::TRUST_ROOTS_KEY: bundle},
                })
            };
            let unfinished = r#"{"step":"switch-issuer","newAnchor":"00","newAnchorSubject":"CN=short-lived","startedAt":"2026-01-01T00:00:00Z"}"#;
            apply::<ConfigMap>(
                &client,
                Some(&ns),
                roots(
                    format!("{}{}", install.anchor.crt_pem, short.crt_pem),
                    Some(unfinished),
                ),
            )
            .await?;
            let (ok, report) = check(&["--wait", "60s", "-L", &ns]).await?;
            ensure!(ok, "warnings keep the exit code 0: {report:#}");
            let (result, error) = result_of(
                &report,
                "linkerd-identity",
                "trust anchors are valid for at least 60 days",
            );
            ensure!(
                result == "warning"
                    && error.starts_with("Anchors expiring soon:")
                    && error.contains("CN=short-lived will expire on ")
                    && !error.contains(&format!("root.{ns}")),
                "{result} {error}"
            );
            let (result, error) = result_of(
                &report,
                "linkerd-identity",
                "no trust anchor rotation is left unfinished",
            );
            ensure!(
                result == "warning" && error.contains("is at step 3/7"),
                "{result} {error}"
            );
            ensure!(
                problems(&report).len() == 3,
                "only those and the issuer's: {:#?}",
                problems(&report)
            );
            apply::<ConfigMap>(
                &client,
                Some(&ns),
                roots(install.anchor.crt_pem.clone(), None),
            )
            .await?;

            // An issuer from another trust anchor: an error in linkerd-identity.
            let stranger = generate::trust_anchor(
                "someone-else",
                Duration::from_secs(365 * 24 * 3600),
                SystemTime::now(),
            )?;
            apply_issuer(&client, &ns, &stranger, Duration::from_secs(90 * 24 * 3600)).await?;
            let (ok, report) = check(&["--wait", "0s", "-L", &ns]).await?;
            ensure!(!ok);
            let (result, _) = result_of(
                &report,
                "linkerd-identity",
                "issuer cert is issued by the trust anchor",
            );
            ensure!(result == "error", "{:#?}", problems(&report));
            apply_issuer(
                &client,
                &ns,
                &install.anchor,
                Duration::from_secs(90 * 24 * 3600),
            )
            .await?;

            // The webhook's caBundle no longer matches the injector's certificate.
            let other = SelfManagedCert::for_service(
                &ns,
                cp::PROXY_INJECTOR_SERVICE,
                cp::PROXY_INJECTOR_WEBHOOK_CONFIG,
            )
            .mint(SystemTime::now())?;
            Api::<MutatingWebhookConfiguration>::all(client.clone())
                .patch(
                    cp::PROXY_INJECTOR_WEBHOOK_CONFIG,
                    &PatchParams::default(),
                    &Patch::Json::<()>(serde_json::from_value(json!([{
                        "op": "replace",
                        "path": "/webhooks/0/clientConfig/caBundle",
                        "value": pem_bytes(&other.crt),
                    }]))?),
                )
                .await?;
            let (ok, report) = check(&["--wait", "0s", "-L", &ns]).await?;
            ensure!(!ok);
            ensure!(
                problems(&report).len() == 1,
                "only the webhook, and the run stops there: {:#?}",
                problems(&report)
            );
            let (result, error) = result_of(
                &report,
                "linkerd-webhooks-and-apisvc-tls",
                "proxy-injector webhook has valid cert",
            );
            ensure!(
                result == "error" && error.starts_with("cert is not issued by the trust anchor: "),
                "{result} {error}"
            );
            Ok(())
        }
        .await;
        uninstall_control_plane(&client, &ns).await?;
        result
    })
    .await
}

/// A kubeconfig file for the cluster in `KUBECONFIG` that authenticates as a fresh
/// ServiceAccount `name` in `ns`, which has no rights at all.
async fn service_account_kubeconfig(client: &Client, ns: &str, name: &str) -> Result<PathBuf> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    accounts
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}}))?,
        )
        .await?;
    let token = accounts
        .create_token_request(
            name,
            &PostParams::default(),
            &TokenRequest {
                spec: TokenRequestSpec {
                    audiences: vec![],
                    expiration_seconds: Some(600),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await?
        .status
        .context("token status")?
        .token;
    let admin = Kubeconfig::read()?;
    let context = admin.current_context.clone().context("a current context")?;
    let cluster_name = admin
        .contexts
        .iter()
        .find(|c| c.name == context)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .context("the current context's cluster")?;
    let cluster = admin
        .clusters
        .iter()
        .find(|c| c.name == cluster_name)
        .and_then(|c| c.cluster.clone())
        .context("the cluster entry")?;
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {
            "server": cluster.server,
            "certificate-authority-data": cluster.certificate_authority_data,
        }}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": name}}],
        "current-context": "sa",
    });
    let dir = scratch(name);
    let path = dir.join("kubeconfig");
    std::fs::write(&path, serde_json::to_vec(&doc)?)?;
    Ok(path)
}
