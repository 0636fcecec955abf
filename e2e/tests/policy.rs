//! Policy against a real API server: a Deployment's pod gets the default inbound policy until
//! a Server, an AuthorizationPolicy and a MeshTLSAuthentication are applied, and again after
//! they are deleted; a Service's cluster address gets the default outbound policy until an
//! HTTPRoute names the Service as its parent. An ExternalWorkload gets the policy of the Server
//! that selects it with `externalWorkloadSelector`, until it is relabelled or deleted; an
//! HTTPLocalRateLimitPolicy appears in the inbound policy of its Server's pod. A real tonic
//! client with the proxy's protobufs reads the policy streams, as a proxy does.

use anyhow::{Context, Result, bail};
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Pod, Service},
};
use kube::{
    Api, Client,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use linkerd2_proxy_api::{
    inbound::{self as inpb, inbound_server_policies_client::InboundServerPoliciesClient},
    meta::metadata::Kind as MetaKind,
    net::TcpAddress,
    outbound::{
        self as outpb, outbound_policies_client::OutboundPoliciesClient,
        proxy_protocol::Kind as OutKind, traffic_spec::Target,
    },
};
use oxlink_crds::{
    ExternalWorkload,
    policy::{
        AuthorizationPolicy, HttpLocalRateLimitPolicy, HttpRoute, MeshTlsAuthentication, Server,
    },
};
use oxlink_e2e::{
    CONVERGE, deployment, eventually,
    policy::{create, delete, start, until},
    ready_pod_ips, with_temp_ns,
};
use serde_json::{Value, json};
use std::net::SocketAddr;
use tonic::Code;

fn server_label<'a>(server: &'a inpb::Server, key: &str) -> &'a str {
    server
        .labels
        .get(key)
        .map(String::as_str)
        .unwrap_or_default()
}

fn authz_kinds(server: &inpb::Server) -> Vec<String> {
    server
        .authorizations
        .iter()
        .map(|a| a.labels.get("kind").cloned().unwrap_or_default())
        .collect()
}

fn is_default(server: &inpb::Server) -> bool {
    server_label(server, "kind") == "default"
        && server_label(server, "name") == "all-unauthenticated"
}

fn http1_route_names(policy: &outpb::OutboundPolicy) -> Vec<String> {
    let Some(OutKind::Detect(detect)) = policy.protocol.as_ref().and_then(|p| p.kind.as_ref())
    else {
        return Vec::new();
    };
    detect
        .http1
        .iter()
        .flat_map(|h| &h.routes)
        .map(
            |r| match r.metadata.as_ref().and_then(|m| m.kind.as_ref()) {
                Some(MetaKind::Default(name)) => format!("default:{name}"),
                Some(MetaKind::Resource(r)) => format!("{}:{}", r.kind, r.name),
                None => String::new(),
            },
        )
        .collect()
}

