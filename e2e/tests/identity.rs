//! identity against the real API server: it runs in-process under the `linkerd-identity`
//! ServiceAccount's own token and RBAC, reads its issuer and trust roots from the test
//! namespace (which plays the control-plane namespace), validates real ServiceAccount tokens
//! with TokenReviews, and certifies a simulated proxy over TLS.

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::{core::v1::Secret, events::v1::Event};
use kube::{Api, Client, api::PostParams};
use oxlink_e2e::{
    identity::{self, issuer_secret, token},
    proxy::SimulatedProxy,
};
use oxlink_identity::Running;
use oxlink_tls::fixtures;
use std::{future::Future, net::SocketAddr, time::Duration};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

const ISSUER_SECRET: &str = "linkerd-identity-issuer";
const AUDIENCE: &str = "identity.l5d.io";
const WAIT: Duration = Duration::from_secs(30);

/// The proxy's view of identity: its address and the name it verifies.
struct ControlPlane {
    ns: String,
    running: Running,
}

impl ControlPlane {
    fn name(&self, sa: &str) -> String {
        oxlink_crds::names::identity::service_account_identity(
            sa,
            &self.ns,
            &self.ns,
            "cluster.local",
        )
    }

    fn proxy(&self, sa: &str) -> Result<SimulatedProxy> {
        SimulatedProxy::new(&self.name(sa), fixtures::ANCHOR_CRT)
    }

    async fn channel(&self, proxy: &SimulatedProxy) -> Result<tonic::transport::Channel> {
        proxy
            .connect(self.running.grpc_addr, &self.running.identity)
            .await
    }
}

/// Runs `test` against identity started in a fresh namespace whose issuer Secret is
/// `(crt, key)`. Cluster-scoped RBAC made for it is removed afterwards.
async fn with_identity<F, Fut>(name: &str, crt: &str, key: &str, test: F) -> Result<()>
where
    F: FnOnce(Client, ControlPlane) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    with_identity_mode(name, crt, key, false, test).await
}

async fn with_identity_mode<F, Fut>(
    name: &str,
    crt: &str,
    key: &str,
    plaintext: bool,
    test: F,
) -> Result<()>
where
    F: FnOnce(Client, ControlPlane) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    identity::with_identity(
        name,
        crt,
        key,
        plaintext,
        &["web", "db"],
        |client, ns, running| test(client, ControlPlane { ns, running }),
    )
    .await
}

async fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("an HTTP status line")?;
    Ok((status, response))
}

async fn ready(cp: &ControlPlane) -> Result<()> {
    let admin = cp.running.admin_addr.context("admin server")?;
    oxlink_e2e::eventually("identity to be ready", WAIT, || async {
        let (status, body) = http_get(admin, "/ready").await?;
        Ok(if status == 200 { Ok(()) } else { Err(body) })
    })
    .await
}

/// Waits until identity's in-process token verification has its keys and bound objects.
async fn local_tokens_synced(cp: &ControlPlane) -> Result<()> {
    let local = cp
        .running
        .local_tokens
        .clone()
        .context("local verification")?;
    oxlink_e2e::eventually("the token verification caches", WAIT, || {
        let synced = local.synced();
        async move { Ok(if synced { Ok(()) } else { Err("not synced") }) }
    })
    .await
}

async fn event_reasons(client: &Client, ns: &str) -> Result<Vec<(String, String)>> {
    Ok(Api::<Event>::namespaced(client.clone(), ns)
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .map(|e| {
            let reason = e.reason.unwrap_or_default();
            let regarding = e.regarding.and_then(|r| r.name).unwrap_or_default();
            (reason, regarding)
        })
        .collect())
}

async fn await_event(client: &Client, ns: &str, reason: &str, regarding: &str) -> Result<()> {
    oxlink_e2e::eventually(&format!("event {reason} on {regarding}"), WAIT, || async {
        let events = event_reasons(client, ns).await?;
        Ok(
            if events.iter().any(|(r, o)| r == reason && o == regarding) {
                Ok(())
            } else {
                Err(events)
            },
        )
    })
    .await
}

