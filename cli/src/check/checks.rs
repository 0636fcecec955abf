//! The checks themselves, one async function per category, in Linkerd's order and wording.

use super::report::{Category, Outcome};
use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        authorization::v1::{
            ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
        },
        core::v1::{ConfigMap, Namespace, Node, Secret, ServiceAccount},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{Api, Client, api::PostParams};
use oxlink_crds::names::control_plane as cp;
use oxlink_tls::{ChainSummary, Issuer, IssuerConfig, TrustBundle};
use std::time::{Duration, SystemTime};

/// Kubernetes releases older than this lack the CEL functions our CRD schemas use.
pub(crate) const MIN_KUBERNETES: (u32, u32) = (1, 31);
/// Linkerd's threshold for "expires soon" on anchors and issuers.
const CERT_VALIDITY_WARNING: Duration = Duration::from_secs(60 * 24 * 3600);
/// Linkerd's tolerated clock skew between this machine and the nodes.
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// The control-plane Deployments (each also a ServiceAccount of the same name).
const COMPONENTS: [&str; 3] = [
    cp::IDENTITY_SERVICE_ACCOUNT,
    cp::DESTINATION_SERVICE_ACCOUNT,
    cp::PROXY_INJECTOR_SERVICE_ACCOUNT,
];

/// What the API server said, without the wrapping: `configmaps "x" not found`.
pub(crate) fn message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

pub(crate) async fn kubernetes_version(client: &Client) -> Category {
    let result = match client.apiserver_version().await {
        Ok(info) => {
            let minor = info.minor.trim_end_matches('+').parse::<u32>().unwrap_or(0);
            let major = info.major.parse::<u32>().unwrap_or(0);
            if (major, minor) >= MIN_KUBERNETES {
                Ok(())
            } else {
                Err(format!(
                    "Kubernetes is on version [{}.{}], but version [{}.{}] or more recent is required",
                    info.major, info.minor, MIN_KUBERNETES.0, MIN_KUBERNETES.1
                ))
            }
        }
        Err(e) => Err(message(&e)),
    };
    Category {
        name: "kubernetes-version",
        checks: vec![Outcome::new(
            "is running the minimum Kubernetes API version",
            result,
            "upgrade the cluster to Kubernetes 1.31 or later",
        )],
    }
}

pub(crate) async fn pre_kubernetes_setup(client: &Client, ns: &str) -> Category {
    let mut checks = Vec::new();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let absent = match namespaces.get_opt(ns).await {
        Ok(None) => Ok(()),
        Ok(Some(_)) => Err(format!("The \"{ns}\" namespace already exists")),
        Err(e) => Err(message(&e)),
    };
    checks.push(Outcome::new(
        "control plane namespace does not already exist",
        absent,
        "remove the namespace, or install into another one with --linkerd-namespace",
    ));

    let can =
        |verb: &'static str, group: &'static str, resource: &'static str, namespaced: bool| {
            access(client, verb, group, resource, namespaced.then_some(ns))
        };
    let cluster_scoped = async {
        for (group, resource) in [
            ("rbac.authorization.k8s.io", "clusterroles"),
            ("rbac.authorization.k8s.io", "clusterrolebindings"),
            ("apiextensions.k8s.io", "customresourcedefinitions"),
            (
                "admissionregistration.k8s.io",
                "mutatingwebhookconfigurations",
            ),
            (
                "admissionregistration.k8s.io",
                "validatingwebhookconfigurations",
            ),
        ] {
            can("create", group, resource, false).await?;
        }
        Ok(())
    };
    checks.push(Outcome::new(
        "can create non-namespaced resources",
        cluster_scoped.await,
        "installing needs cluster-admin rights",
    ));
    for (description, group, resource) in [
        ("can create ServiceAccounts", "", "serviceaccounts"),
        ("can create Services", "", "services"),
        ("can create Deployments", "apps", "deployments"),
        ("can create CronJobs", "batch", "cronjobs"),
        ("can create ConfigMaps", "", "configmaps"),
        ("can create Secrets", "", "secrets"),
    ] {
        checks.push(Outcome::new(
            description,
            can("create", group, resource, true).await,
            "installing needs rights to create these in the control plane namespace",
        ));
    }
    checks.push(Outcome::new(
        "can read Secrets",
        can("get", "", "secrets", true).await,
        "installing needs rights to read Secrets in the control plane namespace",
    ));
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    checks.push(Outcome::new(
        "can read extension-apiserver-authentication configmap",
        configmaps
            .get("extension-apiserver-authentication")
            .await
            .map(drop)
            .map_err(|e| message(&e)),
        "the webhooks need the API server's client CA from this ConfigMap",
    ));
    checks.push(
        Outcome::new(
            "no clock skew detected",
            clock_skew(client).await,
            "synchronize the clocks of this machine and the nodes (NTP)",
        )
        .warn_only(),
    );
    Category {
        name: "pre-kubernetes-setup",
        checks,
    }
}