#[tokio::test]
async fn inbound_policy_follows_server_and_authorization_policy() -> Result<()> {
    with_temp_ns("policy-inbound", |client, ns| async move {
        let (running, channel) = start(client.clone()).await?;
        let pod = web_pod(&client, &ns).await?;

        let mut inbound = InboundServerPoliciesClient::new(channel);
        let spec = |workload: String, port| inpb::PortSpec { workload, port };

        // Bad workloads and ports are rejected, each precisely.
        for (workload, port) in [
            ("no-colon".to_string(), 8080),
            (json!({"ns": ns}).to_string(), 8080),
            (format!("{ns}:{pod}"), 0),
            (format!("{ns}:{pod}"), 70_000),
        ] {
            let status = inbound.get_port(spec(workload.clone(), port)).await.unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{workload} {port}: {status:?}");
        }
        let status = inbound
            .get_port(spec(format!("{ns}:no-such-pod"), 8080))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");

        // The legacy workload format gets the same default.
        let legacy = inbound.get_port(spec(format!("{ns}:{pod}"), 8080)).await?.into_inner();
        assert!(is_default(&legacy), "{legacy:?}");

        let workload = json!({"ns": ns, "pod": pod}).to_string();
        let mut stream = inbound
            .watch_port(spec(workload, 8080))
            .await?
            .into_inner();
        until(&mut stream, "the default policy", is_default).await?;

        create::<Server>(&client, &ns, json!({
            "apiVersion": "policy.linkerd.io/v1beta3",
            "kind": "Server",
            "metadata": {"name": "web-http"},
            "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "port": "http", "proxyProtocol": "HTTP/1"},
        }))
        .await?;
        create::<MeshTlsAuthentication>(&client, &ns, json!({
            "apiVersion": "policy.linkerd.io/v1alpha1",
            "kind": "MeshTLSAuthentication",
            "metadata": {"name": "clients"},
            "spec": {"identities": [format!("client.{ns}.serviceaccount.identity.linkerd.cluster.local")]},
        }))
        .await?;
        create::<AuthorizationPolicy>(&client, &ns, json!({
            "apiVersion": "policy.linkerd.io/v1alpha1",
            "kind": "AuthorizationPolicy",
            "metadata": {"name": "web-authz"},
            "spec": {
                "targetRef": {"group": "policy.linkerd.io", "kind": "Server", "name": "web-http"},
                "requiredAuthenticationRefs": [
                    {"group": "policy.linkerd.io", "kind": "MeshTLSAuthentication", "name": "clients"},
                ],
            },
        }))
        .await?;
        let server = until(&mut stream, "the Server with its authorization", |s| {
            server_label(s, "kind") == "server" && authz_kinds(s) == ["authorizationpolicy"]
        })
        .await?;
        assert_eq!(server_label(&server, "name"), "web-http");
        assert!(matches!(
            server.protocol.and_then(|p| p.kind),
            Some(inpb::proxy_protocol::Kind::Http1(_))
        ));
        let Some(inpb::authn::Permit::MeshTls(tls)) = server.authorizations[0]
            .authentication
            .clone()
            .and_then(|a| a.permit)
        else {
            bail!("not mesh TLS: {:?}", server.authorizations[0]);
        };
        let Some(inpb::authn::permit_mesh_tls::Clients::Identities(ids)) = tls.clients else {
            bail!("no identities: {tls:?}");
        };
        assert_eq!(
            ids.identities[0].name,
            format!("client.{ns}.serviceaccount.identity.linkerd.cluster.local")
        );

        // Deleting the authorization leaves the Server denying everyone; deleting the Server
        // restores the default.
        delete::<AuthorizationPolicy>(&client, &ns, "web-authz").await?;
        until(&mut stream, "the Server without authorizations", |s| {
            server_label(s, "kind") == "server" && s.authorizations.is_empty()
        })
        .await?;
        delete::<Server>(&client, &ns, "web-http").await?;
        delete::<MeshTlsAuthentication>(&client, &ns, "clients").await?;
        until(&mut stream, "the default policy again", is_default).await?;
        drop(running);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn outbound_policy_follows_http_routes() -> Result<()> {
    with_temp_ns("policy-outbound", |client, ns| async move {
        let (running, channel) = start(client.clone()).await?;
        let services: Api<Service> = Api::namespaced(client.clone(), &ns);
        let svc = services
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "metadata": {"name": "web"},
                    "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
                }))?,
            )
            .await?;
        let ip = svc
            .spec
            .and_then(|s| s.cluster_ip)
            .context("a cluster IP")?;
        let addr: SocketAddr = format!("{ip}:80").parse()?;
        let mut outbound = OutboundPoliciesClient::new(channel);
        let spec = |target| outpb::TrafficSpec {
            source_workload: json!({"ns": ns, "pod": "client"}).to_string(),
            target: Some(target),
        };

        // Not a Service, inside the cluster networks: NOT_FOUND, so the proxy forwards to the
        // original destination.
        let other: SocketAddr = "10.255.255.254:80".parse()?;
        let status = outbound
            .get(spec(Target::Addr(TcpAddress::from(other))))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        let status = outbound
            .get(spec(Target::Authority("example.com:80".into())))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");

        // The index learns about the Service through its watch.
        let policy = eventually("the Service's default policy", CONVERGE, || {
            let mut outbound = outbound.clone();
            let req = spec(Target::Addr(TcpAddress::from(addr)));
            async move {
                Ok(match outbound.get(req).await {
                    Ok(policy) => Ok(policy.into_inner()),
                    Err(status) => Err(status.code()),
                })
            }
        })
        .await?;
        assert_eq!(http1_route_names(&policy), ["default:http"]);
        let by_name = outbound
            .get(spec(Target::Authority(format!("web.{ns}.svc.cluster.local:80"))))
            .await?
            .into_inner();
        assert_eq!(by_name, policy);

        let mut stream = outbound
            .watch(spec(Target::Addr(TcpAddress::from(addr))))
            .await?
            .into_inner();
        until(&mut stream, "the default route", |p| {
            http1_route_names(p) == ["default:http"]
        })
        .await?;
        create::<HttpRoute>(&client, &ns, json!({
            "apiVersion": "policy.linkerd.io/v1beta3",
            "kind": "HTTPRoute",
            "metadata": {"name": "web-api"},
            "spec": {
                "parentRefs": [{"group": "core", "kind": "Service", "name": "web", "port": 80}],
                "rules": [{
                    "matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
                    "backendRefs": [{"name": "web", "port": 80}],
                }],
            },
        }))
        .await?;
        until(&mut stream, "the HTTPRoute", |p| {
            http1_route_names(p) == ["HTTPRoute:web-api"]
        })
        .await?;
        delete::<HttpRoute>(&client, &ns, "web-api").await?;
        until(&mut stream, "the default route again", |p| {
            http1_route_names(p) == ["default:http"]
        })
        .await?;
        drop(running);
        Ok(())
    })
    .await
}