/// How many times IssuerUpdateSkipped was recorded on linkerd-identity (an event's `series`
/// counts its repeats).
async fn skipped_count(client: &Client, ns: &str) -> Result<i32> {
    Ok(Api::<Event>::namespaced(client.clone(), ns)
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter(|e| {
            e.reason.as_deref() == Some("IssuerUpdateSkipped")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("linkerd-identity")
        })
        .map(|e| e.series.map_or(1, |s| s.count))
        .sum())
}

/// Waits for an event `reason` on linkerd-identity whose note contains `note`.
async fn await_event_note(client: &Client, ns: &str, reason: &str, note: &str) -> Result<()> {
    let what = format!("event {reason} on linkerd-identity saying {note:?}");
    oxlink_e2e::eventually(&what, WAIT, || async {
        let events = Api::<Event>::namespaced(client.clone(), ns)
            .list(&Default::default())
            .await?
            .items;
        let seen: Vec<(String, String)> = events
            .into_iter()
            .filter(|e| {
                e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("linkerd-identity")
            })
            .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect();
        Ok(
            if seen.iter().any(|(r, n)| r == reason && n.contains(note)) {
                Ok(())
            } else {
                Err(seen)
            },
        )
    })
    .await
}

/// The first intermediate (the issuer) of a fresh certificate for `proxy`.
async fn issuer_of_next_leaf(
    cp: &ControlPlane,
    proxy: &SimulatedProxy,
    token: &str,
) -> Result<Vec<u8>> {
    let certified = proxy
        .certify(cp.channel(proxy).await?, token)
        .await?
        .map_err(|s| anyhow::anyhow!("certify refused: {s:?}"))?;
    Ok(certified.intermediates[0].to_vec())
}

fn issuer_der(crt: &str) -> Result<Vec<u8>> {
    Ok(oxlink_tls::pem::certificates(crt.as_bytes())?[0].to_vec())
}

#[tokio::test]
async fn certifies_a_simulated_proxy_over_tls() -> Result<()> {
    with_identity(
        "identity-certify",
        fixtures::ISSUER_CRT,
        fixtures::ISSUER_KEY,
        |client, cp| async move {
            ready(&cp).await?;
            local_tokens_synced(&cp).await?;
            let ns = cp.ns.clone();
            let proxy = cp.proxy("web")?;
            let token = token(&client, &ns, "web", Some(AUDIENCE)).await?;
            let certified = proxy
                .certify(cp.channel(&proxy).await?, &token)
                .await?
                .map_err(|s| anyhow::anyhow!("certify refused: {s:?}"))?;
            assert_eq!(
                certified.intermediates[0].to_vec(),
                issuer_der(fixtures::ISSUER_CRT)?
            );
            let leaf =
                oxlink_tls::ChainSummary::from_der(&certified.leaf).map_err(anyhow::Error::msg)?;
            assert_eq!(leaf.dns_names, std::slice::from_ref(&proxy.name));
            assert!(!leaf.is_ca);
            let refresh = SimulatedProxy::refresh_in(&certified);
            ensure!(
                refresh > Duration::from_secs(16 * 3600)
                    && refresh < Duration::from_secs(17 * 3600),
                "a 24h leaf is renewed after ~16.8h, not {refresh:?}"
            );
            await_event(&client, &ns, "IssuedLeafCertificate", "web").await?;

            // A token minted without the identity audience passes through the legacy retry.
            let legacy = token_default_audience(&client, &ns).await?;
            proxy
                .certify(cp.channel(&proxy).await?, &legacy)
                .await?
                .map_err(|s| anyhow::anyhow!("legacy token refused: {s:?}"))?;

            let (status, metrics) =
                http_get(cp.running.admin_addr.context("admin")?, "/metrics").await?;
            assert_eq!(status, 200);
            assert!(
                metrics.contains("identity_certify_total{result=\"issued\"} 2"),
                "{metrics}"
            );
            assert!(
                metrics.contains("identity_issuer_expiry_seconds"),
                "{metrics}"
            );
            // The first token is verified in process; the legacy one is not for identity's
            // audience, so it takes the TokenReview with the audience and the retry without.
            assert!(
                metrics.contains("identity_token_verification_total{result=\"verified\"} 1"),
                "{metrics}"
            );
            assert!(
                metrics.contains("identity_token_review_duration_seconds_count 2"),
                "{metrics}"
            );
            Ok(())
        },
    )
    .await
}

