//! `oxlink install` / `upgrade` / `uninstall` and the `oxlink-control-plane` chart, with the real
//! `helm` and `kubectl` on a real API server:
//!
//! - `oxlink install` renders exactly what `helm template` renders from the same chart and values
//!   (default, `--ha`, and `--set`), the `values` document inside `linkerd-config` included;
//! - on the cluster, install is refused without the CRDs, every object (default and HA) passes a
//!   server-side dry-run apply, a second install is refused, `upgrade` keeps the issuer, and
//!   `uninstall` lists everything install created.
//!
//! The lifecycle test owns the cluster's `linkerd` namespace and the CRDs while it runs (it
//! deletes and reinstalls the CRDs), and removes the control plane again at the end.

use anyhow::{Context, Result, ensure};
use oxlink_e2e::cli::{
    kubectl, oxlink, oxlink_binary, tool, uninstall_control_plane, wait_for_control_plane,
};
use oxlink_tls::fixtures;
use serde_json::{Value, json};
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/oxlink-control-plane")
}

/// A directory with the fixture trust anchors and issuer, as files and as a Helm values file.
fn identity_dir(name: &str) -> Result<PathBuf> {
    let dir =
        std::env::temp_dir().join(format!("oxlink-e2e-install-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("ca.crt"), fixtures::ANCHOR_CRT)?;
    std::fs::write(dir.join("issuer.crt"), fixtures::ISSUER_CRT)?;
    std::fs::write(dir.join("issuer.key"), fixtures::ISSUER_KEY)?;
    let values = json!({
        "installNamespace": true,
        "identityTrustAnchorsPEM": fixtures::ANCHOR_CRT,
        "identity": {"issuer": {"tls": {"crtPEM": fixtures::ISSUER_CRT, "keyPEM": fixtures::ISSUER_KEY}}},
    });
    std::fs::write(dir.join("identity.yaml"), serde_json::to_string(&values)?)?;
    Ok(dir)
}

/// `oxlink install` arguments that use the fixture identity in `dir`.
fn identity_args(dir: &Path) -> Vec<String> {
    [
        ("--identity-trust-anchors-file", "ca.crt"),
        ("--identity-issuer-certificate-file", "issuer.crt"),
        ("--identity-issuer-key-file", "issuer.key"),
    ]
    .iter()
    .flat_map(|(flag, file)| [flag.to_string(), dir.join(file).display().to_string()])
    .collect()
}

type Key = (String, String, String, String);

/// The objects of a manifest by (apiVersion, kind, namespace, name), with the `values` of
/// `linkerd-config` parsed so that they compare as data, not text.
fn objects(manifest: &str) -> Result<BTreeMap<Key, Value>> {
    let mut objects = BTreeMap::new();
    for mut object in serde_saphyr::from_multiple::<Value>(manifest)? {
        if object.is_null() {
            continue;
        }
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        if object["kind"] == "ConfigMap" && object["metadata"]["name"] == "linkerd-config" {
            let values: Value = serde_saphyr::from_str(&text(&object["data"]["values"]))?;
            object["data"]["values"] = values;
        }
        let key = (
            text(&object["apiVersion"]),
            text(&object["kind"]),
            text(&object["metadata"]["namespace"]),
            text(&object["metadata"]["name"]),
        );
        ensure!(
            objects.insert(key.clone(), object).is_none(),
            "{key:?} is rendered twice"
        );
    }
    Ok(objects)
}

/// `oxlink install` and `helm template` of the chart agree object for object.
fn assert_same_as_helm(case: &str, ha: bool, set: &[&str]) -> Result<()> {
    let dir = identity_dir(case)?;
    let mut ours: Vec<String> = vec!["install".into(), "--ignore-cluster".into()];
    ours.extend(identity_args(&dir));
    let chart = chart_dir().display().to_string();
    let ha_file = chart_dir().join("values-ha.yaml").display().to_string();
    let identity = dir.join("identity.yaml").display().to_string();
    let mut helm: Vec<&str> = vec![
        "template",
        "linkerd",
        &chart,
        "--namespace",
        "linkerd",
        "-f",
        &identity,
    ];
    if ha {
        ours.push("--ha".into());
        helm.extend(["-f", &ha_file]);
    }
    for s in set {
        ours.extend(["--set".to_string(), s.to_string()]);
        helm.extend(["--set", s]);
    }
    let ours = objects(&oxlink(
        &ours.iter().map(String::as_str).collect::<Vec<_>>(),
    )?)?;
    let theirs = objects(&tool("helm", &helm, None)?)?;
    ensure!(
        ours.keys().eq(theirs.keys()),
        "{case}: different objects\noxlink: {:?}\nhelm:   {:?}",
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>()
    );
    for (key, object) in &ours {
        ensure!(
            object == &theirs[key],
            "{case}: {key:?} differs\noxlink: {object:#}\nhelm:   {:#}",
            theirs[key]
        );
    }
    ensure!(ours.len() >= 30, "{case}: only {} objects", ours.len());
    Ok(())
}

#[test]
fn install_renders_what_helm_renders() -> Result<()> {
    assert_same_as_helm("default", false, &[])?;
    assert_same_as_helm("ha", true, &[])?;
    assert_same_as_helm(
        "set",
        false,
        &[
            "controllerReplicas=2,controllerLogLevel=debug",
            "webhook.url=https://127.0.0.1:18443",
            "identity.externalCA=true",
            "nodeSelector=null",
            "networkPolicy.enabled=true",
            "networkPolicy.apiServerCIDRs={172.18.0.2/32,fd00::2/128}",
            "destinationRequireClientIdentity=true",
        ],
    )
}

/// `kubectl apply --dry-run=server` accepts every object, and reports each one.
fn dry_run(manifest: &str) -> Result<()> {
    let out = kubectl(&["apply", "--dry-run=server", "-f", "-"], Some(manifest))?;
    let expected = objects(manifest)?.len();
    let reported = out
        .lines()
        .filter(|l| l.ends_with("(server dry run)"))
        .count();
    ensure!(
        reported == expected,
        "{reported} of {expected} objects reported:\n{out}"
    );
    Ok(())
}

fn crd_names() -> Vec<String> {
    oxlink_crds::install::crds()
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .map(|n| format!("crd/{n}"))
        .collect()
}

fn issuer_secret_data() -> Result<Value> {
    let out = kubectl(
        &[
            "get",
            "secret",
            "-n",
            "linkerd",
            "linkerd-identity-issuer",
            "-o",
            "json",
        ],
        None,
    )?;
    Ok(serde_json::from_str::<Value>(&out)?["data"].clone())
}

#[test]
fn lifecycle_on_the_cluster() -> Result<()> {
    let dir = identity_dir("lifecycle")?;
    let args = identity_args(&dir);
    let install = |extra: &[&str]| {
        let mut all: Vec<&str> = vec!["install"];
        all.extend(args.iter().map(String::as_str));
        all.extend(extra);
        oxlink(&all)
    };

    // Without the CRDs, install is refused with Linkerd's message and prints nothing.
    let mut delete: Vec<String> = vec![
        "delete".into(),
        "--ignore-not-found".into(),
        "--wait".into(),
    ];
    delete.extend(crd_names());
    kubectl(&delete.iter().map(String::as_str).collect::<Vec<_>>(), None)?;
    let error = format!("{:#}", install(&[]).unwrap_err());
    ensure!(
        error.contains(
            "Linkerd CRDs must be installed first. Run oxlink install with the --crds flag."
        ),
        "{error}"
    );
    // The same through the built binary, as a user meets it: exit code 1, the message on
    // stderr once, nothing on stdout (so `| kubectl apply -f -` applies nothing).
    let mut all: Vec<&str> = vec!["install"];
    all.extend(args.iter().map(String::as_str));
    let run = oxlink_binary(&all)?;
    ensure!(run.code == Some(1), "exit code 1: {run:?}");
    ensure!(run.stdout.is_empty(), "nothing on stdout: {run:?}");
    ensure!(
        run.stderr
            .matches("Linkerd CRDs must be installed first")
            .count()
            == 1,
        "the message once on stderr: {run:?}"
    );

    kubectl(
        &["apply", "-f", "-"],
        Some(&oxlink(&["install", "--crds"])?),
    )?;
    let mut wait: Vec<String> = vec![
        "wait".into(),
        "--for=condition=Established".into(),
        "--timeout=60s".into(),
    ];
    wait.extend(crd_names());
    kubectl(&wait.iter().map(String::as_str).collect::<Vec<_>>(), None)?;

    // The namespace first (namespaced objects cannot be dry-run into a missing namespace),
    // then every object, default and HA, through the API server's validation and admission.
    let manifest = install(&[])?;
    let namespace: Vec<&str> = manifest
        .split("\n---\n")
        .filter(|d| d.contains("\nkind: Namespace\n"))
        .collect();
    ensure!(namespace.len() == 1, "one Namespace is rendered");
    kubectl(&["apply", "-f", "-"], Some(namespace[0]))?;
    let result = dry_run(&manifest)
        .and_then(|()| dry_run(&install(&["--ha"])?))
        .and_then(|()| external_issuer(&dir))
        .and_then(|()| installed_lifecycle(&manifest, &install));
    // Whatever happened, leave no control plane (and so no webhooks) behind; the CRDs stay.
    let cleanup = uninstall_control_plane();
    result.and(cleanup)
}

fn installed_lifecycle(manifest: &str, install: &dyn Fn(&[&str]) -> Result<String>) -> Result<()> {
    kubectl(&["apply", "-f", "-"], Some(manifest))?;
    // The pods are admitted (the namespace enforces the `restricted` Pod Security Standard),
    // scheduled and ready.
    wait_for_control_plane()?;
    let error = format!("{:#}", install(&[]).unwrap_err());
    ensure!(
        error.contains("ConfigMap linkerd-config already exists"),
        "{error}"
    );

    least_privilege()?;

    // Upgrade: new settings, same issuer — in the manifest and on the cluster after applying it.
    let before = issuer_secret_data()?;
    let upgrade = oxlink(&["upgrade", "--set", "controllerLogLevel=debug", "--ha"])?;
    let upgraded = objects(&upgrade)?;
    let installed = objects(manifest)?;
    let secret = |objects: &BTreeMap<Key, Value>| {
        objects
            .iter()
            .find(|(k, _)| k.1 == "Secret" && k.3 == "linkerd-identity-issuer")
            .map(|(_, v)| v["data"].clone())
    };
    ensure!(
        secret(&upgraded).is_some() && secret(&upgraded) == secret(&installed),
        "the upgrade keeps the issuer"
    );
    let deployment = upgraded
        .iter()
        .find(|(k, _)| k.1 == "Deployment" && k.3 == "linkerd-identity")
        .map(|(_, v)| v.clone())
        .context("the upgrade renders the identity Deployment")?;
    ensure!(
        deployment["spec"]["replicas"] == 3,
        "--ha applies: {deployment:#}"
    );
    ensure!(
        deployment.to_string().contains("--log-level=debug"),
        "--set applies"
    );
    kubectl(&["apply", "-f", "-"], Some(&upgrade))?;
    ensure!(
        issuer_secret_data()? == before,
        "the issuer Secret is unchanged on the cluster"
    );
    let config = kubectl(
        &[
            "get",
            "configmap",
            "-n",
            "linkerd",
            "linkerd-config",
            "-o",
            "jsonpath={.data.values}",
        ],
        None,
    )?;
    let stored: Value = serde_saphyr::from_str(&config)?;
    ensure!(
        stored["controllerReplicas"] == 3.0 || stored["controllerReplicas"] == 3,
        "{stored:#}"
    );
    ensure!(
        stored["identity"]["issuer"]["tls"].get("keyPEM").is_none(),
        "the key stays out of linkerd-config"
    );

    // A second upgrade without changes keeps what the first one set.
    let again = objects(&oxlink(&["upgrade"])?)?;
    ensure!(
        again == upgraded,
        "an upgrade without changes re-renders the installed state"
    );

    // Uninstall lists every object install created, and the CRDs.
    let listed = objects(&oxlink(&["uninstall"])?)?;
    for key in installed.keys() {
        ensure!(listed.contains_key(key), "uninstall lists {key:?}");
    }
    ensure!(
        listed
            .keys()
            .filter(|k| k.1 == "CustomResourceDefinition")
            .count()
            == crd_names().len(),
        "uninstall lists the CRDs"
    );
    Ok(())
}

/// `kubectl auth can-i` as a control-plane ServiceAccount: "yes" or "no" (exit code 1).
fn can_i(service_account: &str, request: &str) -> Result<bool> {
    let mut args = vec!["auth", "can-i"];
    args.extend(request.split_whitespace());
    let user = format!("--as=system:serviceaccount:linkerd:{service_account}");
    args.push(&user);
    let out = Command::new("kubectl")
        .args(&args)
        .output()
        .context("running kubectl")?;
    match String::from_utf8_lossy(&out.stdout).trim() {
        "yes" => Ok(true),
        "no" => Ok(false),
        other => anyhow::bail!(
            "kubectl {args:?}: {other:?} {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Each controller's RBAC allows what it uses and not its neighbours' objects. (The Gateway
/// API CRDs are installed first: `kubectl auth can-i` answers "no" for a resource the API
/// server does not serve.)
fn least_privilege() -> Result<()> {
    let gateway =
        json!({"apiVersion": "v1", "kind": "List", "items": oxlink_crds::gateway::crds()});
    kubectl(&["apply", "-f", "-"], Some(&gateway.to_string()))?;
    kubectl(
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/grpcroutes.gateway.networking.k8s.io",
        ],
        None,
    )?;
    let cases: &[(&str, &str, bool)] = &[
        (
            "linkerd-identity",
            "create tokenreviews.authentication.k8s.io",
            true,
        ),
        (
            "linkerd-identity",
            "create events.events.k8s.io -n emojivoto",
            true,
        ),
        (
            "linkerd-identity",
            "watch secrets/linkerd-identity-issuer -n linkerd",
            true,
        ),
        (
            "linkerd-identity",
            "get configmaps/linkerd-identity-trust-roots -n linkerd",
            true,
        ),
        (
            "linkerd-identity",
            "get secrets/linkerd-proxy-injector-k8s-tls -n linkerd",
            false,
        ),
        ("linkerd-identity", "list secrets -n linkerd", false),
        // Local token verification: bound objects (metadata) and the issuer's keys.
        ("linkerd-identity", "watch pods", true),
        ("linkerd-identity", "list serviceaccounts", true),
        ("linkerd-identity", "get /openid/v1/jwks", true),
        ("linkerd-identity", "get pods", false),
        ("linkerd-destination", "watch pods", true),
        (
            "linkerd-destination",
            "list endpointslices.discovery.k8s.io",
            true,
        ),
        ("linkerd-destination", "watch nodes", true),
        (
            "linkerd-destination",
            "list serviceprofiles.linkerd.io",
            true,
        ),
        (
            "linkerd-destination",
            "watch servers.policy.linkerd.io",
            true,
        ),
        (
            "linkerd-destination",
            "watch httproutes.policy.linkerd.io",
            true,
        ),
        (
            "linkerd-destination",
            "watch grpcroutes.gateway.networking.k8s.io",
            true,
        ),
        (
            "linkerd-destination",
            "watch trafficsplits.split.smi-spec.io",
            true,
        ),
        (
            "linkerd-destination",
            "watch externalworkloads.workload.linkerd.io",
            true,
        ),
        ("linkerd-destination", "get secrets -n linkerd", false),
        ("linkerd-destination", "create pods", false),
        ("linkerd-proxy-injector", "watch namespaces", true),
        ("linkerd-proxy-injector", "list replicasets.apps", true),
        ("linkerd-proxy-injector", "watch jobs.batch", true),
        (
            "linkerd-proxy-injector",
            "patch events.events.k8s.io -n emojivoto",
            true,
        ),
        ("linkerd-proxy-injector", "create secrets -n linkerd", true),
        (
            "linkerd-proxy-injector",
            "update secrets/linkerd-proxy-injector-k8s-tls -n linkerd",
            true,
        ),
        (
            "linkerd-proxy-injector",
            "patch mutatingwebhookconfigurations/linkerd-proxy-injector-webhook-config",
            true,
        ),
        (
            "linkerd-proxy-injector",
            "patch validatingwebhookconfigurations/linkerd-policy-validator-webhook-config",
            true,
        ),
        (
            "linkerd-proxy-injector",
            "patch mutatingwebhookconfigurations/someone-elses",
            false,
        ),
        (
            "linkerd-proxy-injector",
            "get secrets/linkerd-identity-issuer -n linkerd",
            false,
        ),
        ("linkerd-proxy-injector", "create secrets -n default", false),
        ("linkerd-proxy-injector", "list pods", false),
    ];
    for (service_account, request, want) in cases {
        let got = can_i(service_account, request)?;
        ensure!(
            got == *want,
            "{service_account} can-i {request}: {got}, want {want}"
        );
    }
    Ok(())
}

/// `--identity-external-issuer` reads the trust anchors from the `ca.crt` of an issuer Secret
/// that something else (cert-manager) manages, and renders no Secret of its own.
fn external_issuer(dir: &Path) -> Result<()> {
    let error = format!(
        "{:#}",
        oxlink(&["install", "--identity-external-issuer"]).unwrap_err()
    );
    ensure!(
        error.contains("Secret linkerd/linkerd-identity-issuer does not exist yet"),
        "{error}"
    );
    let file = |key: &str, name: &str| format!("--from-file={key}={}", dir.join(name).display());
    kubectl(
        &[
            "create",
            "secret",
            "generic",
            "linkerd-identity-issuer",
            "-n",
            "linkerd",
            "--type=kubernetes.io/tls",
            &file("tls.crt", "issuer.crt"),
            &file("tls.key", "issuer.key"),
            &file("ca.crt", "ca.crt"),
        ],
        None,
    )?;
    let result = (|| {
        let manifest = oxlink(&["install", "--identity-external-issuer"])?;
        let rendered = objects(&manifest)?;
        ensure!(
            !rendered.keys().any(|k| k.1 == "Secret"),
            "no issuer Secret is rendered"
        );
        let roots = rendered
            .iter()
            .find(|(k, _)| k.3 == "linkerd-identity-trust-roots")
            .map(|(_, v)| v["data"]["ca-bundle.crt"].clone())
            .context("the trust roots are rendered")?;
        ensure!(
            roots == fixtures::ANCHOR_CRT,
            "the anchors come from ca.crt: {roots}"
        );
        dry_run(&manifest)
    })();
    kubectl(
        &[
            "delete",
            "secret",
            "-n",
            "linkerd",
            "linkerd-identity-issuer",
        ],
        None,
    )?;
    result
}
