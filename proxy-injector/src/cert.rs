//! The admission server's self-managed serving certificate: kept in a `kubernetes.io/tls`
//! Secret, created when missing, renewed well before it expires, and published as the
//! `caBundle` of the webhook configurations the injector serves: its MutatingWebhookConfiguration
//! and the ValidatingWebhookConfigurations of the ServiceProfile and policy validators.
//!
//! The certificate is self-signed (it is its own CA bundle), like the one Linkerd's chart
//! generates, but it is minted here rather than in a template, so upgrades do not rotate it.
//!
//! # Rotation with several replicas
//!
//! Every replica serves what the Secret's `tls.crt`/`tls.key` hold and watches the Secret, so
//! a change reaches all of them within a watch round; each also re-reads it every resync
//! interval, in case its watch is broken. The Secret's `ca.crt` is the `caBundle` to publish.
//! A rotation never lets the API server meet a certificate it does not trust:
//!
//! 1. **stage**: the replica that finds the certificate due mints the next one into
//!    `next.crt`/`next.key` and sets `ca.crt` to the old and the new certificate; nothing
//!    serves the new one yet;
//! 2. **promote**: once that two-certificate bundle is written to every webhook
//!    configuration, the new certificate moves to `tls.crt`/`tls.key`, and
//!    [`PREVIOUS_TRUSTED_UNTIL`] is set to now plus [`SelfManagedCert::rotation_grace`];
//!    replicas switch as their watch delivers the change, in any order, and the API server
//!    trusts both certificates meanwhile;
//! 3. **drop**: after the grace, `ca.crt` is the new certificate alone.
//!
//! The drop is timed rather than acknowledged by the replicas: a replica has no identity the
//! others could count (a Deployment's pods come and go, and a dead replica would hold the old
//! certificate forever), whereas the time it takes every live replica to see the Secret is
//! bounded by the resync interval, which the grace exceeds several times over.
//!
//! Any replica may take any step: each write replaces the Secret at the resourceVersion it
//! read, so two replicas racing make one rotation, not two. Every write raises the Secret's
//! [`CERT_GENERATION`], and the webhook configurations carry the generation of the bundle
//! they hold, written at the resourceVersion read, so a replica with an older view of the
//! Secret never puts back a bundle that lacks the certificate being served.

use crate::admission::base64;
use k8s_openapi::{
    ByteString,
    api::{
        admissionregistration::v1::{
            MutatingWebhookConfiguration, ValidatingWebhookConfiguration, WebhookClientConfig,
        },
        core::v1::Secret,
    },
};
use kube::{
    Api, Client, ResourceExt,
    api::{Patch, PatchParams, PostParams},
    runtime::{WatchStreamExt, watcher},
};
use oxlink_crds::names::control_plane::{
    CA_CRT_KEY, POLICY_VALIDATOR_SERVICE, POLICY_VALIDATOR_WEBHOOK_CONFIG,
    PROXY_INJECTOR_CERT_GENERATION as CERT_GENERATION, PROXY_INJECTOR_NEXT_CRT_KEY,
    PROXY_INJECTOR_NEXT_KEY_KEY, PROXY_INJECTOR_PREVIOUS_TRUSTED_UNTIL as PREVIOUS_TRUSTED_UNTIL,
    SP_VALIDATOR_SERVICE, SP_VALIDATOR_WEBHOOK_CONFIG, TLS_CRT_KEY, TLS_KEY_KEY,
};
use oxlink_tls::{ChainSummary, ServingCert};
use serde_json::json;
use std::{
    collections::BTreeMap,
    net::IpAddr,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// How the serving certificate is kept.
#[derive(Clone, Debug)]
pub struct SelfManagedCert {
    pub namespace: String,
    /// The Secret holding `tls.crt` and `tls.key`.
    pub secret: String,
    /// The MutatingWebhookConfiguration whose `caBundle`s are written.
    pub webhook_config: String,
    /// The ValidatingWebhookConfigurations whose `caBundle`s are written too.
    pub validating_configs: Vec<String>,
    /// Subject alternative names: DNS names or IP addresses.
    pub names: Vec<String>,
    pub lifetime: Duration,
    /// Renew when less than this remains.
    pub renew_before: Duration,
    /// How long the previous certificate stays in the `caBundle` after the new one is promoted:
    /// longer than any live replica takes to see the Secret change (see the module docs).
    pub rotation_grace: Duration,
}

/// How long the previous certificate stays trusted after a rotation by default: five times the
/// injector's Secret resync interval.
pub const DEFAULT_ROTATION_GRACE: Duration = Duration::from_secs(300);

/// How long a just-written `caBundle` is given to reach the API server's webhook clients before
/// the certificate it adds is served (the API server watches webhook configurations too).
const BUNDLE_SETTLE: Duration = Duration::from_secs(1);

/// The most Secret writes one reconciliation makes before giving up to contention.
const MAX_STEPS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("minting the serving certificate: {0}")]
    Mint(#[from] rcgen::Error),
    #[error("the serving certificate does not load: {0}")]
    Load(String),
    #[error("Secret {0} kept changing under us; trying again later")]
    Contended(String),
}

