//! identity's in-process token verification against the real API server: bound tokens of real
//! pods are accepted without a TokenReview; every token the API server refuses is refused too,
//! locally where the token says enough (expired, forged, a deleted pod, a recreated
//! ServiceAccount) and through a TokenReview otherwise (another audience, another issuer, a
//! key nobody published); Certify keeps working for known pods while the API server is
//! stopped; and after the API server's signing key rotates, new tokens verify through the
//! refreshed key set.
//!
//! One test in its own binary: it stops and starts the local cluster.

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::{
    authentication::v1::{
        BoundObjectReference, TokenRequest, TokenRequestSpec, TokenReview, TokenReviewSpec,
    },
    core::v1::{Pod, ServiceAccount},
};
use kube::{
    Api, Client,
    api::{DeleteParams, PostParams},
};
use oxlink_e2e::{identity, localkube::Localkube, proxy::SimulatedProxy};
use oxlink_identity::Running;
use oxlink_tls::fixtures;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tonic::Code;

const AUDIENCE: &str = "identity.l5d.io";
const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn verifies_tokens_in_process_as_the_api_server_would() -> Result<()> {
    identity::with_identity(
        "identity-tokens",
        fixtures::ISSUER_CRT,
        fixtures::ISSUER_KEY,
        false,
        &["web", "db"],
        |client, ns, running| async move {
            let t = Tokens {
                client: client.clone(),
                ns: ns.clone(),
                running,
            };
            t.run().await
        },
    )
    .await
}

struct Tokens {
    client: Client,
    ns: String,
    running: Running,
}

impl Tokens {
    async fn run(&self) -> Result<()> {
        let local = self
            .running
            .local_tokens
            .clone()
            .context("local verification is on by default")?;
        oxlink_e2e::eventually("the key set and bound-object caches", WAIT, || {
            let synced = local.synced();
            async move { Ok(if synced { Ok(()) } else { Err("not synced") }) }
        })
        .await?;

        // A pod of ServiceAccount `web` and its projected token, as the kubelet mounts it.
        let (pod, pod_uid) = self.create_pod("web-0", "web").await?;
        let web_token = self
            .bound_token("web", Some(("Pod", &pod, &pod_uid)))
            .await?;
        let web = self.proxy("web")?;
        oxlink_e2e::eventually("the pod's token verified in process", WAIT, || async {
            let before = self.verified();
            let result = self.certify(&web, &web_token).await?;
            Ok(match result {
                Ok(()) if self.verified() > before => Ok(()),
                other => Err(format!("{other:?}")),
            })
        })
        .await?;
        let reviews = self.reviews();
        self.certify(&web, &web_token)
            .await?
            .map_err(|s| anyhow::anyhow!("{s:?}"))?;
        ensure!(
            self.reviews() == reviews,
            "a known pod's token needs no TokenReview"
        );

        // Tokens signed with the API server's own key (localkube's, when the test has its
        // directory): expired, and not valid yet.
        let signer = match std::env::var_os(oxlink_e2e::localkube::DIR_ENV) {
            Some(_) => Some(ApiServerKey::read()?),
            None => None,
        };
        let claims = claims_of(&web_token)?;
        let kid = kid_of(&web_token)?;
        let now = unix_now();
        let expired = with(
            &claims,
            &[
                ("exp", json!(now - 3600)),
                ("iat", json!(now - 7200)),
                ("nbf", json!(now - 7200)),
            ],
        );
        let early = with(
            &claims,
            &[("nbf", json!(now + 3600)), ("exp", json!(now + 7200))],
        );
        // The same claims signed by another cluster's key, under the known and an unknown key id.
        let other = ApiServerKey::generate()?;
        // Another audience; the ServiceAccount-only token of `db`, before its ServiceAccount is
        // deleted and recreated.
        let other_audience = self.token_for("web", "other.example").await?;
        let db_token = self.bound_token("db", None).await?;
        let db = self.proxy("db")?;
        self.certify(&db, &db_token)
            .await?
            .map_err(|s| anyhow::anyhow!("db before its ServiceAccount is recreated: {s:?}"))?;
        let old_db_uid = self.recreate_service_account("db").await?;
        let mut forged = web_token.clone().into_bytes();
        let last = forged.len() - 2;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged)?;