/// Asks the API server whether we may `verb` the resource, in `ns` or cluster-wide.
async fn access(
    client: &Client,
    verb: &str,
    group: &str,
    resource: &str,
    ns: Option<&str>,
) -> Result<(), String> {
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                namespace: ns.map(Into::into),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let status = reviews
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| message(&e))?
        .status
        .ok_or("the API server returned no review status")?;
    if status.allowed {
        Ok(())
    } else {
        let scope = ns.map_or("cluster-wide".to_string(), |ns| {
            format!("in namespace {ns}")
        });
        Err(format!(
            "missing permission to {verb} {resource}{} {scope}{}",
            if group.is_empty() {
                String::new()
            } else {
                format!(".{group}")
            },
            status.reason.map(|r| format!(": {r}")).unwrap_or_default()
        ))
    }
}

async fn clock_skew(client: &Client) -> Result<(), String> {
    let nodes: Api<Node> = Api::all(client.clone());
    let now = SystemTime::now();
    for node in nodes
        .list(&Default::default())
        .await
        .map_err(|e| message(&e))?
    {
        let heartbeat = node
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .and_then(|c| c.last_heartbeat_time);
        if let Some(t) = heartbeat {
            let t = SystemTime::UNIX_EPOCH + Duration::from_secs(t.0.as_second().max(0) as u64);
            let skew = now.duration_since(t).unwrap_or_else(|e| e.duration());
            // Heartbeats are at most a few minutes old; more than that plus the tolerance is skew.
            if t > now + MAX_CLOCK_SKEW {
                return Err(format!(
                    "node {} reports a time {}s ahead of this machine",
                    node.metadata.name.unwrap_or_default(),
                    skew.as_secs()
                ));
            }
        }
    }
    Ok(())
}

pub(crate) async fn control_plane_crds(client: &Client) -> Category {
    Category {
        name: "linkerd-crd",
        checks: vec![Outcome::new(
            "control plane CustomResourceDefinitions exist",
            crds_established(client).await,
            "install them with `oxlink install --crds | kubectl apply -f -`",
        )],
    }
}

async fn crds_established(client: &Client) -> Result<(), String> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut missing = Vec::new();
    for crd in oxlink_crds::install::crds() {
        let name = crd.metadata.name.unwrap_or_default();
        let established = api
            .get_opt(&name)
            .await
            .map_err(|e| message(&e))?
            .and_then(|c| c.status)
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        if !established {
            missing.push(name);
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "missing or not established: {}",
            missing.join(", ")
        ))
    }
}

pub(crate) async fn control_plane_config(client: &Client, ns: &str) -> Category {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let exists = match namespaces.get_opt(ns).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(format!("The \"{ns}\" namespace does not exist")),
        Err(e) => Err(message(&e)),
    };
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let mut missing = Vec::new();
    for sa in COMPONENTS {
        match accounts.get_opt(sa).await {
            Ok(Some(_)) => {}
            Ok(None) => missing.push(sa.to_string()),
            Err(e) => missing.push(format!("{sa} ({})", message(&e))),
        }
    }
    let sas = if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("missing ServiceAccounts: {}", missing.join(", ")))
    };
    Category {
        name: "linkerd-config",
        checks: vec![
            Outcome::new(
                "control plane Namespace exists",
                exists,
                "install the control plane with `oxlink install | kubectl apply -f -`",
            ),
            Outcome::new(
                "control plane ServiceAccounts exist",
                sas,
                "reinstall the control plane",
            ),
            Outcome::new(
                "control plane CustomResourceDefinitions exist",
                crds_established(client).await,
                "install them with `oxlink install --crds | kubectl apply -f -`",
            ),
        ],
    }
}

pub(crate) async fn control_plane_existence(client: &Client, ns: &str) -> Category {
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let config = match configmaps.get_opt(cp::CONFIG_CONFIGMAP).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(format!("configmaps \"{}\" not found", cp::CONFIG_CONFIGMAP)),
        Err(e) => Err(message(&e)),
    };
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let mut problems = Vec::new();
    for name in COMPONENTS {
        match deployments.get_opt(name).await {
            Ok(None) => problems.push(format!("No running pods for \"{name}\"")),
            Ok(Some(d)) => {
                let want = d.spec.and_then(|s| s.replicas).unwrap_or(1);
                let ready = d.status.and_then(|s| s.ready_replicas).unwrap_or(0);
                if ready < want || want == 0 {
                    problems.push(format!("{name}: {ready}/{want} pods ready"));
                }
            }
            Err(e) => problems.push(message(&e)),
        }
    }
    let pods = if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    };
    Category {
        name: "linkerd-existence",
        checks: vec![
            Outcome::new(
                "'linkerd-config' config map exists",
                config,
                "reinstall the control plane",
            ),
            Outcome::new(
                "control plane pods are ready",
                pods,
                "see `kubectl -n linkerd get deploy,pods` and the pods' events",
            ),
        ],
    }
}