/// A certificate and key in PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertPem {
    pub crt: String,
    pub key: String,
}

/// What the Secret holds, as far as rotation goes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stored {
    /// `tls.crt`/`tls.key`: what every replica serves.
    pub serving: Option<CertPem>,
    /// `next.crt`/`next.key`: staged, trusted but not served yet.
    pub next: Option<CertPem>,
    /// `ca.crt`: the `caBundle` (PEM, one or two certificates).
    pub bundle: String,
    pub generation: u64,
    /// Until when the previous certificate stays in the bundle (Unix seconds).
    pub previous_until: Option<u64>,
}

/// The next step of a reconciliation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing usable is stored (so nothing valid is served): mint and store a certificate.
    Create,
    /// The served certificate is due: mint the next one and trust both.
    Stage,
    /// The next certificate is trusted: publish the bundle, then serve it.
    Promote,
    /// The grace is over: trust only the served certificate.
    DropPrevious,
    /// Publish, serve, and look again after this long (at the latest).
    Steady(Duration),
}

/// What a reconciliation leaves served.
#[derive(Clone, Debug)]
pub struct Reconciled {
    pub serving: CertPem,
    /// When the next step is due, if sooner than a resync.
    pub recheck: Duration,
}

// === impl Stored ===

impl Stored {
    /// Reads the Secret's keys and annotations; what does not parse is absent.
    pub fn read(secret: &Secret) -> Self {
        let empty = BTreeMap::new();
        let data = secret.data.as_ref().unwrap_or(&empty);
        let text = |k: &str| String::from_utf8(data.get(k)?.0.clone()).ok();
        let pair = |crt: &str, key: &str| {
            Some(CertPem {
                crt: text(crt)?,
                key: text(key)?,
            })
        };
        let serving = pair(TLS_CRT_KEY, TLS_KEY_KEY);
        let bundle = text(CA_CRT_KEY)
            .or_else(|| serving.as_ref().map(|s| s.crt.clone()))
            .unwrap_or_default();
        let annotation = |k: &str| secret.annotations().get(k)?.parse::<u64>().ok();
        Self {
            next: pair(PROXY_INJECTOR_NEXT_CRT_KEY, PROXY_INJECTOR_NEXT_KEY_KEY),
            serving,
            bundle,
            generation: annotation(CERT_GENERATION).unwrap_or(0),
            previous_until: annotation(PREVIOUS_TRUSTED_UNTIL),
        }
    }

    /// Writes these keys and annotations into `secret`, leaving its other fields alone.
    fn write_into(&self, secret: &mut Secret) {
        let mut data = BTreeMap::new();
        let mut put = |k: &str, v: &str| {
            data.insert(k.to_string(), ByteString(v.as_bytes().to_vec()));
        };
        if let Some(serving) = &self.serving {
            put(TLS_CRT_KEY, &serving.crt);
            put(TLS_KEY_KEY, &serving.key);
        }
        if let Some(next) = &self.next {
            put(PROXY_INJECTOR_NEXT_CRT_KEY, &next.crt);
            put(PROXY_INJECTOR_NEXT_KEY_KEY, &next.key);
        }
        put(CA_CRT_KEY, &self.bundle);
        secret.data = Some(data);
        secret.type_ = Some("kubernetes.io/tls".into());
        let annotations = secret.annotations_mut();
        annotations.insert(CERT_GENERATION.into(), self.generation.to_string());
        match self.previous_until {
            Some(until) => annotations.insert(PREVIOUS_TRUSTED_UNTIL.into(), until.to_string()),
            None => annotations.remove(PREVIOUS_TRUSTED_UNTIL),
        };
    }

