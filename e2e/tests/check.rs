//! `oxlink check` against the real API server: what passes on a healthy setup, and that each
//! problem is reported in its category.

use anyhow::{Context, Result, ensure};
use clap::Parser;
use k8s_openapi::{
    ByteString,
    api::{
        authentication::v1::{TokenRequest, TokenRequestSpec},
        core::v1::{ConfigMap, Secret, ServiceAccount},
    },
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
    config::Kubeconfig,
};
use oxlink_crds::names::control_plane as cp;
use oxlink_e2e::{deployment, with_temp_ns};
use serde_json::{Value, json};
use std::{io::Write, path::PathBuf, process::Command};

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

#[tokio::test(flavor = "multi_thread")]
async fn control_plane_checks_report_missing_pods_and_a_short_lived_issuer() -> Result<()> {
    with_temp_ns("check-cp", |client, ns| async move {
        // Identity material with an issuer that expires in 30 days.
        let pki = scratch("pki");
        let cli = oxlink_cli::Cli::try_parse_from([
            "oxlink",
            "identity",
            "generate",
            "--dir",
            &pki.display().to_string(),
            "--issuer-lifetime",
            "720h",
        ])?;
        cli.run(&mut Vec::new())?;
        let read = |f: &str| std::fs::read_to_string(pki.join(f));
        let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        configmaps
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "metadata": {"name": cp::TRUST_ROOTS_CONFIGMAP},
                    "data": {cp::TRUST_ROOTS_KEY: read("ca.crt")?},
                }))?,
            )
            .await?;
        configmaps
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "metadata": {"name": cp::CONFIG_CONFIGMAP},
                    "data": {cp::CONFIG_VALUES_KEY: "{}"},
                }))?,
            )
            .await?;
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
        let mut issuer = Secret {
            metadata: ObjectMeta {
                name: Some(cp::IDENTITY_ISSUER_SECRET.into()),
                ..Default::default()
            },
            type_: Some(cp::ISSUER_SCHEME_LINKERD.into()),
            ..Default::default()
        };
        issuer.data = Some(
            [
                (
                    cp::ISSUER_CRT_KEY.to_string(),
                    ByteString(read("issuer.crt")?.into_bytes()),
                ),
                (
                    cp::ISSUER_KEY_KEY.to_string(),
                    ByteString(read("issuer.key")?.into_bytes()),
                ),
            ]
            .into(),
        );
        secrets.create(&PostParams::default(), &issuer).await?;
        std::fs::remove_dir_all(&pki)?;

        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
        for sa in [
            cp::IDENTITY_SERVICE_ACCOUNT,
            cp::DESTINATION_SERVICE_ACCOUNT,
            cp::PROXY_INJECTOR_SERVICE_ACCOUNT,
        ] {
            accounts
                .create(
                    &PostParams::default(),
                    &serde_json::from_value(json!({"metadata": {"name": sa}}))?,
                )
                .await?;
        }
        // Two of the three control-plane Deployments.
        deploy(&client, &ns, cp::IDENTITY_SERVICE_ACCOUNT).await?;
        deploy(&client, &ns, cp::DESTINATION_SERVICE_ACCOUNT).await?;

        let (ok, report) = check(&["--wait", "10s", "-L", &ns]).await?;
        ensure!(!ok, "a missing Deployment fails the check: {report:#}");
        let (result, error) =
            result_of(&report, "linkerd-existence", "control plane pods are ready");
        ensure!(result == "error", "{report:#}");
        ensure!(
            error == "No running pods for \"linkerd-proxy-injector\"",
            "only the missing one: {error}"
        );
        for (category, description) in [
            ("linkerd-config", "control plane Namespace exists"),
            ("linkerd-config", "control plane ServiceAccounts exist"),
            ("linkerd-existence", "'linkerd-config' config map exists"),
            ("linkerd-identity", "certificate config is valid"),
            (
                "linkerd-identity",
                "trust anchors are within their validity period",
            ),
            (
                "linkerd-identity",
                "trust anchors are valid for at least 60 days",
            ),
            (
                "linkerd-identity",
                "issuer cert is within its validity period",
            ),
            (
                "linkerd-identity",
                "issuer cert is issued by the trust anchor",
            ),
        ] {
            let (result, error) = result_of(&report, category, description);
            ensure!(
                result == "success",
                "{category}/{description}: {result} {error}"
            );
        }
        let (result, error) = result_of(
            &report,
            "linkerd-identity",
            "issuer cert is valid for at least 60 days",
        );
        ensure!(
            result == "warning" && error.contains("will expire on"),
            "{result} {error}"
        );

        // The last Deployment arrives while `check --wait` is waiting: it then passes.
        let late = {
            let (client, ns) = (client.clone(), ns.clone());
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                deploy(&client, &ns, cp::PROXY_INJECTOR_SERVICE_ACCOUNT).await
            })
        };
        let (ok, report) = check(&["--wait", "60s", "-L", &ns]).await?;
        late.await??;
        ensure!(ok, "passes once every pod is ready: {report:#}");
        Ok(())
    })
    .await
}

async fn deploy(client: &Client, ns: &str, name: &str) -> Result<()> {
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), ns);
    let mut component = deployment(name, 1);
    component["spec"]["template"]["spec"]["serviceAccountName"] = json!(name);
    deployments
        .create(&PostParams::default(), &serde_json::from_value(component)?)
        .await?;
    Ok(())
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
