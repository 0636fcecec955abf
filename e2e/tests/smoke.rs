//! Smoke tests of the local cluster itself: the behaviour every later e2e test relies on.

use anyhow::{Context, Result};
use k8s_openapi::api::{
    apps::v1::Deployment,
    authentication::v1::{TokenRequest, TokenRequestSpec, TokenReview, TokenReviewSpec},
    core::v1::{Service, ServiceAccount},
    discovery::v1::EndpointSlice,
};
use kube::{
    Api, Client,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use oxlink_e2e::{CONVERGE, deployment, eventually, ready_pod_ips, with_temp_ns};
use serde_json::json;
use std::collections::BTreeSet;

/// A Deployment's pods get distinct IPs, and its Service's EndpointSlice follows scaling.
#[tokio::test]
async fn deployment_pods_get_ips_and_endpoint_slices_follow_scaling() -> Result<()> {
    with_temp_ns("endpoints", |client, ns| async move {
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        let services: Api<Service> = Api::namespaced(client.clone(), &ns);
        deployments
            .create(&PostParams::default(), &serde_json::from_value(deployment("web", 3))?)
            .await?;
        services
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "metadata": {"name": "web"},
                    "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
                }))?,
            )
            .await?;

        let ips = eventually("3 ready pods with distinct IPs", CONVERGE, || {
            ready_pod_ips(&client, &ns, "app=web", 3)
        })
        .await?;
        eventually("the EndpointSlice to list the 3 pod IPs", CONVERGE, || {
            slice_matches(&client, &ns, &ips)
        })
        .await?;

        deployments
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": 1}})),
            )
            .await?;
        let one = eventually("exactly 1 pod left after scaling to 1", CONVERGE, || {
            ready_pod_ips(&client, &ns, "app=web", 1)
        })
        .await?;
        assert!(one.is_subset(&ips), "the remaining pod is one of the three");
        eventually("the EndpointSlice to shrink to the remaining pod", CONVERGE, || {
            slice_matches(&client, &ns, &one)
        })
        .await?;
        Ok(())
    })
    .await
}

/// A token requested for audience `identity.l5d.io` passes a TokenReview for that audience only.
#[tokio::test]
async fn token_review_authenticates_the_requested_audience_only() -> Result<()> {
    with_temp_ns("tokens", |client, ns| async move {
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
        accounts
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "web"}}))?,
            )
            .await?;
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: vec!["identity.l5d.io".into()],
                expiration_seconds: Some(600),
                ..Default::default()
            },
            ..Default::default()
        };
        let token = accounts
            .create_token_request("web", &PostParams::default(), &request)
            .await
            .context("requesting a token")?
            .status
            .context("the TokenRequest has a status")?
            .token;

        let review = review_of(&client, &token, "identity.l5d.io").await?;
        assert_eq!(review.authenticated, Some(true), "{review:?}");
        let user = review
            .user
            .context("an authenticated review names the user")?;
        assert_eq!(
            user.username.as_deref(),
            Some(&*format!("system:serviceaccount:{ns}:web"))
        );
        assert_eq!(review.audiences, Some(vec!["identity.l5d.io".to_string()]));

        let other = review_of(
            &client,
            &token,
            "https://kubernetes.default.svc.cluster.local",
        )
        .await?;
        assert_ne!(
            other.authenticated,
            Some(true),
            "another audience is refused: {other:?}"
        );

        let garbage = review_of(&client, "not-a-token", "identity.l5d.io").await?;
        assert_ne!(
            garbage.authenticated,
            Some(true),
            "garbage is refused: {garbage:?}"
        );

        let mut forged = token.clone().into_bytes();
        let last = forged.len() - 2;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        let forged = review_of(&client, std::str::from_utf8(&forged)?, "identity.l5d.io").await?;
        assert_ne!(
            forged.authenticated,
            Some(true),
            "a bad signature is refused: {forged:?}"
        );
        Ok(())
    })
    .await
}

/// Whether the Service's EndpointSlices list exactly `want` as ready addresses.
async fn slice_matches(
    client: &Client,
    ns: &str,
    want: &BTreeSet<String>,
) -> Result<Result<(), BTreeSet<String>>> {
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
    let mut got = BTreeSet::new();
    for slice in slices
        .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
        .await?
    {
        for ep in slice.endpoints {
            if ep.conditions.and_then(|c| c.ready) == Some(true) {
                got.extend(ep.addresses);
            }
        }
    }
    Ok(if &got == want { Ok(()) } else { Err(got) })
}

async fn review_of(
    client: &Client,
    token: &str,
    audience: &str,
) -> Result<k8s_openapi::api::authentication::v1::TokenReviewStatus> {
    let reviews: Api<TokenReview> = Api::all(client.clone());
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: Some(token.to_string()),
            audiences: Some(vec![audience.to_string()]),
        },
        ..Default::default()
    };
    reviews
        .create(&PostParams::default(), &review)
        .await
        .context("creating a TokenReview")?
        .status
        .context("the TokenReview has a status")
}