    /// A fresh Secret content serving and trusting `pem` alone.
    fn fresh(pem: CertPem, generation: u64) -> Self {
        Self {
            bundle: pem.crt.clone(),
            serving: Some(pem),
            next: None,
            generation,
            previous_until: None,
        }
    }

    /// Step 1: `next` staged and trusted along with what is served.
    fn staged(&self, next: CertPem) -> Self {
        let served = self.serving.as_ref().map_or("", |s| s.crt.as_str());
        Self {
            bundle: bundle_of([served, next.crt.as_str()]),
            next: Some(next),
            generation: self.generation + 1,
            previous_until: None,
            serving: self.serving.clone(),
        }
    }

    /// Step 2: the staged certificate served; the bundle unchanged until `until`.
    fn promoted(&self, until: u64) -> Self {
        Self {
            serving: self.next.clone().or_else(|| self.serving.clone()),
            next: None,
            bundle: self.bundle.clone(),
            generation: self.generation + 1,
            previous_until: Some(until),
        }
    }

    /// Step 3: the served certificate alone trusted.
    fn dropped(&self) -> Self {
        Self {
            bundle: self
                .serving
                .as_ref()
                .map(|s| s.crt.clone())
                .unwrap_or_default(),
            previous_until: None,
            generation: self.generation + 1,
            ..self.clone()
        }
    }
}