        // (what, proxy, token, refused in process without a TokenReview)
        let mut cases: Vec<(&str, &SimulatedProxy, String, bool)> = vec![
            ("a forged signature", &web, forged, true),
            (
                "another cluster's key under the known key id",
                &web,
                other.sign(&kid, &claims)?,
                true,
            ),
            (
                "another cluster's key under its own key id",
                &web,
                other.sign("other-cluster", &claims)?,
                false,
            ),
            (
                "another issuer",
                &web,
                other.sign(
                    "other-cluster",
                    &with(&claims, &[("iss", json!("https://other.example"))]),
                )?,
                false,
            ),
            ("a token for another audience", &web, other_audience, false),
        ];
        match &signer {
            Some(signer) => {
                cases.push(("an expired token", &web, signer.sign(&kid, &expired)?, true));
                cases.push((
                    "a token not valid yet",
                    &web,
                    signer.sign(&kid, &early)?,
                    true,
                ));
            }
            None => eprintln!(
                "expired and not-yet-valid tokens left out: signing them needs the local \
                 cluster's key ({} unset)",
                oxlink_e2e::localkube::DIR_ENV
            ),
        }
        self.expect_refused(&cases).await?;

        // The recreated ServiceAccount: its old token is refused once the cache has seen the
        // deletion.
        self.refused_in_process("db's token after db was recreated", &db, &db_token)
            .await?;
        ensure!(
            !self.review(&db_token).await?,
            "the API server refuses db's old token (uid {old_db_uid}) too"
        );

        // A deleted pod: its token is refused once the cache has seen the deletion.
        Api::<Pod>::namespaced(self.client.clone(), &self.ns)
            .delete(&pod, &DeleteParams::default().grace_period(0))
            .await?;
        self.refused_in_process("the deleted pod's token", &web, &web_token)
            .await?;
        ensure!(
            !self.review(&web_token).await?,
            "the API server refuses the deleted pod's token"
        );

