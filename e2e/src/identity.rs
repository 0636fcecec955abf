//! identity as the chart would run it, in a test namespace that plays the control-plane
//! namespace: trust roots, the issuer Secret, ServiceAccounts and exactly identity's RBAC, and
//! identity started in-process under its own ServiceAccount's token.

use anyhow::{Context, Result};
use k8s_openapi::{
    ByteString,
    api::{
        authentication::v1::{TokenRequest, TokenRequestSpec},
        core::v1::{ConfigMap, Secret, ServiceAccount},
        rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding},
    },
};
use kube::{
    Api, Client,
    api::{DeleteParams, ObjectMeta, PostParams},
};
use oxlink_crds::names::control_plane::{
    IDENTITY_ISSUER_SECRET, IDENTITY_SERVICE_ACCOUNT, IDENTITY_TOKEN_AUDIENCE, ISSUER_CRT_KEY,
    ISSUER_KEY_KEY, TRUST_ROOTS_CONFIGMAP, TRUST_ROOTS_KEY,
};
use oxlink_identity::{Config, Running};
use oxlink_tls::fixtures;
use serde_json::json;
use std::future::Future;
use tokio::net::TcpListener;

/// Runs `test` against identity started in a fresh namespace (see [`crate::with_temp_ns`])
/// whose issuer Secret is `(crt, key)`, with ServiceAccounts `accounts` besides identity's.
/// The cluster-scoped RBAC made for identity is removed afterwards.
pub async fn with_identity<F, Fut>(
    name: &str,
    crt: &str,
    key: &str,
    plaintext: bool,
    accounts: &[&str],
    test: F,
) -> Result<()>
where
    F: FnOnce(Client, String, Running) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let (crt, key) = (crt.to_string(), key.to_string());
    crate::with_temp_ns(name, |client, ns| async move {
        let cluster_rbac = format!("{ns}-identity");
        let result = async {
            install(&client, &ns, &cluster_rbac, &crt, &key, accounts).await?;
            let running = start(&client, &ns, plaintext).await?;
            test(client.clone(), ns.clone(), running).await
        }
        .await;
        let crs: Api<ClusterRole> = Api::all(client.clone());
        let crbs: Api<ClusterRoleBinding> = Api::all(client.clone());
        let _ = crbs.delete(&cluster_rbac, &DeleteParams::default()).await;
        let _ = crs.delete(&cluster_rbac, &DeleteParams::default()).await;
        result
    })
    .await
}

/// What the chart would install: trust roots (the anchor fixture), the issuer Secret,
/// ServiceAccounts (identity's and `accounts`), and exactly the RBAC identity needs; the
/// cluster-scoped part is named `cluster_rbac`.
pub async fn install(
    client: &Client,
    ns: &str,
    cluster_rbac: &str,
    crt: &str,
    key: &str,
    accounts: &[&str],
) -> Result<()> {
    let pp = PostParams::default();
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .create(
            &pp,
            &serde_json::from_value(json!({
                "metadata": {"name": TRUST_ROOTS_CONFIGMAP},
                "data": {TRUST_ROOTS_KEY: fixtures::ANCHOR_CRT},
            }))?,
        )
        .await?;
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&pp, &issuer_secret(crt, key))
        .await?;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    for sa in std::iter::once(&IDENTITY_SERVICE_ACCOUNT).chain(accounts) {
        sas.create(
            &pp,
            &serde_json::from_value(json!({"metadata": {"name": sa}}))?,
        )
        .await?;
    }
    Api::<Role>::namespaced(client.clone(), ns)
        .create(
            &pp,
            &serde_json::from_value(json!({
                "metadata": {"name": IDENTITY_SERVICE_ACCOUNT},
                "rules": [
                    {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [IDENTITY_ISSUER_SECRET],
                     "verbs": ["get", "list", "watch"]},
                    {"apiGroups": [""], "resources": ["configmaps"],
                     "resourceNames": [TRUST_ROOTS_CONFIGMAP], "verbs": ["get"]},
                    {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
                ],
            }))?,
        )
        .await?;
    Api::<RoleBinding>::namespaced(client.clone(), ns)
        .create(
            &pp,
            &serde_json::from_value(json!({
                "metadata": {"name": IDENTITY_SERVICE_ACCOUNT},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": IDENTITY_SERVICE_ACCOUNT},
                "subjects": [{"kind": "ServiceAccount", "name": IDENTITY_SERVICE_ACCOUNT, "namespace": ns}],
            }))?,
        )
        .await?;
    Api::<ClusterRole>::all(client.clone())
        .create(
            &pp,
            &serde_json::from_value(json!({
                "metadata": {"name": cluster_rbac, "labels": {"oxlink.io/e2e": "identity"}},
                "rules": [
                    {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
                    {"nonResourceURLs": ["/.well-known/openid-configuration", "/openid/v1/jwks"], "verbs": ["get"]},
                    {"apiGroups": [""], "resources": ["pods", "serviceaccounts"], "verbs": ["list", "watch"]},
                ],
            }))?,
        )
        .await?;
    Api::<ClusterRoleBinding>::all(client.clone())
        .create(
            &pp,
            &serde_json::from_value(json!({
                "metadata": {"name": cluster_rbac, "labels": {"oxlink.io/e2e": "identity"}},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_rbac},
                "subjects": [{"kind": "ServiceAccount", "name": IDENTITY_SERVICE_ACCOUNT, "namespace": ns}],
            }))?,
        )
        .await?;
    Ok(())
}