/// PEM certificates concatenated, each once, in order.
fn bundle_of<'a>(pems: impl IntoIterator<Item = &'a str>) -> String {
    let mut seen: Vec<&str> = Vec::new();
    let mut out = String::new();
    for pem in pems.into_iter().map(str::trim).filter(|p| !p.is_empty()) {
        if !seen.contains(&pem) {
            seen.push(pem);
            out.push_str(pem);
            out.push('\n');
        }
    }
    out
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

// === impl SelfManagedCert ===

impl SelfManagedCert {
    /// The defaults for the injector's Service in `namespace`: `<service>.<namespace>.svc` and
    /// the validators' Services (which select the same pods), the validators' configurations,
    /// a year of validity, renewed 90 days before expiry.
    pub fn for_service(namespace: &str, service: &str, webhook_config: &str) -> Self {
        Self {
            namespace: namespace.into(),
            secret: oxlink_crds::names::control_plane::PROXY_INJECTOR_TLS_SECRET.into(),
            webhook_config: webhook_config.into(),
            validating_configs: vec![
                SP_VALIDATOR_WEBHOOK_CONFIG.into(),
                POLICY_VALIDATOR_WEBHOOK_CONFIG.into(),
            ],
            names: [service, SP_VALIDATOR_SERVICE, POLICY_VALIDATOR_SERVICE]
                .iter()
                .map(|svc| format!("{svc}.{namespace}.svc"))
                .collect(),
            lifetime: Duration::from_secs(365 * 24 * 3600),
            renew_before: Duration::from_secs(90 * 24 * 3600),
            rotation_grace: DEFAULT_ROTATION_GRACE,
        }
    }

    /// Makes sure a valid certificate is stored, served and published, taking every rotation
    /// step that is due (see the module docs); returns the certificate served.
    pub async fn ensure(
        &self,
        client: &Client,
        serving: &ServingCert,
    ) -> Result<CertPem, CertError> {
        Ok(self.reconcile(client, serving).await?.serving)
    }

    /// Takes the rotation steps that are due, then publishes the bundle and serves the stored
    /// certificate. Mints at most one certificate per call.
    pub async fn reconcile(
        &self,
        client: &Client,
        serving: &ServingCert,
    ) -> Result<Reconciled, CertError> {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &self.namespace);
        let mut minted = false;
        for _ in 0..MAX_STEPS {
            let existing = secrets.get_opt(&self.secret).await?;
            let stored = existing.as_ref().map(Stored::read).unwrap_or_default();
            let now = SystemTime::now();
            let step = self.plan(&stored, now, minted);
            let next = match step {
                Step::Create => {
                    minted = true;
                    Stored::fresh(self.mint(now)?, stored.generation + 1)
                }
                Step::Stage => {
                    minted = true;
                    stored.staged(self.mint(now)?)
                }
                Step::Promote => {
                    // Trusted everywhere first; then given a moment to reach the API server.
                    if self.publish(client, &stored).await? {
                        tokio::time::sleep(BUNDLE_SETTLE).await;
                    }
                    stored.promoted(unix(now + self.rotation_grace))
                }
                Step::DropPrevious => stored.dropped(),
                Step::Steady(recheck) => {
                    let pem = stored
                        .serving
                        .clone()
                        .ok_or_else(|| CertError::Load("no certificate stored".into()))?;
                    load(serving, &pem)?;
                    self.publish(client, &stored).await?;
                    return Ok(Reconciled {
                        serving: pem,
                        recheck,
                    });
                }
            };
            match self.store(&secrets, existing, &next).await {
                Ok(()) => {
                    tracing::info!(
                        secret = %self.secret,
                        step = ?step,
                        generation = next.generation,
                        "serving certificate"
                    );
                }
                // Another replica wrote first: look again.
                Err(kube::Error::Api(e)) if e.code == 409 => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(CertError::Contended(self.secret.clone()))
    }

    /// The next step for what is stored, at `now`; `minted` when this reconciliation has
    /// minted already (it then renews no further).
    pub fn plan(&self, stored: &Stored, now: SystemTime, minted: bool) -> Step {
        let Some(serving) = stored.serving.as_ref().filter(|s| loads(s)) else {
            return Step::Create;
        };
        if stored.next.as_ref().is_some_and(loads) {
            return Step::Promote;
        }
        if let Some(until) = stored.previous_until {
            let now = unix(now);
            if now >= until {
                return Step::DropPrevious;
            }
            return Step::Steady(Duration::from_secs(until - now));
        }
        if !minted && !self.still_good(serving, now) {
            return Step::Stage;
        }
        Step::Steady(Duration::MAX)
    }

    /// Reconciles on every change of the Secret and at least every `resync`, logging failures,
    /// until the watch ends.
    pub async fn run(self, client: Client, serving: Arc<ServingCert>, resync: Duration) {
        use futures::StreamExt;
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &self.namespace);
        let config = watcher::Config::default().fields(&format!("metadata.name={}", self.secret));
        let events = watcher(secrets, config).default_backoff();
        futures::pin_mut!(events);
        let mut served = None;
        let mut wait = resync;
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(Ok(_)) => {}
                    Some(Err(error)) => {
                        tracing::warn!(%error, secret = %self.secret, "watching the serving certificate");
                        continue;
                    }
                    None => return,
                },
                _ = tokio::time::sleep(wait) => {}
            }
            match self.reconcile(&client, &serving).await {
                Ok(done) => {
                    if served.as_ref() != Some(&done.serving.crt) {
                        if served.is_some() {
                            tracing::info!(secret = %self.secret, "serving the rotated certificate");
                        }
                        served = Some(done.serving.crt);
                    }
                    wait = done.recheck.min(resync);
                }
                Err(error) => {
                    tracing::warn!(%error, "keeping the serving certificate up to date");
                    wait = resync.min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Adds subject alternative names (DNS names or IP addresses) to the certificate, e.g.
    /// `127.0.0.1` for a process that the API server calls by URL.
    pub fn with_extra_names(mut self, extra: impl IntoIterator<Item = String>) -> Self {
        for name in extra {
            if !self.names.contains(&name) {
                self.names.push(name);
            }
        }
        self
    }

    /// Whether `pem` parses, covers our DNS names and IP addresses and is not due for renewal at `now`.
    fn still_good(&self, pem: &CertPem, now: SystemTime) -> bool {
        let Ok(summary) = ChainSummary::from_pem(pem.crt.as_bytes()) else {
            return false;
        };
        let Some(leaf) = summary.first() else {
            return false;
        };
        let Some(ips) = oxlink_tls::pem::certificates(pem.crt.as_bytes())
            .ok()
            .and_then(|chain| ip_sans(chain.first()?))
        else {
            return false;
        };
        let covers = self.names.iter().all(|n| match n.parse::<IpAddr>() {
            Ok(ip) => ips.contains(&ip),
            Err(_) => leaf.dns_names.contains(n),
        });
        let fresh = leaf
            .not_after
            .duration_since(now)
            .is_ok_and(|left| left > self.renew_before);
        covers && fresh && oxlink_tls::pem::private_key(pem.key.as_bytes()).is_ok()
    }

    /// A new self-signed certificate valid from an hour ago for [`Self::lifetime`].
    pub fn mint(&self, now: SystemTime) -> Result<CertPem, CertError> {
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(self.names.clone())?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(first) = self.names.first() {
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, first.clone());
        }
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::KeyEncipherment,
            rcgen::KeyUsagePurpose::KeyCertSign,
        ];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = (now - Duration::from_secs(3600)).into();
        params.not_after = (now + self.lifetime).into();
        let cert = params.self_signed(&key)?;
        Ok(CertPem {
            crt: cert.pem(),
            key: key.serialize_pem(),
        })
    }

    /// Writes `next` over `existing` at the resourceVersion read (or creates the Secret), so a
    /// concurrent writer makes this fail with 409 rather than be overwritten.
    async fn store(
        &self,
        secrets: &Api<Secret>,
        existing: Option<Secret>,
        next: &Stored,
    ) -> Result<(), kube::Error> {
        match existing {
            Some(mut secret) => {
                next.write_into(&mut secret);
                secrets
                    .replace(&self.secret, &PostParams::default(), &secret)
                    .await?;
            }
            None => {
                let mut secret = Secret {
                    metadata: kube::api::ObjectMeta {
                        name: Some(self.secret.clone()),
                        namespace: Some(self.namespace.clone()),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                next.write_into(&mut secret);
                secrets.create(&PostParams::default(), &secret).await?;
            }
        }
        Ok(())
    }

    /// Writes the stored bundle as the `caBundle` of every webhook of our configurations,
    /// unless a configuration holds a newer generation's; returns whether anything changed.
    async fn publish(&self, client: &Client, stored: &Stored) -> Result<bool, CertError> {
        let mut changed = publish_to(
            Api::<MutatingWebhookConfiguration>::all(client.clone()),
            &self.webhook_config,
            stored,
            |c| {
                client_configs(
                    c.webhooks
                        .iter()
                        .flatten()
                        .map(|w| (&w.name, &w.client_config)),
                )
            },
        )
        .await?;
        for name in &self.validating_configs {
            changed |= publish_to(
                Api::<ValidatingWebhookConfiguration>::all(client.clone()),
                name,
                stored,
                |c| {
                    client_configs(
                        c.webhooks
                            .iter()
                            .flatten()
                            .map(|w| (&w.name, &w.client_config)),
                    )
                },
            )
            .await?;
        }
        Ok(changed)
    }
}

/// Whether a certificate and key parse (whatever names and dates they carry).
fn loads(pem: &CertPem) -> bool {
    oxlink_tls::pem::certificates(pem.crt.as_bytes()).is_ok_and(|c| !c.is_empty())
        && oxlink_tls::pem::private_key(pem.key.as_bytes()).is_ok()
}

/// Each webhook's name and current `caBundle`.
fn client_configs<'a>(
    webhooks: impl Iterator<Item = (&'a String, &'a WebhookClientConfig)>,
) -> Vec<(String, Option<Vec<u8>>)> {
    webhooks
        .map(|(name, cc)| (name.clone(), cc.ca_bundle.as_ref().map(|b| b.0.clone())))
        .collect()
}

/// Patches the stored bundle into the webhooks of configuration `name` whose `caBundle`
/// differs, at the resourceVersion read and only if the configuration does not carry a newer
/// generation; returns whether it wrote. A missing configuration is logged and left alone (it
/// may be created after us).
async fn publish_to<K>(
    api: Api<K>,
    name: &str,
    stored: &Stored,
    webhooks: impl Fn(&K) -> Vec<(String, Option<Vec<u8>>)>,
) -> Result<bool, CertError>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
{
    let bundle = stored.bundle.as_bytes();
    for _ in 0..MAX_STEPS {
        let Some(config) = api.get_opt(name).await? else {
            tracing::warn!(
                %name,
                "the webhook configuration does not exist (yet); its caBundle is not written"
            );
            return Ok(false);
        };
        let theirs = config
            .meta()
            .annotations
            .as_ref()
            .and_then(|a| a.get(CERT_GENERATION)?.parse::<u64>().ok())
            .unwrap_or(0);
        if theirs > stored.generation {
            // A newer view of the Secret has been published; ours is stale.
            return Ok(false);
        }
        let stale = webhooks(&config)
            .into_iter()
            .filter(|(_, current)| current.as_deref() != Some(bundle))
            .map(|(webhook, _)| {
                json!({"name": webhook, "clientConfig": {"caBundle": base64(bundle)}})
            })
            .collect::<Vec<_>>();
        if stale.is_empty() && theirs == stored.generation {
            return Ok(false);
        }
        let patch = json!({
            "metadata": {
                "resourceVersion": config.meta().resource_version,
                "annotations": {CERT_GENERATION: stored.generation.to_string()},
            },
            "webhooks": stale,
        });
        match api
            .patch(name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
        {
            Ok(_) => {
                tracing::info!(%name, generation = stored.generation, "wrote the caBundle");
                return Ok(true);
            }
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(CertError::Contended(name.to_string()))
}

/// The IP-address SANs of a DER certificate; `None` when it does not parse.
fn ip_sans(der: &[u8]) -> Option<Vec<IpAddr>> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let san = cert.subject_alternative_name().ok()?;
    let ips = san
        .iter()
        .flat_map(|ext| &ext.value.general_names)
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => <[u8; 4]>::try_from(*bytes).ok().map(IpAddr::from),
                16 => <[u8; 16]>::try_from(*bytes).ok().map(IpAddr::from),
                _ => None,
            },
            _ => None,
        })
        .collect();
    Some(ips)
}

