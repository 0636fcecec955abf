//! The admission server's self-managed serving certificate: kept in a `kubernetes.io/tls`
//! Secret, created when missing, renewed well before it expires, and published as the
//! `caBundle` of the webhook configurations the injector serves: its MutatingWebhookConfiguration
//! and the ValidatingWebhookConfigurations of the ServiceProfile and policy validators.
//!
//! The certificate is self-signed (it is its own CA bundle), like the one Linkerd's chart
//! generates, but it is minted here rather than in a template, so upgrades do not rotate it.

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
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use oxlink_crds::names::control_plane::{
    POLICY_VALIDATOR_SERVICE, POLICY_VALIDATOR_WEBHOOK_CONFIG, SP_VALIDATOR_SERVICE,
    SP_VALIDATOR_WEBHOOK_CONFIG, TLS_CRT_KEY, TLS_KEY_KEY,
};
use oxlink_tls::{ChainSummary, ServingCert};
use serde_json::json;
use std::{
    collections::BTreeMap,
    net::IpAddr,
    sync::Arc,
    time::{Duration, SystemTime},
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
}

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("minting the serving certificate: {0}")]
    Mint(#[from] rcgen::Error),
    #[error("the serving certificate does not load: {0}")]
    Load(String),
}

/// A certificate and key in PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertPem {
    pub crt: String,
    pub key: String,
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
        }
    }

    /// Makes sure a valid certificate is stored, served and published; returns it.
    pub async fn ensure(
        &self,
        client: &Client,
        serving: &ServingCert,
    ) -> Result<CertPem, CertError> {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &self.namespace);
        let existing = secrets.get_opt(&self.secret).await?;
        let current = existing.as_ref().and_then(read_secret);
        let pem = match current.filter(|pem| self.still_good(pem, SystemTime::now())) {
            Some(pem) => pem,
            None => {
                let pem = self.mint(SystemTime::now())?;
                self.store(&secrets, existing, &pem).await?;
                tracing::info!(secret = %self.secret, "stored a new serving certificate");
                pem
            }
        };
        load(serving, &pem)?;
        self.publish_ca_bundle(client, &pem.crt).await?;
        Ok(pem)
    }

    /// Runs [`Self::ensure`] every `interval` (after a first `interval`), logging failures,
    /// forever.
    pub async fn run(self, client: Client, serving: Arc<ServingCert>, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        // The first tick is immediate; the caller has just ensured.
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(error) = self.ensure(&client, &serving).await {
                tracing::warn!(%error, "keeping the serving certificate up to date");
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

    async fn store(
        &self,
        secrets: &Api<Secret>,
        existing: Option<Secret>,
        pem: &CertPem,
    ) -> Result<(), CertError> {
        let data = BTreeMap::from([
            (
                TLS_CRT_KEY.to_string(),
                ByteString(pem.crt.clone().into_bytes()),
            ),
            (
                TLS_KEY_KEY.to_string(),
                ByteString(pem.key.clone().into_bytes()),
            ),
        ]);
        match existing {
            Some(mut secret) => {
                // The resourceVersion makes a concurrent writer fail rather than be overwritten.
                secret.data = Some(data);
                secret.type_ = Some("kubernetes.io/tls".into());
                secrets
                    .replace(&self.secret, &PostParams::default(), &secret)
                    .await?;
            }
            None => {
                let secret = Secret {
                    metadata: kube::api::ObjectMeta {
                        name: Some(self.secret.clone()),
                        namespace: Some(self.namespace.clone()),
                        ..Default::default()
                    },
                    type_: Some("kubernetes.io/tls".into()),
                    data: Some(data),
                    ..Default::default()
                };
                secrets.create(&PostParams::default(), &secret).await?;
            }
        }
        Ok(())
    }

    /// Writes `crt` as the `caBundle` of every webhook of our configurations that lacks it.
    async fn publish_ca_bundle(&self, client: &Client, crt: &str) -> Result<(), CertError> {
        publish_to(
            Api::<MutatingWebhookConfiguration>::all(client.clone()),
            &self.webhook_config,
            crt,
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
            publish_to(
                Api::<ValidatingWebhookConfiguration>::all(client.clone()),
                name,
                crt,
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
        Ok(())
    }
}

/// Each webhook's name and current `caBundle`.
fn client_configs<'a>(
    webhooks: impl Iterator<Item = (&'a String, &'a WebhookClientConfig)>,
) -> Vec<(String, Option<Vec<u8>>)> {
    webhooks
        .map(|(name, cc)| (name.clone(), cc.ca_bundle.as_ref().map(|b| b.0.clone())))
        .collect()
}

/// Patches `crt` into the webhooks of configuration `name` whose `caBundle` differs; a missing
/// configuration is logged and left alone (it may be created after us).
async fn publish_to<K>(
    api: Api<K>,
    name: &str,
    crt: &str,
    webhooks: impl Fn(&K) -> Vec<(String, Option<Vec<u8>>)>,
) -> Result<(), CertError>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
{
    let Some(config) = api.get_opt(name).await? else {
        tracing::warn!(
            %name,
            "the webhook configuration does not exist (yet); its caBundle is not written"
        );
        return Ok(());
    };
    let stale = webhooks(&config)
        .into_iter()
        .filter(|(_, bundle)| bundle.as_deref() != Some(crt.as_bytes()))
        .map(|(webhook, _)| {
            json!({"name": webhook, "clientConfig": {"caBundle": base64(crt.as_bytes())}})
        })
        .collect::<Vec<_>>();
    if stale.is_empty() {
        return Ok(());
    }
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Strategic(json!({"webhooks": stale})),
    )
    .await?;
    tracing::info!(%name, "wrote the caBundle");
    Ok(())
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

fn read_secret(secret: &Secret) -> Option<CertPem> {
    let data = secret.data.as_ref()?;
    let text = |k: &str| String::from_utf8(data.get(k)?.0.clone()).ok();
    Some(CertPem {
        crt: text(TLS_CRT_KEY)?,
        key: text(TLS_KEY_KEY)?,
    })
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