/// The pod of the namespace's `web` Deployment (one replica), once it is ready.
async fn web_pod(client: &Client, ns: &str) -> Result<String> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    deployments
        .create(
            &PostParams::default(),
            &serde_json::from_value(deployment("web", 1))?,
        )
        .await?;
    eventually("web's pod to be ready", CONVERGE, || {
        ready_pod_ips(client, ns, "app=web", 1)
    })
    .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    pods.list(&ListParams::default().labels("app=web"))
        .await?
        .items
        .into_iter()
        .find(|p| p.metadata.deletion_timestamp.is_none())
        .and_then(|p| p.metadata.name)
        .context("web's pod")
}

fn port_spec(workload: &str, port: u32) -> inpb::PortSpec {
    inpb::PortSpec {
        workload: workload.into(),
        port,
    }
}

/// A Server `name` on port `http`, selecting `selector` (`podSelector` or
/// `externalWorkloadSelector`) `app: <app>`.
fn server(name: &str, selector: &str, app: &str, access: &str) -> Value {
    json!({
        "apiVersion": "policy.linkerd.io/v1beta3",
        "kind": "Server",
        "metadata": {"name": name},
        "spec": {
            selector: {"matchLabels": {"app": app}},
            "port": "http",
            "proxyProtocol": "HTTP/1",
            "accessPolicy": access,
        },
    })
}