async fn token_default_audience(client: &Client, ns: &str) -> Result<String> {
    token(client, ns, "web", None).await
}

#[tokio::test]
async fn refuses_bad_requests_and_issues_nothing() -> Result<()> {
    with_identity(
        "identity-refuse",
        fixtures::ISSUER_CRT,
        fixtures::ISSUER_KEY,
        |client, cp| async move {
            ready(&cp).await?;
            let ns = cp.ns.clone();
            let web = cp.proxy("web")?;
            let web_token = token(&client, &ns, "web", Some(AUDIENCE)).await?;
            let db_token = token(&client, &ns, "db", Some(AUDIENCE)).await?;
            let foreign = token(&client, &ns, "web", Some("other.example")).await?;
            let mut forged = web_token.clone().into_bytes();
            let last = forged.len() - 2;
            forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
            let forged = String::from_utf8(forged)?;

            let db_name = cp.name("db");
            let cases = [
                (
                    "a CSR for another name",
                    web.name.clone(),
                    web_token.clone(),
                    web.csr_for(&db_name),
                    Code::FailedPrecondition,
                ),
                (
                    "another ServiceAccount's identity",
                    db_name.clone(),
                    web_token.clone(),
                    web.csr_for(&db_name),
                    Code::FailedPrecondition,
                ),
                (
                    "another ServiceAccount's token",
                    web.name.clone(),
                    db_token,
                    web.csr_for(&web.name),
                    Code::FailedPrecondition,
                ),
                (
                    "a garbage token",
                    web.name.clone(),
                    "not-a-token".into(),
                    web.csr_for(&web.name),
                    Code::InvalidArgument,
                ),
                (
                    "a forged token",
                    web.name.clone(),
                    forged,
                    web.csr_for(&web.name),
                    Code::InvalidArgument,
                ),
                (
                    "a token for another audience",
                    web.name.clone(),
                    foreign,
                    web.csr_for(&web.name),
                    Code::InvalidArgument,
                ),
                (
                    "a garbage CSR",
                    web.name.clone(),
                    web_token.clone(),
                    b"garbage".to_vec(),
                    Code::InvalidArgument,
                ),
            ];
            for (what, identity, token, csr, code) in cases {
                let status = web
                    .certify_as(cp.channel(&web).await?, &identity, &token, csr)
                    .await?
                    .err()
                    .with_context(|| format!("{what} was certified"))?;
                ensure!(
                    status.code() == code,
                    "{what}: expected {code:?}, got {status:?}"
                );
            }
            ensure!(
                cp.running.metrics.certify_count("issued") == 0,
                "nothing was issued"
            );
            let events = event_reasons(&client, &ns).await?;
            ensure!(
                !events.iter().any(|(r, _)| r == "IssuedLeafCertificate"),
                "no issuance was recorded: {events:?}"
            );
            Ok(())
        },
    )
    .await
}