        self.api_server_stopped_and_key_rotated().await
    }

    /// Stops the cluster: a known pod still gets certificates. Then the API server's signing
    /// key rotates (the old key stays trusted) and the cluster starts again: tokens signed with
    /// the new key verify in process once identity has refreshed its key set.
    async fn api_server_stopped_and_key_rotated(&self) -> Result<()> {
        let Some(cluster) = Localkube::from_env().await? else {
            return oxlink_e2e::skip(
                "stopping the API server and rotating its key need the local cluster (OXLINK_E2E_LOCALKUBE_*)",
            );
        };
        let (pod, uid) = self.create_pod("web-1", "web").await?;
        let token = self.bound_token("web", Some(("Pod", &pod, &uid))).await?;
        let web = self.proxy("web")?;
        oxlink_e2e::eventually("web-1's token verified in process", WAIT, || async {
            let before = self.verified();
            Ok(match self.certify(&web, &token).await? {
                Ok(()) if self.verified() > before => Ok(()),
                other => Err(format!("{other:?}")),
            })
        })
        .await?;

        cluster.stop().await?;
        let result = async {
            let fresh = self.proxy("web")?;
            self.certify(&fresh, &token)
                .await?
                .map_err(|s| anyhow::anyhow!("Certify with the API server stopped: {s:?}"))?;
            ApiServerKey::rotate_to(&ApiServerKey::generate()?)
        }
        .await;
        cluster.start().await?;
        result?;

        let rotated = self.bound_token("web", Some(("Pod", &pod, &uid))).await?;
        let (old_kid, new_kid) = (kid_of(&token)?, kid_of(&rotated)?);
        ensure!(
            old_kid != new_kid,
            "the API server signs with the new key ({new_kid})"
        );
        oxlink_e2e::eventually(
            "a token of the new key verified in process",
            WAIT,
            || async {
                let before = self.verified();
                Ok(match self.certify(&web, &rotated).await {
                    Ok(Ok(())) if self.verified() > before => Ok(()),
                    other => Err(format!("{other:?}")),
                })
            },
        )
        .await?;
        let before = self.verified();
        self.certify(&web, &token)
            .await?
            .map_err(|s| anyhow::anyhow!("a token of the old key after the rotation: {s:?}"))?;
        ensure!(
            self.verified() > before,
            "old-key tokens still verify in process"
        );
        Ok(())
    }

    async fn expect_refused(&self, cases: &[(&str, &SimulatedProxy, String, bool)]) -> Result<()> {
        for (what, proxy, token, local) in cases {
            let reviews = self.reviews();
            let status = self
                .certify(proxy, token)
                .await?
                .err()
                .with_context(|| format!("{what} was certified"))?;
            ensure!(
                status.code() == Code::InvalidArgument,
                "{what}: expected InvalidArgument, got {status:?}"
            );
            let reviewed = self.reviews() > reviews;
            ensure!(
                reviewed != *local,
                "{what}: refused {} a TokenReview",
                if reviewed { "with" } else { "without" }
            );
            ensure!(
                !self.review(token).await?,
                "{what}: the API server accepts it"
            );
        }
        Ok(())
    }

    /// Waits until `token` is refused in process, without a TokenReview (the watch has seen
    /// the change).
    async fn refused_in_process(
        &self,
        what: &str,
        proxy: &SimulatedProxy,
        token: &str,
    ) -> Result<()> {
        oxlink_e2e::eventually(&format!("{what} refused in process"), WAIT, || async {
            let (reviews, rejected) = (self.reviews(), self.rejected());
            let result = self.certify(proxy, token).await?;
            Ok(match result {
                Err(s)
                    if s.code() == Code::InvalidArgument
                        && self.reviews() == reviews
                        && self.rejected() > rejected =>
                {
                    Ok(())
                }
                other => Err(format!("{other:?}")),
            })
        })
        .await
    }

    fn verified(&self) -> u64 {
        self.running.metrics.token_verification_count("verified")
    }

    fn rejected(&self) -> u64 {
        self.running.metrics.token_verification_count("rejected")
    }

    fn reviews(&self) -> u64 {
        self.running.metrics.token_review_count()
    }

    fn proxy(&self, sa: &str) -> Result<SimulatedProxy> {
        let name = format!(
            "{sa}.{}.serviceaccount.identity.{}.cluster.local",
            self.ns, self.ns
        );
        SimulatedProxy::new(&name, fixtures::ANCHOR_CRT)
    }

    async fn certify(
        &self,
        proxy: &SimulatedProxy,
        token: &str,
    ) -> Result<std::result::Result<(), tonic::Status>> {
        let channel = proxy
            .connect(self.running.grpc_addr, &self.running.identity)
            .await?;
        Ok(proxy.certify(channel, token).await?.map(|_| ()))
    }

    /// Whether the API server authenticates `token` for identity's audience.
    async fn review(&self, token: &str) -> Result<bool> {
        let review = Api::<TokenReview>::all(self.client.clone())
            .create(
                &PostParams::default(),
                &TokenReview {
                    spec: TokenReviewSpec {
                        token: Some(token.into()),
                        audiences: Some(vec![AUDIENCE.into()]),
                    },
                    ..Default::default()
                },
            )
            .await?;
        Ok(review.status.and_then(|s| s.authenticated) == Some(true))
    }

    async fn create_pod(&self, name: &str, sa: &str) -> Result<(String, String)> {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {
                "serviceAccountName": sa,
                "containers": [{"name": "app", "image": "example.invalid/app:1"}],
            },
        }))?;
        let pod = Api::<Pod>::namespaced(self.client.clone(), &self.ns)
            .create(&PostParams::default(), &pod)
            .await?;
        Ok((name.into(), pod.metadata.uid.context("the pod's uid")?))
    }

    /// A token for identity's audience, bound to `object` (kind, name, uid) when given.
    async fn bound_token(&self, sa: &str, object: Option<(&str, &str, &str)>) -> Result<String> {
        self.request_token(sa, AUDIENCE, object).await
    }

    async fn token_for(&self, sa: &str, audience: &str) -> Result<String> {
        self.request_token(sa, audience, None).await
    }

    async fn request_token(
        &self,
        sa: &str,
        audience: &str,
        object: Option<(&str, &str, &str)>,
    ) -> Result<String> {
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: vec![audience.into()],
                expiration_seconds: Some(3600),
                bound_object_ref: object.map(|(kind, name, uid)| BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some(kind.into()),
                    name: Some(name.into()),
                    uid: Some(uid.into()),
                }),
            },
            ..Default::default()
        };
        Ok(
            Api::<ServiceAccount>::namespaced(self.client.clone(), &self.ns)
                .create_token_request(sa, &PostParams::default(), &request)
                .await
                .with_context(|| format!("a token for {sa}"))?
                .status
                .context("TokenRequest status")?
                .token,
        )
    }

    /// Deletes and recreates ServiceAccount `sa`, once identity's cache has the new UID;
    /// returns the old UID.
    async fn recreate_service_account(&self, sa: &str) -> Result<String> {
        let api = Api::<ServiceAccount>::namespaced(self.client.clone(), &self.ns);
        let old = api.get(sa).await?.metadata.uid.context("uid")?;
        api.delete(sa, &DeleteParams::default()).await?;
        oxlink_e2e::eventually("the ServiceAccount to be gone", WAIT, || async {
            Ok(match api.get_opt(sa).await? {
                None => Ok(()),
                Some(_) => Err("still there"),
            })
        })
        .await?;
        api.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": sa}}))?,
        )
        .await?;
        Ok(old)
    }
}

