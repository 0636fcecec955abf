//! The CRDs on a real API server: `oxlink install --crds | kubectl apply -f -` establishes
//! them, our fixtures apply and read back into our types unchanged, invalid objects are
//! rejected with the offending field named, and the Helm chart installs the same CRDs.
//!
//! CRDs are cluster-scoped and shared by every test here (and stay installed afterwards);
//! objects live in each test's temporary namespace.

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client, CustomResourceExt, Resource,
    api::{ApiResource, DynamicObject, GroupVersionKind, PostParams},
    core::object::HasSpec,
};
use oxlink_crds::{
    ExternalWorkload, ServiceProfile, TrafficSplit,
    policy::{
        AuthorizationPolicy, EgressNetwork, HttpLocalRateLimitPolicy, HttpRoute,
        MeshTlsAuthentication, NetworkAuthentication, Server, ServerAuthorization,
    },
};
use oxlink_e2e::{CONVERGE, client, eventually, with_temp_ns};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};
use std::{
    collections::BTreeMap,
    fmt::Debug,
    io::Write,
    path::PathBuf,
    process::{Command, Stdio},
    sync::OnceLock,
};

// === Installing ===

/// `oxlink install --crds | kubectl apply -f -` once per test binary, then waits for every CRD
/// to be Established. Every test calls this first.
fn install_crds() -> Result<()> {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| run_install().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn run_install() -> Result<()> {
    let manifest = oxlink_install_crds()?;
    let mut apply = Command::new("kubectl")
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running kubectl (is it on PATH?)")?;
    apply
        .stdin
        .take()
        .context("kubectl's stdin")?
        .write_all(manifest.as_bytes())?;
    let out = apply.wait_with_output()?;
    ensure!(
        out.status.success(),
        "kubectl apply failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut wait = Command::new("kubectl");
    wait.args(["wait", "--for=condition=Established", "--timeout=60s"]);
    for crd in oxlink_crds::install::crds() {
        wait.arg(format!("crd/{}", crd.metadata.name.unwrap_or_default()));
    }
    command_output(&mut wait)?;
    Ok(())
}

/// What `oxlink install --crds` prints (the binary's `main` only calls this).
fn oxlink_install_crds() -> Result<String> {
    use clap::Parser;
    let cli = oxlink_cli::Cli::try_parse_from(["oxlink", "install", "--crds"])?;
    let mut out = Vec::new();
    cli.run(&mut out)?;
    Ok(String::from_utf8(out)?)
}

fn command_output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// Every CRD is Established with its names accepted, and serves exactly our versions.
#[tokio::test]
async fn install_crds_establishes_every_crd() -> Result<()> {
    install_crds()?;
    let client = client().await?;
    let api: Api<CustomResourceDefinition> = Api::all(client);
    for want in oxlink_crds::install::crds() {
        let name = want.metadata.name.clone().unwrap_or_default();
        let got = api
            .get(&name)
            .await
            .with_context(|| format!("getting {name}"))?;
        let status = got.status.clone().unwrap_or_default();
        for condition in ["Established", "NamesAccepted"] {
            let ok = status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == condition && c.status == "True");
            ensure!(ok, "{name} is not {condition}: {:?}", status.conditions);
        }
        let served: Vec<_> = got
            .spec
            .versions
            .iter()
            .filter(|v| v.served)
            .map(|v| &v.name)
            .collect();
        let wanted: Vec<_> = want.spec.versions.iter().map(|v| &v.name).collect();
        assert_eq!(served, wanted, "{name}: served versions");
        let storage = want
            .spec
            .versions
            .iter()
            .find(|v| v.storage)
            .map(|v| v.name.clone());
        assert_eq!(
            status
                .stored_versions
                .as_ref()
                .and_then(|s| s.last().cloned()),
            storage
        );
        assert_eq!(
            status
                .accepted_names
                .as_ref()
                .and_then(|n| n.short_names.clone()),
            want.spec.names.short_names,
            "{name}: short names"
        );
    }
    Ok(())
}

// === Fixtures ===

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn fixture(file: &str) -> Result<Value> {
    let path = fixtures_dir().join(file);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {file}"))?;
    serde_saphyr::from_str(&text).with_context(|| format!("parsing {file}"))
}

/// Creates the fixture in `ns` as written (its own apiVersion), then checks that:
/// - the API server kept every field we wrote (nothing pruned, nothing rewritten);
/// - reading it back as our storage-version type gives the spec our type reads from the file;
/// - our type's serialization of it is accepted back by the API server.
async fn round_trip<K>(client: &Client, ns: &str, file: &str) -> Result<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + HasSpec
        + CustomResourceExt
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned,
    K::Spec: PartialEq + Debug,
{
    let mut written = fixture(file)?;
    written["metadata"]["namespace"] = json!(ns);
    let name = written["metadata"]["name"]
        .as_str()
        .context("fixture has a name")?
        .to_string();
    let api_version = written["apiVersion"]
        .as_str()
        .context("fixture has an apiVersion")?;
    let (group, version) = api_version.split_once('/').context("a group/version")?;
    let gvk = GroupVersionKind::gvk(group, version, &K::kind(&()));
    let ar = ApiResource::from_gvk_with_plural(&gvk, &K::plural(&()));
    let dynamic: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let created = dynamic
        .create(
            &PostParams::default(),
            &serde_json::from_value(written.clone())?,
        )
        .await
        .with_context(|| format!("creating {file}"))?;
    let stored = serde_json::to_value(&created)?;
    contains(&stored["spec"], &written["spec"], &format!("{file}: spec"))?;

    // What our type reads from the file, as the storage version.
    let mut as_storage = written.clone();
    as_storage["apiVersion"] = json!(K::api_version(&()));
    let want: K = serde_json::from_value(as_storage)
        .with_context(|| format!("{file} as {}", K::kind(&())))?;

    let typed: Api<K> = Api::namespaced(client.clone(), ns);
    let got = typed
        .get(&name)
        .await
        .with_context(|| format!("reading back {file}"))?;
    assert_eq!(
        got.spec(),
        want.spec(),
        "{file}: read back through our type"
    );
    assert_eq!(got.meta().labels, want.meta().labels, "{file}: labels");

    let replaced = typed
        .replace(&name, &PostParams::default(), &got)
        .await
        .with_context(|| format!("{file}: writing our type's serialization back"))?;
    assert_eq!(replaced.spec(), want.spec(), "{file}: after replace");
    Ok(got)
}

/// Fails naming the first path where `have` lacks or differs from something in `want`.
fn contains(have: &Value, want: &Value, at: &str) -> Result<()> {
    match (have, want) {
        (Value::Object(have), Value::Object(want)) => {
            for (k, w) in want {
                let h = have
                    .get(k)
                    .with_context(|| format!("{at}.{k} was dropped"))?;
                contains(h, w, &format!("{at}.{k}"))?;
            }
            Ok(())
        }
        (Value::Array(have), Value::Array(want)) => {
            ensure!(
                have.len() == want.len(),
                "{at}: {} items, wrote {}",
                have.len(),
                want.len()
            );
            for (i, (h, w)) in have.iter().zip(want).enumerate() {
                contains(h, w, &format!("{at}[{i}]"))?;
            }
            Ok(())
        }
        (Value::Number(h), Value::Number(w)) if h.as_f64() == w.as_f64() => Ok(()),
        (h, w) if h == w => Ok(()),
        (h, w) => bail!("{at}: wrote {w}, read {h}"),
    }
}

#[tokio::test]
async fn workshop_service_profile_round_trips() -> Result<()> {
    install_crds()?;
    with_temp_ns("crd-sp-todoui", |client, ns| async move {
        let sp: ServiceProfile = round_trip(&client, &ns, "serviceprofile-todoui.yaml").await?;
        let stress = sp
            .spec
            .routes
            .iter()
            .find(|r| r.name == "GET /stress")
            .context("route")?;
        assert_eq!(stress.timeout.as_deref(), Some("100ms"));
        assert_eq!(stress.condition.path_regex.as_deref(), Some("/stress"));
        assert_eq!(sp.spec.routes.len(), 4);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn full_service_profile_round_trips() -> Result<()> {
    install_crds()?;
    with_temp_ns("crd-sp-full", |client, ns| async move {
        let sp: ServiceProfile = round_trip(&client, &ns, "serviceprofile-full.yaml").await?;
        let budget = sp.spec.retry_budget.as_ref().context("retry budget")?;
        assert_eq!(
            (budget.retry_ratio, budget.min_retries_per_second),
            (0.2, 10)
        );
        assert_eq!(sp.spec.dst_overrides.len(), 2);
        let classes = &sp.spec.routes[0].response_classes;
        assert_eq!(
            classes[1].condition.any.len(),
            2,
            "nested conditions survive"
        );
        assert!(sp.spec.routes[1].condition.not.is_some());
        Ok(())
    })
    .await
}

#[tokio::test]
async fn policy_resources_round_trip() -> Result<()> {
    install_crds()?;
    with_temp_ns("crd-policy", |client, ns| async move {
        round_trip::<Server>(&client, &ns, "server.yaml").await?;
        round_trip::<ServerAuthorization>(&client, &ns, "serverauthorization.yaml").await?;
        round_trip::<AuthorizationPolicy>(&client, &ns, "authorizationpolicy.yaml").await?;
        round_trip::<MeshTlsAuthentication>(&client, &ns, "meshtlsauthentication.yaml").await?;
        round_trip::<NetworkAuthentication>(&client, &ns, "networkauthentication.yaml").await?;
        round_trip::<EgressNetwork>(&client, &ns, "egressnetwork.yaml").await?;
        round_trip::<HttpLocalRateLimitPolicy>(&client, &ns, "httplocalratelimitpolicy.yaml")
            .await?;
        Ok(())
    })
    .await
}

/// A Linkerd 2.14 `v1beta1` Server applies and reads as the storage version, with the
/// defaults our type assumes filled in by the API server.
#[tokio::test]
async fn older_server_version_reads_as_the_storage_version() -> Result<()> {
    install_crds()?;
    with_temp_ns("crd-server-v1beta1", |client, ns| async move {
        let server: Server = round_trip(&client, &ns, "server-v1beta1.yaml").await?;
        assert_eq!(
            server.spec.access_policy,
            oxlink_crds::policy::AccessPolicy::Deny
        );
        assert_eq!(
            server.spec.proxy_protocol,
            oxlink_crds::policy::ProxyProtocol::Opaque
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn httproute_round_trips() -> Result<()> {
    install_crds()?;
    with_temp_ns("crd-httproute", |client, ns| async move {
        let route: HttpRoute = round_trip(&client, &ns, "httproute.yaml").await?;
        let rule = &route.spec.rules[0];
        assert_eq!(rule.backend_refs.len(), 2);
        // A rule's filters are RequestHeaderModifier or RequestRedirect in Linkerd's schema;
        // ResponseHeaderModifier is a backend's.
        assert_eq!(rule.filters.len(), 1);
        assert_eq!(
            rule.backend_refs[0].filters[0].kind,
            oxlink_crds::policy::httproute::FilterType::ResponseHeaderModifier
        );
        let timeouts = rule.timeouts.as_ref().context("timeouts")?;
        assert_eq!(timeouts.request.as_deref(), Some("10s"));
        Ok(())
    })
    .await
}

#[tokio::test]
async fn traffic_split_and_external_workload_round_trip() -> Result<()> {
    install_crds()?;
    with_temp_ns("crd-split-ew", |client, ns| async move {
        let split: TrafficSplit = round_trip(&client, &ns, "trafficsplit.yaml").await?;
        assert_eq!(split.spec.backends.len(), 2);
        let ew: ExternalWorkload = round_trip(&client, &ns, "externalworkload.yaml").await?;
        assert_eq!(ew.spec.mesh_tls.server_name, "legacy-vm.cluster.local");
        Ok(())
    })
    .await
}

// === Invalid objects ===

/// Each invalid object is refused (422) with a message that names the offending field.
#[tokio::test]
async fn invalid_objects_are_rejected_naming_the_field() -> Result<()> {
    install_crds()?;
    with_temp_ns("crd-invalid", |client, ns| async move {
        let server = |spec: Value| ("policy.linkerd.io/v1beta3", "Server", "servers", spec);
        let cases = [
            (
                "wrong proxyProtocol",
                server(json!({"podSelector": {}, "port": 80, "proxyProtocol": "HTTP/3"})),
                &["spec.proxyProtocol", "Unsupported value"][..],
            ),
            (
                "missing port",
                server(json!({"podSelector": {}})),
                &["spec.port", "Required value"],
            ),
            (
                "port out of range",
                server(json!({"podSelector": {}, "port": 70000})),
                &["spec.port", "between 1 and 65535"],
            ),
            (
                "bad port name",
                server(json!({"podSelector": {}, "port": "Not_A_Port"})),
                &["spec.port", "port name"],
            ),
            (
                "two selectors",
                server(json!({"podSelector": {}, "externalWorkloadSelector": {}, "port": 80})),
                &["spec", "exactly one of podSelector or externalWorkloadSelector"],
            ),
            (
                "wrong accessPolicy",
                server(json!({"podSelector": {}, "port": 80, "accessPolicy": "allow"})),
                &["spec.accessPolicy", "Unsupported value"],
            ),
            (
                "route without condition",
                (
                    "linkerd.io/v1alpha2",
                    "ServiceProfile",
                    "serviceprofiles",
                    json!({"routes": [{"name": "GET /"}]}),
                ),
                &["spec.routes[0].condition", "Required value"],
            ),
            (
                "unparsable timeout",
                (
                    "linkerd.io/v1alpha2",
                    "ServiceProfile",
                    "serviceprofiles",
                    json!({"routes": [{"name": "x", "condition": {"method": "GET"}, "timeout": "ten seconds"}]}),
                ),
                &["spec.routes[0].timeout"],
            ),
            (
                "inverted status range",
                (
                    "linkerd.io/v1alpha2",
                    "ServiceProfile",
                    "serviceprofiles",
                    json!({"routes": [{"name": "x", "condition": {"method": "GET"},
                        "responseClasses": [{"condition": {"status": {"min": 599, "max": 500}}}]}]}),
                ),
                &["spec.routes[0].responseClasses[0].condition.status", "min must not be greater than max"],
            ),
            (
                "wrong HTTP method",
                (
                    "policy.linkerd.io/v1beta3",
                    "HTTPRoute",
                    "httproutes",
                    json!({"rules": [{"matches": [{"method": "FETCH"}]}]}),
                ),
                &["spec.rules[0].matches[0].method", "Unsupported value"],
            ),
            (
                "backend port out of range",
                (
                    "policy.linkerd.io/v1beta3",
                    "HTTPRoute",
                    "httproutes",
                    json!({"rules": [{"backendRefs": [{"name": "web", "port": 0}]}]}),
                ),
                &["spec.rules[0].backendRefs[0].port"],
            ),
            (
                "filter without its settings",
                (
                    "policy.linkerd.io/v1beta3",
                    "HTTPRoute",
                    "httproutes",
                    json!({"rules": [{"filters": [{"type": "RequestRedirect"}]}]}),
                ),
                &["spec.rules[0].filters[0]", "requestRedirect must be set"],
            ),
            (
                "neither identities nor identityRefs",
                ("policy.linkerd.io/v1alpha1", "MeshTLSAuthentication", "meshtlsauthentications", json!({})),
                &["spec", "exactly one of identities or identityRefs"],
            ),
            (
                "network that is not a CIDR",
                (
                    "policy.linkerd.io/v1alpha1",
                    "NetworkAuthentication",
                    "networkauthentications",
                    json!({"networks": [{"cidr": "10.0.0.0/33"}]}),
                ),
                &["spec.networks[0].cidr", "must be a CIDR"],
            ),
            (
                "wrong trafficPolicy",
                (
                    "policy.linkerd.io/v1alpha1",
                    "EgressNetwork",
                    "egressnetworks",
                    json!({"trafficPolicy": "Maybe"}),
                ),
                &["spec.trafficPolicy", "Unsupported value"],
            ),
            (
                "external workload port 0",
                (
                    "workload.linkerd.io/v1beta1",
                    "ExternalWorkload",
                    "externalworkloads",
                    json!({"meshTLS": {"identity": "a", "serverName": "b"}, "ports": [{"port": 0}]}),
                ),
                &["spec.ports[0].port"],
            ),
            (
                "split without backends",
                ("split.smi-spec.io/v1alpha1", "TrafficSplit", "trafficsplits", json!({"service": "web"})),
                &["spec.backends", "Required value"],
            ),
        ];
        for (i, (what, (api_version, kind, plural, spec), needles)) in cases.iter().enumerate() {
            let (group, version) = api_version.split_once('/').unwrap();
            let ar = ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk(group, version, kind),
                plural,
            );
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
            let obj = json!({
                "apiVersion": api_version,
                "kind": kind,
                "metadata": {"name": format!("invalid-{i}")},
                "spec": spec,
            });
            match api.create(&PostParams::default(), &serde_json::from_value(obj)?).await {
                Ok(_) => bail!("{what}: the API server accepted {kind} {spec}"),
                Err(kube::Error::Api(status)) => {
                    assert_eq!(status.code, 422, "{what}: {status:?}");
                    for needle in *needles {
                        assert!(
                            status.message.contains(needle),
                            "{what}: message does not mention {needle:?}: {}",
                            status.message
                        );
                    }
                }
                Err(e) => bail!("{what}: {e}"),
            }
        }
        Ok(())
    })
    .await
}

// === Helm ===

fn chart_dir() -> String {
    format!("{}/../charts/oxlink-crds", env!("CARGO_MANIFEST_DIR"))
}

fn parse_crds(yaml: &str) -> Result<BTreeMap<String, CustomResourceDefinition>> {
    let docs: Vec<Option<CustomResourceDefinition>> = serde_saphyr::from_multiple(yaml)?;
    Ok(docs
        .into_iter()
        .flatten()
        .map(|crd| (crd.metadata.name.clone().unwrap_or_default(), crd))
        .collect())
}

/// `helm lint` passes, `helm template` renders exactly `oxlink install --crds`, and
/// `helm install` (adopting the CRDs kubectl applied) leaves the same CRDs Established.
#[tokio::test]
async fn helm_chart_installs_the_same_crds() -> Result<()> {
    install_crds()?;
    command_output(Command::new("helm").args(["lint", &chart_dir()]))?;

    let rendered =
        command_output(Command::new("helm").args(["template", "oxlink-crds", &chart_dir()]))?;
    let from_helm = parse_crds(&rendered)?;
    let from_cli = parse_crds(&oxlink_install_crds()?)?;
    assert_eq!(from_helm.len(), oxlink_crds::install::crds().len());
    assert!(
        from_helm == from_cli,
        "helm template and oxlink install --crds differ"
    );

    with_temp_ns("crd-helm", |client, ns| async move {
        let api: Api<CustomResourceDefinition> = Api::all(client);
        let mut before = BTreeMap::new();
        for name in from_cli.keys() {
            before.insert(name.clone(), api.get(name).await?.spec);
        }
        command_output(Command::new("helm").args([
            "install",
            "oxlink-crds",
            &chart_dir(),
            "--namespace",
            &ns,
            "--take-ownership",
            "--wait",
        ]))?;
        for (name, spec) in &before {
            let crd = eventually(
                &format!("{name} Established and owned by Helm"),
                CONVERGE,
                || {
                    let api = api.clone();
                    let name = name.clone();
                    let ns = ns.clone();
                    async move {
                        let crd = api.get(&name).await?;
                        let annotations = crd.metadata.annotations.clone().unwrap_or_default();
                        let labels = crd.metadata.labels.clone().unwrap_or_default();
                        let established = crd
                            .status
                            .iter()
                            .flat_map(|s| s.conditions.iter().flatten())
                            .any(|c| c.type_ == "Established" && c.status == "True");
                        let owned = labels
                            .get("app.kubernetes.io/managed-by")
                            .map(String::as_str)
                            == Some("Helm")
                            && annotations.get("meta.helm.sh/release-namespace") == Some(&ns);
                        Ok(if established && owned {
                            Ok(crd)
                        } else {
                            Err((labels, annotations))
                        })
                    }
                },
            )
            .await?;
            assert!(
                crd.spec == *spec,
                "{name}: helm install changed the CRD's spec"
            );
        }
        Ok(())
    })
    .await
}

// === Parity with Linkerd's schemas ===

/// Creates `spec` as a `kind` named `name` in `ns`, as written.
async fn create_as(
    client: &Client,
    ns: &str,
    (api_version, kind, plural): (&str, &str, &str),
    name: &str,
    body: Value,
) -> Result<DynamicObject, kube::Error> {
    let (group, version) = api_version.split_once('/').expect("group/version");
    let ar =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let mut obj = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}});
    for (k, v) in body.as_object().expect("an object") {
        obj[k] = v.clone();
    }
    api.create(
        &PostParams::default(),
        &serde_json::from_value(obj).expect("an object"),
    )
    .await
}

/// Manifests Linkerd's published schemas accept (each one a difference that was fixed, see the
/// table in the oxlink-crds crate's docs) are accepted, and the neighbouring ones Linkerd
/// refuses are refused.
#[tokio::test]
async fn manifests_linkerd_accepts_are_accepted() -> Result<()> {
    install_crds()?;
    with_temp_ns("crd-parity", |client, ns| async move {
        const EW_BETA: (&str, &str, &str) = (
            "workload.linkerd.io/v1beta1",
            "ExternalWorkload",
            "externalworkloads",
        );
        const EW_ALPHA: (&str, &str, &str) = (
            "workload.linkerd.io/v1alpha1",
            "ExternalWorkload",
            "externalworkloads",
        );
        const MESHTLS: (&str, &str, &str) = (
            "policy.linkerd.io/v1alpha1",
            "MeshTLSAuthentication",
            "meshtlsauthentications",
        );
        let tls = json!({"identity": "vm.default.serviceaccount.identity.linkerd.cluster.local",
                         "serverName": "vm.default.cluster.local"});
        let dual = json!([{"ip": "192.0.2.10"}, {"ip": "2001:db8::10"}]);

        // v1beta1 workloadIPs holds two addresses (dual stack); our type reads both back.
        create_as(
            &client,
            &ns,
            EW_BETA,
            "dual-stack",
            json!({"spec": {"meshTLS": tls, "workloadIPs": dual}}),
        )
        .await
        .context("a dual-stack v1beta1 ExternalWorkload")?;
        let ew: ExternalWorkload = Api::namespaced(client.clone(), &ns)
            .get("dual-stack")
            .await?;
        let ips: Vec<_> = ew.spec.workload_ips.iter().map(|w| w.ip.as_str()).collect();
        assert_eq!(ips, ["192.0.2.10", "2001:db8::10"]);

        // ... but not three, and v1alpha1 still holds one.
        let three = json!([{"ip": "192.0.2.10"}, {"ip": "2001:db8::10"}, {"ip": "192.0.2.11"}]);
        for (what, gvk, spec) in [
            (
                "three v1beta1 addresses",
                EW_BETA,
                json!({"meshTLS": tls, "workloadIPs": three}),
            ),
            (
                "two v1alpha1 addresses",
                EW_ALPHA,
                json!({"meshTls": tls, "workloadIPs": dual}),
            ),
        ] {
            match create_as(&client, &ns, gvk, "too-many", json!({"spec": spec})).await {
                Err(kube::Error::Api(s)) => {
                    assert_eq!(s.code, 422, "{what}: {s:?}");
                    assert!(
                        s.message.contains("spec.workloadIPs"),
                        "{what}: {}",
                        s.message
                    );
                    assert!(
                        s.message.contains("must have at most"),
                        "{what}: {}",
                        s.message
                    );
                }
                other => bail!("{what}: expected a 422, got {other:?}"),
            }
        }

        // Port names longer than 15 characters and protocols other than TCP/UDP are Linkerd's
        // to accept; an unset protocol defaults to TCP, as in Linkerd.
        let created = create_as(
            &client,
            &ns,
            EW_BETA,
            "ports",
            json!({"spec": {
                "meshTLS": tls,
                "ports": [{"name": "a-long-port-name-for-admin", "port": 9990, "protocol": "SCTP"},
                          {"port": 8080}],
            }}),
        )
        .await
        .context("ports Linkerd accepts")?;
        assert_eq!(created.data["spec"]["ports"][0]["protocol"], "SCTP");
        assert_eq!(
            created.data["spec"]["ports"][1]["protocol"], "TCP",
            "the default"
        );

        // A status condition needs only type and status (Linkerd's shape, with lastProbeTime),
        // written through the v1beta1 status subresource; an unknown status is refused.
        let status_api: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            &ns,
            &ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk("workload.linkerd.io", "v1beta1", "ExternalWorkload"),
                "externalworkloads",
            ),
        );
        let patch = |status: &str| {
            json!({"status": {"conditions": [{
            "type": "Ready", "status": status, "lastProbeTime": "2026-01-01T00:00:00Z"}]}})
        };
        let pp = kube::api::PatchParams::default();
        let patched = status_api
            .patch_status("ports", &pp, &kube::api::Patch::Merge(patch("True")))
            .await
            .context("a condition with only type, status and lastProbeTime")?;
        assert_eq!(patched.data["status"]["conditions"][0]["status"], "True");
        let ew: ExternalWorkload = Api::namespaced(client.clone(), &ns).get("ports").await?;
        assert_eq!(ew.status.expect("status").conditions[0].type_, "Ready");
        match status_api
            .patch_status("ports", &pp, &kube::api::Patch::Merge(patch("Maybe")))
            .await
        {
            Err(kube::Error::Api(s)) => {
                assert_eq!(s.code, 422, "{s:?}");
                assert!(
                    s.message.contains("status.conditions[0].status"),
                    "{}",
                    s.message
                );
            }
            other => bail!("status Maybe: expected a 422, got {other:?}"),
        }

        // MeshTLSAuthentication identities are not patterned (SPIFFE IDs are accepted) ...
        create_as(
            &client,
            &ns,
            MESHTLS,
            "spiffe",
            json!({"spec": {
                "identities": ["spiffe://root.linkerd.cluster.local/ns/default/sa/web"],
            }}),
        )
        .await
        .context("a SPIFFE identity")?;
        // ... and an empty list is refused, as Linkerd's minItems does.
        for (i, spec) in [json!({"identities": []}), json!({"identityRefs": []})]
            .into_iter()
            .enumerate()
        {
            match create_as(
                &client,
                &ns,
                MESHTLS,
                &format!("empty-{i}"),
                json!({"spec": spec}),
            )
            .await
            {
                Err(kube::Error::Api(s)) => {
                    assert_eq!(s.code, 422, "{s:?}");
                    assert!(
                        s.message.contains("should have at least 1 items"),
                        "{}",
                        s.message
                    );
                }
                other => bail!("empty list {i}: expected a 422, got {other:?}"),
            }
        }
        Ok(())
    })
    .await
}

/// Expects `result` to be a 422 whose message holds every one of `needles`.
fn refused(what: &str, result: Result<DynamicObject, kube::Error>, needles: &[&str]) -> Result<()> {
    match result {
        Err(kube::Error::Api(s)) => {
            ensure!(s.code == 422, "{what}: expected a 422, got {s:?}");
            for needle in needles {
                ensure!(
                    s.message.contains(needle),
                    "{what}: {:?} does not contain {needle:?}",
                    s.message
                );
            }
            Ok(())
        }
        other => bail!("{what}: expected a 422, got {other:?}"),
    }
}

/// HTTPRoute and HTTPLocalRateLimitPolicy, each fixed difference from Linkerd's schemas (see
/// the table in the oxlink-crds crate's docs): what Linkerd accepts is accepted, what it refuses
/// is refused.
#[tokio::test]
async fn routes_and_rate_limits_match_linkerds_schemas() -> Result<()> {
    install_crds()?;
    with_temp_ns("crd-parity-routes", |client, ns| async move {
        let route = |version: &str| {
            (
                format!("policy.linkerd.io/{version}"),
                "HTTPRoute",
                "httproutes",
            )
        };
        const RATE_LIMIT: (&str, &str, &str) = (
            "policy.linkerd.io/v1alpha1",
            "HTTPLocalRateLimitPolicy",
            "httplocalratelimitpolicies",
        );
        let create_route = |name: &str, version: &str, rules: Value| {
            let (api_version, kind, plural) = route(version);
            let (client, ns, name) = (client.clone(), ns.clone(), name.to_string());
            async move {
                create_as(
                    &client,
                    &ns,
                    (&api_version, kind, plural),
                    &name,
                    json!({"spec": {"parentRefs": [{"group": "core", "kind": "Service", "name": "web", "port": 80}],
                                    "rules": rules}}),
                )
                .await
            }
        };

        // A path match without a type is a PathPrefix match, in every served version.
        for version in ["v1alpha1", "v1beta1", "v1beta2", "v1beta3"] {
            let created = create_route(
                &format!("untyped-path-{version}"),
                version,
                json!([{"matches": [{"path": {"value": "/books"}}]}]),
            )
            .await
            .with_context(|| format!("a {version} path without a type"))?;
            assert_eq!(
                created.data["spec"]["rules"][0]["matches"][0]["path"]["type"], "PathPrefix",
                "{version}"
            );
        }
        let read: HttpRoute = Api::namespaced(client.clone(), &ns)
            .get("untyped-path-v1beta3")
            .await?;
        let path = read.spec.rules[0].matches[0].path.as_ref().context("path")?;
        assert_eq!(
            path.kind,
            oxlink_crds::policy::httproute::PathMatchType::PathPrefix
        );

        // A filter's type names the settings it uses; settings of another type are ignored,
        // not refused (Linkerd reads the filter by its type) ...
        create_route(
            "extra-settings",
            "v1beta3",
            json!([{"filters": [
                {"type": "RequestHeaderModifier",
                 "requestHeaderModifier": {"set": [{"name": "x-a", "value": "1"}]},
                 "requestRedirect": {"scheme": "https"}},
                {"type": "RequestRedirect",
                 "requestRedirect": {"path": {"type": "ReplaceFullPath", "replaceFullPath": "/a",
                                              "replacePrefixMatch": "/b"}}},
            ]}]),
        )
        .await
        .context("filters with settings of another type")?;
        // ... but the settings of its own type are required.
        refused(
            "a RequestHeaderModifier without its settings",
            create_route(
                "no-settings",
                "v1beta3",
                json!([{"filters": [{"type": "RequestHeaderModifier"}]}]),
            )
            .await,
            &["spec.rules[0].filters[0]", "requestHeaderModifier must be set when type is RequestHeaderModifier"],
        )?;

        // A rule's filters are RequestHeaderModifier or RequestRedirect; ResponseHeaderModifier
        // is a backend's filter only.
        refused(
            "a rule-level ResponseHeaderModifier",
            create_route(
                "rule-response-headers",
                "v1beta3",
                json!([{"filters": [{"type": "ResponseHeaderModifier",
                                     "responseHeaderModifier": {"remove": ["x-a"]}}]}]),
            )
            .await,
            &["spec.rules[0].filters", "ResponseHeaderModifier belongs in a backendRef's filters"],
        )?;
        create_route(
            "backend-response-headers",
            "v1beta3",
            json!([{"backendRefs": [{"name": "web", "port": 80, "filters": [
                {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"remove": ["x-a"]}}]}]}]),
        )
        .await
        .context("a backend's ResponseHeaderModifier")?;

        // Section names and redirect hostnames are DNS subdomains.
        let (api_version, kind, plural) = route("v1beta3");
        refused(
            "a section name with an underscore",
            create_as(
                &client,
                &ns,
                (&api_version, kind, plural),
                "bad-section",
                json!({"spec": {"parentRefs": [{"group": "policy.linkerd.io", "kind": "Server",
                                                 "name": "web", "sectionName": "Not_A_Section"}]}}),
            )
            .await,
            &["spec.parentRefs[0].sectionName", "should match"],
        )?;
        refused(
            "a redirect hostname with an underscore",
            create_route(
                "bad-redirect-host",
                "v1beta3",
                json!([{"filters": [{"type": "RequestRedirect",
                                     "requestRedirect": {"hostname": "Bad_Host"}}]}]),
            )
            .await,
            &["requestRedirect.hostname", "should match"],
        )?;

        // Header and query parameter lists name each header or parameter once.
        let twice = json!([{"name": "x-a", "value": "1"}, {"name": "x-a", "value": "2"}]);
        for (what, rules, field) in [
            (
                "a header matched twice",
                json!([{"matches": [{"headers": twice}]}]),
                "spec.rules[0].matches[0].headers[1]",
            ),
            (
                "a query parameter matched twice",
                json!([{"matches": [{"queryParams": twice}]}]),
                "spec.rules[0].matches[0].queryParams[1]",
            ),
            (
                "a header set twice",
                json!([{"filters": [{"type": "RequestHeaderModifier",
                                     "requestHeaderModifier": {"set": twice}}]}]),
                "spec.rules[0].filters[0].requestHeaderModifier.set[1]",
            ),
            (
                "a header added twice by a backend's filter",
                json!([{"backendRefs": [{"name": "web", "port": 80, "filters": [
                    {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"add": twice}}]}]}]),
                "spec.rules[0].backendRefs[0].filters[0].responseHeaderModifier.add[1]",
            ),
        ] {
            refused(
                what,
                create_route("twice", "v1beta3", rules).await,
                &[field, "Duplicate value"],
            )?;
        }

        // Rates are positive and fit a u32, as Linkerd reads them.
        let server = json!({"group": "policy.linkerd.io", "kind": "Server", "name": "web"});
        let rate_limit = |name: &str, spec: Value| {
            let (client, ns, name) = (client.clone(), ns.clone(), name.to_string());
            let mut spec = spec;
            spec["targetRef"] = server.clone();
            async move { create_as(&client, &ns, RATE_LIMIT, &name, json!({"spec": spec})).await }
        };
        rate_limit(
            "largest",
            json!({"total": {"requestsPerSecond": 4294967295u64},
                   "identity": {"requestsPerSecond": 1}}),
        )
        .await
        .context("the largest and smallest rates")?;
        refused(
            "a zero rate",
            rate_limit("zero", json!({"total": {"requestsPerSecond": 0}})).await,
            &["spec.total.requestsPerSecond", "greater than or equal to 1"],
        )?;
        refused(
            "a rate above u32",
            rate_limit(
                "huge",
                json!({"identity": {"requestsPerSecond": 4294967296u64}}),
            )
            .await,
            &["spec.identity.requestsPerSecond", "less than or equal to"],
        )?;
        // An override's client namespace is a DNS label.
        for (i, namespace) in [json!(""), json!("Not_A_Namespace"), json!("n".repeat(64))]
            .into_iter()
            .enumerate()
        {
            refused(
                &format!("client namespace {namespace}"),
                rate_limit(
                    &format!("client-ns-{i}"),
                    json!({"overrides": [{"requestsPerSecond": 5, "clientRefs": [
                        {"kind": "ServiceAccount", "name": "a", "namespace": namespace}]}]}),
                )
                .await,
                &["spec.overrides[0].clientRefs[0].namespace"],
            )?;
        }
        rate_limit(
            "client-ns",
            json!({"overrides": [{"requestsPerSecond": 5, "clientRefs": [
                {"kind": "ServiceAccount", "name": "a", "namespace": "ingress"}]}]}),
        )
        .await
        .context("a client in another namespace")?;
        Ok(())
    })
    .await
}