#[tokio::test]
async fn rotates_the_issuer_without_restart_and_skips_a_broken_one() -> Result<()> {
    with_identity(
        "identity-rotate",
        fixtures::ISSUER_CRT,
        fixtures::ISSUER_KEY,
        |client, cp| async move {
            ready(&cp).await?;
            let ns = cp.ns.clone();
            let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
            let proxy = cp.proxy("web")?;
            let token = token(&client, &ns, "web", Some(AUDIENCE)).await?;
            assert_eq!(
                issuer_of_next_leaf(&cp, &proxy, &token).await?,
                issuer_der(fixtures::ISSUER_CRT)?
            );

            // A new issuer from the same anchor serves the next Certify.
            secrets
                .replace(
                    ISSUER_SECRET,
                    &PostParams::default(),
                    &issuer_secret(fixtures::ISSUER_2_CRT, fixtures::ISSUER_2_KEY),
                )
                .await?;
            let issuer_2 = issuer_der(fixtures::ISSUER_2_CRT)?;
            oxlink_e2e::eventually("leaves from the new issuer", WAIT, || async {
                let issuer = issuer_of_next_leaf(&cp, &proxy, &token).await?;
                Ok(if issuer == issuer_2 {
                    Ok(())
                } else {
                    Err("still the old issuer")
                })
            })
            .await?;
            await_event(&client, &ns, "IssuerUpdated", "linkerd-identity").await?;

            // A broken one and one from another anchor are skipped; issuance goes on unchanged.
            // Each is applied alone and its own refusal awaited, so that neither can pass on the
            // other's event or before identity has seen it: the count of IssuerUpdateSkipped
            // must grow by one, and the Event must name this refusal's cause (a repeat with
            // another note is an Event of its own, as client-go records them).
            for (crt, key, cause) in [
                (
                    fixtures::ISSUER_CRT,
                    "-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n",
                    "Skipped identity issuer update: issuer key: ",
                ),
                (
                    fixtures::OTHER_ISSUER_CRT,
                    fixtures::OTHER_ISSUER_KEY,
                    "does not verify to the trust anchors",
                ),
            ] {
                let before = skipped_count(&client, &ns).await?;
                secrets
                    .replace(
                        ISSUER_SECRET,
                        &PostParams::default(),
                        &issuer_secret(crt, key),
                    )
                    .await?;
                oxlink_e2e::eventually("one more IssuerUpdateSkipped", WAIT, || async {
                    let now = skipped_count(&client, &ns).await?;
                    Ok(if now == before + 1 { Ok(()) } else { Err(now) })
                })
                .await?;
                await_event_note(&client, &ns, "IssuerUpdateSkipped", cause).await?;
                assert_eq!(issuer_of_next_leaf(&cp, &proxy, &token).await?, issuer_2);
            }
            Ok(())
        },
    )
    .await
}

/// In `--plaintext` mode (behind a sidecar), a broken issuer Secret yields UNAVAILABLE and
/// issues nothing until a valid issuer arrives, with no restart.
#[tokio::test]
async fn unavailable_until_a_valid_issuer_arrives() -> Result<()> {
    let (crt, key) = (fixtures::OTHER_ISSUER_CRT, fixtures::OTHER_ISSUER_KEY);
    with_identity_mode(
        "identity-unavailable",
        crt,
        key,
        true,
        |client, cp| async move {
            let ns = cp.ns.clone();
            let admin = cp.running.admin_addr.context("admin")?;
            await_event(&client, &ns, "IssuerUpdateSkipped", "linkerd-identity").await?;
            let (status, body) = http_get(admin, "/ready").await?;
            ensure!(status == 503 && body.contains("no valid issuer"), "{body}");

            let proxy = cp.proxy("web")?;
            let token = token(&client, &ns, "web", Some(AUDIENCE)).await?;
            let channel = proxy.connect_plaintext(cp.running.grpc_addr).await?;
            let status = proxy
                .certify(channel.clone(), &token)
                .await?
                .err()
                .context("certified without an issuer")?;
            ensure!(
                status.code() == Code::Unavailable
                    && status.message() == "cert issuer not ready yet",
                "{status:?}"
            );
            ensure!(cp.running.metrics.certify_count("issued") == 0);

            Api::<Secret>::namespaced(client.clone(), &ns)
                .replace(
                    ISSUER_SECRET,
                    &PostParams::default(),
                    &issuer_secret(fixtures::ISSUER_CRT, fixtures::ISSUER_KEY),
                )
                .await?;
            ready(&cp).await?;
            let certified = proxy
                .certify(channel, &token)
                .await?
                .map_err(|s| anyhow::anyhow!("certify refused: {s:?}"))?;
            assert_eq!(
                certified.intermediates[0].to_vec(),
                issuer_der(fixtures::ISSUER_CRT)?
            );
            Ok(())
        },
    )
    .await
}