/// A P-256 signing key of the API server's kind (localkube's `sa.key`).
struct ApiServerKey {
    key: EcdsaKeyPair,
    pkcs8: Vec<u8>,
    spki_pem: String,
}

impl ApiServerKey {
    fn path() -> Result<std::path::PathBuf> {
        let dir = std::env::var_os(oxlink_e2e::localkube::DIR_ENV)
            .context("OXLINK_E2E_LOCALKUBE_DIR names the cluster's state directory")?;
        Ok(std::path::Path::new(&dir).join("pki").join("sa.key"))
    }

    /// The key the API server signs with (the first private key of `sa.key`).
    fn read() -> Result<Self> {
        let pem = std::fs::read(Self::path()?)?;
        Self::from_pair(oxlink_tls::pem::key_pair(&pem)?)
    }

    fn generate() -> Result<Self> {
        Self::from_pair(rcgen::KeyPair::generate()?)
    }

    fn from_pair(pair: rcgen::KeyPair) -> Result<Self> {
        let pkcs8 = pair.serialize_der();
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &pkcs8,
            &ring::rand::SystemRandom::new(),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Self {
            key,
            pkcs8,
            spki_pem: pair.public_key_pem(),
        })
    }

    fn sign(&self, kid: &str, claims: &Value) -> Result<String> {
        let header = json!({"alg": "ES256", "kid": kid});
        let signed = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let sig = self
            .key
            .sign(&ring::rand::SystemRandom::new(), signed.as_bytes())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(format!("{signed}.{}", b64url(sig.as_ref())))
    }

    /// Makes `new` the signing key of the (stopped) cluster; this key and every earlier one stay
    /// trusted. kube-apiserver signs with the first private key of the file and trusts every
    /// public key in it (an EC key in PKCS#8 counts only for signing, hence its PUBLIC KEY).
    fn rotate_to(new: &ApiServerKey) -> Result<()> {
        let path = Self::path()?;
        let old = std::fs::read_to_string(&path)?;
        let pem = [
            oxlink_tls::pem::encode("PRIVATE KEY", &new.pkcs8),
            new.spki_pem.clone(),
            old,
        ]
        .concat();
        std::fs::write(&path, pem)?;
        Ok(())
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64
}

fn part(token: &str, i: usize) -> Result<Value> {
    let part = token.split('.').nth(i).context("a JWS part")?;
    Ok(serde_json::from_slice(&b64url_decode(part)?)?)
}

fn claims_of(token: &str) -> Result<Value> {
    part(token, 1)
}

fn kid_of(token: &str) -> Result<String> {
    part(token, 0)?["kid"]
        .as_str()
        .map(String::from)
        .context("the token's kid")
}

fn with(claims: &Value, changes: &[(&str, Value)]) -> Value {
    let mut claims = claims.clone();
    for (k, v) in changes {
        claims[*k] = v.clone();
    }
    claims
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn b64url(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let mut acc = [0u8; 3];
        acc[..chunk.len()].copy_from_slice(chunk);
        let n = u32::from_be_bytes([0, acc[0], acc[1], acc[2]]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn b64url_decode(s: &str) -> Result<Vec<u8>> {
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c).context("base64url")? as u32;
        bits = bits << 6 | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    Ok(out)
}