pub(crate) async fn identity(client: &Client, ns: &str) -> Category {
    let now = SystemTime::now();
    let loaded = load_identity(client, ns).await;
    let mut checks = vec![Outcome::new(
        "certificate config is valid",
        loaded.as_ref().map(drop).map_err(Clone::clone),
        "the trust roots ConfigMap and the issuer Secret must hold PEM certificates and a key",
    )];
    if let Ok((anchors, issuer_chain, issuer)) = &loaded {
        let expiring =
            |certs: &[ChainSummary], what: &str| -> (Result<(), String>, Result<(), String>) {
                let mut valid = Ok(());
                let mut lasting = Ok(());
                for c in certs {
                    if now < c.not_before || now > c.not_after {
                        valid = Err(format!(
                            "{what} {} is not valid now (valid {} to {})",
                            c.subject,
                            oxlink_tls::utc_rfc3339(c.not_before),
                            oxlink_tls::utc_rfc3339(c.not_after)
                        ));
                    } else if c.not_after < now + CERT_VALIDITY_WARNING {
                        lasting = Err(format!(
                            "{what} {} will expire on {}",
                            c.subject,
                            oxlink_tls::utc_rfc3339(c.not_after)
                        ));
                    }
                }
                (valid, lasting)
            };
        let (valid, lasting) = expiring(anchors, "trust anchor");
        checks.push(Outcome::new(
            "trust anchors are within their validity period",
            valid,
            "rotate the trust anchors",
        ));
        checks.push(
            Outcome::new(
                "trust anchors are valid for at least 60 days",
                lasting,
                "rotate the trust anchors before they expire",
            )
            .warn_only(),
        );
        let (valid, lasting) = expiring(&issuer_chain[..1], "issuer certificate");
        checks.push(Outcome::new(
            "issuer cert is within its validity period",
            valid,
            "rotate the issuer certificate",
        ));
        checks.push(
            Outcome::new(
                "issuer cert is valid for at least 60 days",
                lasting,
                "rotate the issuer certificate before it expires",
            )
            .warn_only(),
        );
        checks.push(Outcome::new(
            "issuer cert is issued by the trust anchor",
            issuer.clone(),
            "the issuer must chain to one of the trust anchors in linkerd-identity-trust-roots",
        ));
    }
    Category {
        name: "linkerd-identity",
        checks,
    }
}

type IdentityMaterial = (Vec<ChainSummary>, Vec<ChainSummary>, Result<(), String>);

async fn load_identity(client: &Client, ns: &str) -> Result<IdentityMaterial, String> {
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let roots = configmaps
        .get(cp::TRUST_ROOTS_CONFIGMAP)
        .await
        .map_err(|e| message(&e))?
        .data
        .and_then(|mut d| d.remove(cp::TRUST_ROOTS_KEY))
        .ok_or_else(|| {
            format!(
                "{} has no key {}",
                cp::TRUST_ROOTS_CONFIGMAP,
                cp::TRUST_ROOTS_KEY
            )
        })?;
    let anchors =
        ChainSummary::from_pem(roots.as_bytes()).map_err(|e| format!("trust anchors: {e}"))?;
    let bundle =
        TrustBundle::from_pem(roots.as_bytes()).map_err(|e| format!("trust anchors: {e}"))?;

    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let secret = secrets
        .get(cp::IDENTITY_ISSUER_SECRET)
        .await
        .map_err(|e| message(&e))?;
    let data = secret.data.unwrap_or_default();
    let key = |k: &str| data.get(k).map(|v| v.0.clone());
    let (crt, key) = match (key(cp::ISSUER_CRT_KEY), key(cp::ISSUER_KEY_KEY)) {
        (Some(crt), Some(key)) => (crt, key),
        _ => match (key(cp::TLS_CRT_KEY), key(cp::TLS_KEY_KEY)) {
            (Some(crt), Some(key)) => (crt, key),
            _ => {
                return Err(format!(
                    "{} holds neither {}/{} nor {}/{}",
                    cp::IDENTITY_ISSUER_SECRET,
                    cp::ISSUER_CRT_KEY,
                    cp::ISSUER_KEY_KEY,
                    cp::TLS_CRT_KEY,
                    cp::TLS_KEY_KEY
                ));
            }
        },
    };
    let chain = ChainSummary::from_pem(&crt).map_err(|e| format!("issuer certificate: {e}"))?;
    if chain.is_empty() {
        return Err("the issuer Secret holds no certificate".into());
    }
    // Loading it as identity would: signed by an anchor, key matching. Dates are judged by the
    // validity checks, so an expired issuer is reported there rather than here.
    let issued = Issuer::from_pem(
        &crt,
        &key,
        &bundle,
        IssuerConfig::default(),
        chain[0].not_before,
    )
    .map(drop)
    .map_err(|e| e.to_string());
    Ok((anchors, chain, issued))
}