#[tokio::test]
async fn external_workload_inbound_policy_follows_its_server() -> Result<()> {
    with_temp_ns("policy-external", |client, ns| async move {
        let (running, channel) = start(client.clone()).await?;
        let mut inbound = InboundServerPoliciesClient::new(channel);
        let vm = json!({"ns": ns, "external_workload": "vm-1"}).to_string();

        // Unknown until it exists.
        let status = inbound.get_port(port_spec(&vm, 8080)).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");

        create::<ExternalWorkload>(
            &client,
            &ns,
            json!({
                "apiVersion": "workload.linkerd.io/v1beta1",
                "kind": "ExternalWorkload",
                "metadata": {"name": "vm-1", "labels": {"app": "vm"}},
                "spec": {
                    "meshTLS": {
                        "identity": "spiffe://cluster.local/vm-1",
                        "serverName": "vm-1.cluster.local",
                    },
                    "ports": [{"name": "http", "port": 8080}],
                    "workloadIPs": [{"ip": "192.0.2.10"}],
                },
            }),
        )
        .await?;
        eventually("the ExternalWorkload's default policy", CONVERGE, || {
            let mut inbound = inbound.clone();
            let req = port_spec(&vm, 8080);
            async move {
                Ok(match inbound.get_port(req).await {
                    Ok(server) if is_default(server.get_ref()) => Ok(()),
                    Ok(server) => Err(format!("{:?}", server.into_inner().labels)),
                    Err(status) => Err(format!("{status:?}")),
                })
            }
        })
        .await?;
        let mut stream = inbound.watch_port(port_spec(&vm, 8080)).await?.into_inner();
        until(&mut stream, "the default policy", is_default).await?;

        // A podSelector Server matching the same labels, first by name, selects no
        // ExternalWorkload: the externalWorkloadSelector Server is the one that applies.
        create::<Server>(&client, &ns, server("a-pods", "podSelector", "vm", "deny")).await?;
        create::<Server>(
            &client,
            &ns,
            server("b-vms", "externalWorkloadSelector", "vm", "deny"),
        )
        .await?;
        create::<AuthorizationPolicy>(
            &client,
            &ns,
            json!({
                "apiVersion": "policy.linkerd.io/v1alpha1",
                "kind": "AuthorizationPolicy",
                "metadata": {"name": "vms-authz"},
                "spec": {
                    "targetRef": {"group": "policy.linkerd.io", "kind": "Server", "name": "b-vms"},
                    "requiredAuthenticationRefs": [{"kind": "ServiceAccount", "name": "client"}],
                },
            }),
        )
        .await?;
        let selected = until(&mut stream, "the Server with its authorization", |s| {
            server_label(s, "name") == "b-vms" && authz_kinds(s) == ["authorizationpolicy"]
        })
        .await?;
        assert!(matches!(
            selected.protocol.and_then(|p| p.kind),
            Some(inpb::proxy_protocol::Kind::Http1(_))
        ));
        let Some(inpb::authn::Permit::MeshTls(tls)) = selected.authorizations[0]
            .authentication
            .clone()
            .and_then(|a| a.permit)
        else {
            bail!("not mesh TLS: {:?}", selected.authorizations[0]);
        };
        let Some(inpb::authn::permit_mesh_tls::Clients::Identities(ids)) = tls.clients else {
            bail!("no identities: {tls:?}");
        };
        assert_eq!(
            ids.identities[0].name,
            format!("client.{ns}.serviceaccount.identity.linkerd.cluster.local")
        );

        // Relabelled, the workload falls back to the default; deleted, its stream ends.
        let workloads: Api<ExternalWorkload> = Api::namespaced(client.clone(), &ns);
        workloads
            .patch(
                "vm-1",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"app": "db"}}})),
            )
            .await?;
        until(&mut stream, "the default policy again", is_default).await?;
        delete::<ExternalWorkload>(&client, &ns, "vm-1").await?;
        let end = tokio::time::timeout(CONVERGE, async {
            while stream.message().await?.is_some() {}
            Ok::<_, tonic::Status>(())
        })
        .await
        .context("waiting for the stream to end")?;
        end.context("the stream ended with an error")?;
        let status = inbound.get_port(port_spec(&vm, 8080)).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        drop(running);
        Ok(())
    })
    .await
}