/// Presents `pem` on the next handshakes.
pub fn load(serving: &ServingCert, pem: &CertPem) -> Result<(), CertError> {
    let chain = oxlink_tls::pem::certificates(pem.crt.as_bytes())
        .map_err(|e| CertError::Load(e.to_string()))?;
    let key = oxlink_tls::pem::private_key(pem.key.as_bytes())
        .map_err(|e| CertError::Load(e.to_string()))?;
    serving
        .set_chain(chain, key)
        .map_err(|e| CertError::Load(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manager() -> SelfManagedCert {
        SelfManagedCert::for_service("linkerd", "linkerd-proxy-injector", "hook")
    }

    #[test]
    fn a_minted_certificate_covers_the_service_and_is_fresh_until_renewal() {
        let m = manager();
        let now = SystemTime::now();
        let pem = m.mint(now).unwrap();
        let leaf = &ChainSummary::from_pem(pem.crt.as_bytes()).unwrap()[0];
        assert_eq!(
            leaf.dns_names,
            [
                "linkerd-proxy-injector.linkerd.svc",
                "linkerd-sp-validator.linkerd.svc",
                "linkerd-policy-validator.linkerd.svc"
            ]
        );
        assert!(leaf.is_ca, "self-signed, it is its own CA bundle");
        assert!(m.still_good(&pem, now));
        let due = now + m.lifetime - m.renew_before + Duration::from_secs(60);
        assert!(!m.still_good(&pem, due), "renewed 90 days before expiry");
        load(&ServingCert::default(), &pem).unwrap();
    }

    #[test]
    fn a_rotation_stages_trusts_both_promotes_and_drops_the_old_after_the_grace() {
        let m = manager();
        let now = SystemTime::now();
        assert_eq!(m.plan(&Stored::default(), now, false), Step::Create);
        let old = m.mint(now).unwrap();
        let steady = Stored::fresh(old.clone(), 1);
        assert_eq!(steady.bundle.trim(), old.crt.trim());
        assert_eq!(m.plan(&steady, now, false), Step::Steady(Duration::MAX));

        // Due: the next certificate is trusted before anything serves it.
        let due = now + m.lifetime - m.renew_before + Duration::from_secs(60);
        assert_eq!(m.plan(&steady, due, false), Step::Stage);
        assert_eq!(
            m.plan(&steady, due, true),
            Step::Steady(Duration::MAX),
            "one rotation per reconciliation"
        );
        let new = m.mint(due).unwrap();
        let staged = steady.staged(new.clone());
        assert_eq!(
            staged.serving.as_ref(),
            Some(&old),
            "still serving the old one"
        );
        assert_eq!(
            staged.bundle,
            bundle_of([old.crt.as_str(), new.crt.as_str()])
        );
        assert_eq!(staged.generation, 2);
        assert_eq!(m.plan(&staged, due, false), Step::Promote);

        // Promoted: serving the new one, both trusted until the grace is over.
        let promoted = staged.promoted(unix(due) + 300);
        assert_eq!(promoted.serving.as_ref(), Some(&new));
        assert_eq!(promoted.next, None);
        assert_eq!(promoted.bundle, staged.bundle);
        assert_eq!(
            m.plan(&promoted, due, false),
            Step::Steady(Duration::from_secs(300))
        );
        let after = due + Duration::from_secs(300);
        assert_eq!(m.plan(&promoted, after, false), Step::DropPrevious);
        let dropped = promoted.dropped();
        assert_eq!(dropped.bundle.trim(), new.crt.trim());
        assert_eq!(dropped.previous_until, None);
        assert_eq!(dropped.generation, 4);
        assert_eq!(m.plan(&dropped, after, false), Step::Steady(Duration::MAX));

        // Each state survives a round trip through the Secret.
        for state in [&steady, &staged, &promoted, &dropped] {
            let mut secret = Secret::default();
            state.write_into(&mut secret);
            assert_eq!(&Stored::read(&secret), state);
        }
        // A Secret written before rotations were staged trusts what it serves.
        let mut legacy = Secret::default();
        steady.write_into(&mut legacy);
        legacy.data.as_mut().unwrap().remove(CA_CRT_KEY);
        legacy.metadata.annotations = None;
        let read = Stored::read(&legacy);
        assert_eq!(
            (read.bundle.as_str(), read.generation),
            (old.crt.as_str(), 0)
        );
    }

    #[test]
    fn garbage_in_the_secret_is_replaced_at_once() {
        let m = manager();
        let garbage = Stored {
            serving: Some(CertPem {
                crt: "garbage".into(),
                key: "garbage".into(),
            }),
            bundle: "garbage".into(),
            generation: 7,
            ..Stored::default()
        };
        assert_eq!(m.plan(&garbage, SystemTime::now(), false), Step::Create);
        // A staged certificate that does not load is not promoted.
        let mut staged = Stored::fresh(m.mint(SystemTime::now()).unwrap(), 1);
        staged.next = garbage.serving.clone();
        assert_eq!(
            m.plan(&staged, SystemTime::now(), false),
            Step::Steady(Duration::MAX)
        );
    }

    #[test]
    fn a_certificate_for_other_names_or_without_a_key_is_replaced() {
        let m = manager();
        let mut other = manager();
        other.names = vec!["elsewhere.example".into()];
        let now = SystemTime::now();
        assert!(!m.still_good(&other.mint(now).unwrap(), now));
        let mut keyless = m.mint(now).unwrap();
        keyless.key = "not a key".into();
        assert!(!m.still_good(&keyless, now));
        let garbage = CertPem {
            crt: "garbage".into(),
            key: String::new(),
        };
        assert!(!m.still_good(&garbage, now));
    }

    #[test]
    fn extra_names_become_dns_and_ip_sans_and_are_required() {
        let m = manager()
            .with_extra_names(["127.0.0.1", "localhost", "::1", "127.0.0.1"].map(String::from));
        assert_eq!(
            m.names,
            [
                "linkerd-proxy-injector.linkerd.svc",
                "linkerd-sp-validator.linkerd.svc",
                "linkerd-policy-validator.linkerd.svc",
                "127.0.0.1",
                "localhost",
                "::1"
            ]
        );
        let now = SystemTime::now();
        let pem = m.mint(now).unwrap();
        let leaf = &ChainSummary::from_pem(pem.crt.as_bytes()).unwrap()[0];
        assert_eq!(
            leaf.dns_names,
            [
                "linkerd-proxy-injector.linkerd.svc",
                "linkerd-sp-validator.linkerd.svc",
                "linkerd-policy-validator.linkerd.svc",
                "localhost"
            ]
        );
        let der = oxlink_tls::pem::certificates(pem.crt.as_bytes()).unwrap();
        assert_eq!(
            ip_sans(&der[0]).unwrap(),
            [
                "127.0.0.1".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
        assert!(m.still_good(&pem, now));
        // A certificate minted before the extra names were asked for is replaced, whether it
        // lacks an IP address or a DNS name.
        let plain = manager().mint(now).unwrap();
        assert!(!m.still_good(&plain, now));
        let only_ips = manager()
            .with_extra_names(["127.0.0.1", "::1"].map(String::from))
            .mint(now)
            .unwrap();
        assert!(!m.still_good(&only_ips, now));
        let other_ip = manager()
            .with_extra_names(["127.0.0.2", "localhost", "::1"].map(String::from))
            .mint(now)
            .unwrap();
        assert!(!m.still_good(&other_ip, now));
        // The served certificate answers TLS for 127.0.0.1.
        load(&ServingCert::default(), &pem).unwrap();
    }
}