/// Connections this test process holds to the API server.
async fn api_server_connections() -> Result<usize> {
    let url = kube::Config::infer().await?.cluster_url;
    let port = url.port_u16().context("the API server's port")?;
    Ok(oxlink_kube::proc::established_to(std::process::id(), port))
}

/// 1,000 Certify calls, each with its TokenReview, from 64 proxies at once leave identity with
/// a few connections to the API server (one HTTP/2 connection per client; other tests of this
/// binary run alongside and hold theirs), and those connections still serve afterwards.
#[tokio::test]
async fn concurrent_certify_keeps_few_api_server_connections() -> Result<()> {
    const PROXIES: usize = 64;
    const CALLS: usize = 1_000;
    const BOUND: usize = 24;
    with_identity(
        "identity-connections",
        fixtures::ISSUER_CRT,
        fixtures::ISSUER_KEY,
        |client, cp| async move {
            ready(&cp).await?;
            let accounts = ["web", "db"];
            let mut tokens = Vec::new();
            for sa in accounts {
                tokens.push(token(&client, &cp.ns, sa, Some(AUDIENCE)).await?);
            }
            let mut proxies = Vec::new();
            for i in 0..PROXIES {
                let proxy = cp.proxy(accounts[i % 2])?;
                let channel = cp.channel(&proxy).await?;
                proxies.push((proxy, channel, tokens[i % 2].clone()));
            }
            let proxies = std::sync::Arc::new(proxies);

            let certify_all = |calls: usize| {
                let proxies = proxies.clone();
                async move {
                    let mut tasks = tokio::task::JoinSet::new();
                    for i in 0..PROXIES {
                        let proxies = proxies.clone();
                        tasks.spawn(async move {
                            let (proxy, channel, token) = &proxies[i];
                            for _ in (i..calls).step_by(PROXIES) {
                                proxy
                                    .certify(channel.clone(), token)
                                    .await?
                                    .map_err(|s| anyhow::anyhow!("certify refused: {s:?}"))?;
                            }
                            anyhow::Ok(())
                        });
                    }
                    while let Some(done) = tasks.join_next().await {
                        done??;
                    }
                    anyhow::Ok(())
                }
            };

            let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
            let sampler = tokio::spawn(async move {
                let mut most = 0;
                loop {
                    most = most.max(api_server_connections().await?);
                    tokio::select! {
                        _ = &mut stopped => return anyhow::Ok(most),
                        _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                    }
                }
            });
            certify_all(CALLS).await?;
            let _ = stop.send(());
            let most = sampler.await??;
            let after = api_server_connections().await?;
            ensure!(
                most <= BOUND && after <= BOUND,
                "{CALLS} Certify calls from {PROXIES} proxies: up to {most} connections to the \
                 API server at once, {after} after; expected at most {BOUND}"
            );

            // The connections kept are usable: another round is served without opening more.
            certify_all(PROXIES * 2).await?;
            let again = api_server_connections().await?;
            ensure!(
                again <= BOUND,
                "{again} connections to the API server after a second round"
            );

            // identity counts its API-server requests and connections.
            let (status, metrics) =
                http_get(cp.running.admin_addr.context("admin")?, "/metrics").await?;
            assert_eq!(status, 200);
            for series in [
                "http_client_requests_total{client=\"k8s\",method=\"post\",code=\"201\"}",
                "http_client_open_connections{client=\"k8s\"}",
                "http_client_request_latency_seconds_bucket{",
            ] {
                ensure!(metrics.contains(series), "no {series} in\n{metrics}");
            }
            Ok(())
        },
    )
    .await
}