/// The HTTP/1 rate limit of a server, if any.
fn http1_rate_limit(server: &inpb::Server) -> Option<&inpb::HttpLocalRateLimit> {
    match server.protocol.as_ref()?.kind.as_ref()? {
        inpb::proxy_protocol::Kind::Http1(http1) => http1.local_rate_limit.as_ref(),
        _ => None,
    }
}

fn rate_limit_name(limit: &inpb::HttpLocalRateLimit) -> String {
    match limit.metadata.as_ref().and_then(|m| m.kind.as_ref()) {
        Some(MetaKind::Resource(r)) => format!("{}/{}:{}", r.group, r.kind, r.name),
        other => format!("{other:?}"),
    }
}

#[tokio::test]
async fn rate_limit_policy_appears_in_its_servers_inbound_policy() -> Result<()> {
    with_temp_ns("policy-ratelimit", |client, ns| async move {
        let (running, channel) = start(client.clone()).await?;
        let pod = web_pod(&client, &ns).await?;
        create::<Server>(
            &client,
            &ns,
            server("web-http", "podSelector", "web", "all-unauthenticated"),
        )
        .await?;
        let mut inbound = InboundServerPoliciesClient::new(channel);
        let workload = json!({"ns": ns, "pod": pod}).to_string();
        let mut stream = inbound.watch_port(port_spec(&workload, 8080)).await?.into_inner();
        until(&mut stream, "the Server", |s| {
            server_label(s, "name") == "web-http" && http1_rate_limit(s).is_none()
        })
        .await?;

        // An override without clients cannot be applied; it is skipped, even though it sorts
        // first, and the valid policy created after it applies.
        let limit = |name: &str, clients: Value| {
            json!({
                "apiVersion": "policy.linkerd.io/v1alpha1",
                "kind": "HTTPLocalRateLimitPolicy",
                "metadata": {"name": name},
                "spec": {
                    "targetRef": {"group": "policy.linkerd.io", "kind": "Server", "name": "web-http"},
                    "total": {"requestsPerSecond": 100},
                    "identity": {"requestsPerSecond": 10},
                    "overrides": [{"requestsPerSecond": 50, "clientRefs": clients}],
                },
            })
        };
        create::<HttpLocalRateLimitPolicy>(&client, &ns, limit("a-bad", json!([]))).await?;
        create::<HttpLocalRateLimitPolicy>(
            &client,
            &ns,
            limit("web-rl", json!([{"kind": "ServiceAccount", "name": "gateway", "namespace": "ingress"}])),
        )
        .await?;
        let limited = until(&mut stream, "the rate limit", |s| {
            http1_rate_limit(s).is_some()
        })
        .await?;
        let rl = http1_rate_limit(&limited).context("a rate limit")?;
        assert_eq!(
            rate_limit_name(rl),
            "policy.linkerd.io/HTTPLocalRateLimitPolicy:web-rl"
        );
        assert_eq!(rl.total.map(|l| l.requests_per_second), Some(100));
        assert_eq!(rl.identity.map(|l| l.requests_per_second), Some(10));
        let [over] = rl.overrides.as_slice() else {
            bail!("one override: {rl:?}");
        };
        assert_eq!(over.limit.map(|l| l.requests_per_second), Some(50));
        let ids: Vec<&str> = over
            .clients
            .iter()
            .flat_map(|c| &c.identities)
            .map(|i| i.name.as_str())
            .collect();
        assert_eq!(
            ids,
            ["gateway.ingress.serviceaccount.identity.linkerd.cluster.local"]
        );

        delete::<HttpLocalRateLimitPolicy>(&client, &ns, "web-rl").await?;
        until(&mut stream, "the Server without its rate limit", |s| {
            server_label(s, "name") == "web-http" && http1_rate_limit(s).is_none()
        })
        .await?;
        drop(running);
        Ok(())
    })
    .await
}