/// The issuer Secret (`linkerd.io/tls` keys) holding `crt` and `key`.
pub fn issuer_secret(crt: &str, key: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(IDENTITY_ISSUER_SECRET.into()),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(
            [
                (
                    ISSUER_CRT_KEY.to_string(),
                    ByteString(crt.as_bytes().to_vec()),
                ),
                (
                    ISSUER_KEY_KEY.to_string(),
                    ByteString(key.as_bytes().to_vec()),
                ),
            ]
            .into(),
        ),
        ..Default::default()
    }
}

/// Starts identity in-process under the `linkerd-identity` ServiceAccount's token, serving on
/// 127.0.0.1 (gRPC and admin).
pub async fn start(admin: &Client, ns: &str, plaintext: bool) -> Result<Running> {
    oxlink_identity::spawn(
        client_as(admin, ns, IDENTITY_SERVICE_ACCOUNT).await?,
        Config {
            namespace: ns.to_string(),
            trust_domain: "cluster.local".into(),
            issuance: oxlink_tls::IssuancePolicy::default(),
            plaintext,
            limits: oxlink_admin::serve::Limits::GRPC,
            token_review_only: false,
            max_concurrent_certify: oxlink_identity::MAX_CONCURRENT_CERTIFY,
        },
        TcpListener::bind("127.0.0.1:0").await?,
        Some(TcpListener::bind("127.0.0.1:0").await?),
    )
    .await
    .context("starting identity")
}

/// A client for the same cluster that authenticates with a token of `ns/sa`.
pub async fn client_as(admin: &Client, ns: &str, sa: &str) -> Result<Client> {
    let token = token(admin, ns, sa, None).await?;
    let mut config = kube::Config::infer().await?;
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.into()),
        ..Default::default()
    };
    Ok(oxlink_kube::client(config)?)
}

/// A token for `sa` valid for an hour, for `audience` or (None) the API server's default
/// audience.
pub async fn token(client: &Client, ns: &str, sa: &str, audience: Option<&str>) -> Result<String> {
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: audience.map(|a| vec![a.to_string()]).unwrap_or_default(),
            expiration_seconds: Some(3600),
            ..Default::default()
        },
        ..Default::default()
    };
    Ok(Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create_token_request(sa, &PostParams::default(), &request)
        .await
        .with_context(|| format!("a token for {ns}/{sa}"))?
        .status
        .context("TokenRequest status")?
        .token)
}

/// A token for `sa` that identity accepts (audience `identity.l5d.io`).
pub async fn certify_token(client: &Client, ns: &str, sa: &str) -> Result<String> {
    token(client, ns, sa, Some(IDENTITY_TOKEN_AUDIENCE)).await
}
