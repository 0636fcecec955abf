//! `linkerd-identity` and `linkerd-webhooks-and-apisvc-tls`: the mesh's trust anchors and
//! issuer, and the admission webhooks' serving certificates, judged as `linkerd check` does.

use super::{
    checks::message,
    report::{Category, Outcome},
};
use crate::algorithm;
use k8s_openapi::api::{
    admissionregistration::v1::{
        MutatingWebhookConfiguration, ValidatingWebhookConfiguration, WebhookClientConfig,
    },
    core::v1::{ConfigMap, Secret},
};
use kube::{Api, Client};
use oxlink_crds::names::control_plane as cp;
use oxlink_tls::{ChainSummary, IssuerCredentials, TrustBundle, utc_rfc3339};
use std::time::{Duration, SystemTime};

/// Linkerd's threshold for "expires soon" (`expirationWarningThresholdInDays`).
pub(crate) const EXPIRY_WARNING: Duration = Duration::from_secs(60 * 24 * 3600);

/// Linkerd's `CheckCertValidityPeriod`: `not valid before: T` or
/// `not valid anymore. Expired on T`.
pub(crate) fn validity(cert: &ChainSummary, now: SystemTime) -> Result<(), String> {
    if cert.not_before > now {
        Err(format!(
            "not valid before: {}",
            utc_rfc3339(cert.not_before)
        ))
    } else if cert.not_after < now {
        Err(format!(
            "not valid anymore. Expired on {}",
            utc_rfc3339(cert.not_after)
        ))
    } else {
        Ok(())
    }
}

/// Linkerd's `CheckExpiringSoon`: `will expire on T` within 60 days.
pub(crate) fn expiring_soon(cert: &ChainSummary, now: SystemTime) -> Result<(), String> {
    if now + EXPIRY_WARNING > cert.not_after {
        Err(format!("will expire on {}", utc_rfc3339(cert.not_after)))
    } else {
        Ok(())
    }
}

/// Applies `check` to each anchor; the failures as Linkerd lists them under `heading`.
pub(crate) fn each_anchor(
    anchors: &[ChainSummary],
    heading: &str,
    check: impl Fn(&ChainSummary) -> Result<(), String>,
) -> Result<(), String> {
    let failures: Vec<String> = anchors
        .iter()
        .filter_map(|a| check(a).err().map(|e| format!("* {} {e}", a.subject)))
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("{heading}:\n\t{}", failures.join("\n\t")))
    }
}

// === linkerd-identity ===

/// The trust anchors, the issuer, whether their keys are of a supported kind, and whether the
/// issuer loads against the anchors.
pub(crate) struct IdentityMaterial {
    pub(crate) anchors: Vec<ChainSummary>,
    pub(crate) anchors_algorithm: Result<(), String>,
    pub(crate) issuer: ChainSummary,
    pub(crate) issuer_algorithm: Result<(), String>,
    pub(crate) issued_by_anchor: Result<(), String>,
}

pub(crate) async fn identity(client: &Client, ns: &str) -> Category {
    let loaded = load_identity(client, ns).await;
    let mut checks = identity_checks(loaded, SystemTime::now());
    checks.push(rotation(client, ns).await);
    Category::new("linkerd-identity", checks)
}

/// Whether a trust-anchor rotation was left unfinished (`oxlink identity rotate-anchor`).
async fn rotation(client: &Client, ns: &str) -> Outcome {
    let annotation = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get_metadata_opt(cp::TRUST_ROOTS_CONFIGMAP)
        .await
        .ok()
        .flatten()
        .and_then(|m| m.metadata.annotations)
        .and_then(|mut a| a.remove(oxlink_crds::names::annotations::ANCHOR_ROTATION));
    Outcome::new(
        "no trust anchor rotation is left unfinished",
        "l5d-identity-trust-anchor-rotation",
        crate::identity::rotate::check_rotation(annotation.as_deref()),
    )
    .warn_only()
}

/// The checks of `linkerd-identity`, given what was loaded.
pub(crate) fn identity_checks(
    loaded: Result<IdentityMaterial, String>,
    now: SystemTime,
) -> Vec<Outcome> {
    let material = match loaded {
        Ok(material) => material,
        Err(e) => {
            return vec![
                Outcome::new(
                    "certificate config is valid",
                    "l5d-identity-cert-config-valid",
                    Err(e),
                )
                .fatal(),
            ];
        }
    };
    let IdentityMaterial {
        anchors,
        anchors_algorithm,
        issuer,
        issuer_algorithm,
        issued_by_anchor,
    } = material;
    vec![
        Outcome::new(
            "certificate config is valid",
            "l5d-identity-cert-config-valid",
            Ok(()),
        ),
        Outcome::new(
            "trust anchors are using supported crypto algorithm",
            "l5d-identity-trustAnchors-use-supported-crypto",
            anchors_algorithm,
        )
        .fatal(),
        Outcome::new(
            "trust anchors are within their validity period",
            "l5d-identity-trustAnchors-are-time-valid",
            each_anchor(&anchors, "Invalid anchors", |a| validity(a, now)),
        )
        .fatal(),
        Outcome::new(
            "trust anchors are valid for at least 60 days",
            "l5d-identity-trustAnchors-not-expiring-soon",
            each_anchor(&anchors, "Anchors expiring soon", |a| expiring_soon(a, now)),
        )
        .warn_only(),
        Outcome::new(
            "issuer cert is using supported crypto algorithm",
            "l5d-identity-issuer-cert-uses-supported-crypto",
            issuer_algorithm.map_err(|e| format!("issuer certificate {e}")),
        )
        .fatal(),
        Outcome::new(
            "issuer cert is within its validity period",
            "l5d-identity-issuer-cert-is-time-valid",
            validity(&issuer, now).map_err(|e| format!("issuer certificate is {e}")),
        )
        .fatal(),
        Outcome::new(
            "issuer cert is valid for at least 60 days",
            "l5d-identity-issuer-cert-not-expiring-soon",
            expiring_soon(&issuer, now).map_err(|e| format!("issuer certificate {e}")),
        )
        .warn_only(),
        Outcome::new(
            "issuer cert is issued by the trust anchor",
            "l5d-identity-issuer-cert-issued-by-trust-anchor",
            issued_by_anchor,
        ),
    ]
}

/// The trust anchors from `linkerd-identity-trust-roots` (PEM, as the proxies get them).
pub(crate) async fn trust_roots(client: &Client, ns: &str) -> Result<String, String> {
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    configmaps
        .get(cp::TRUST_ROOTS_CONFIGMAP)
        .await
        .map_err(|e| message(&e))?
        .data
        .and_then(|mut d| d.remove(cp::TRUST_ROOTS_KEY))
        .ok_or_else(|| {
            format!(
                "key {} needs to exist in configmap {}",
                cp::TRUST_ROOTS_KEY,
                cp::TRUST_ROOTS_CONFIGMAP
            )
        })
}

async fn load_identity(client: &Client, ns: &str) -> Result<IdentityMaterial, String> {
    let roots = trust_roots(client, ns).await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let secret = secrets
        .get(cp::IDENTITY_ISSUER_SECRET)
        .await
        .map_err(|e| message(&e))?;
    identity_material(&roots, &secret)
}

/// Reads the issuer from its Secret (either scheme) and judges it against `roots`.
pub(crate) fn identity_material(roots: &str, secret: &Secret) -> Result<IdentityMaterial, String> {
    let anchors =
        ChainSummary::from_pem(roots.as_bytes()).map_err(|e| format!("trust anchors: {e}"))?;
    if anchors.is_empty() {
        return Err(format!(
            "{} holds no certificate",
            cp::TRUST_ROOTS_CONFIGMAP
        ));
    }
    let bundle =
        TrustBundle::from_pem(roots.as_bytes()).map_err(|e| format!("trust anchors: {e}"))?;
    let (crt, key) = secret_pair(secret, cp::IDENTITY_ISSUER_SECRET, true)?;
    let chain = ChainSummary::from_pem(&crt).map_err(|e| format!("issuer certificate: {e}"))?;
    let issuer = chain
        .into_iter()
        .next()
        .ok_or_else(|| format!("{} holds no certificate", cp::IDENTITY_ISSUER_SECRET))?;
    // Loading it as identity would: signed by an anchor, key matching. Dates are judged by the
    // validity checks, so an expired issuer is reported there rather than here.
    let issued_by_anchor = IssuerCredentials::from_pem(&crt, &key, &bundle, issuer.not_before)
        .map(drop)
        .map_err(|e| e.to_string());
    let anchors_algorithm = each_anchor_der(roots.as_bytes(), &anchors)?;
    let issuer_der = oxlink_tls::pem::certificates(&crt).map_err(|e| e.to_string())?;
    Ok(IdentityMaterial {
        anchors,
        anchors_algorithm,
        issuer,
        issuer_algorithm: algorithm::issuer(&issuer_der[0]),
        issued_by_anchor,
    })
}

/// Linkerd's `Invalid trustAnchors:` list of anchors whose key is not supported.
fn each_anchor_der(pem: &[u8], anchors: &[ChainSummary]) -> Result<Result<(), String>, String> {
    let ders = oxlink_tls::pem::certificates(pem).map_err(|e| e.to_string())?;
    let failures: Vec<String> = ders
        .iter()
        .zip(anchors)
        .filter_map(|(der, a)| {
            algorithm::anchor(der)
                .err()
                .map(|e| format!("* {} {e}", a.subject))
        })
        .collect();
    Ok(if failures.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "Invalid trustAnchors:\n\t{}",
            failures.join("\n\t")
        ))
    })
}

/// The certificate and key of a Secret: `tls.crt`/`tls.key`, or with `legacy` also Linkerd's
/// `crt.pem`/`key.pem`.
fn secret_pair(secret: &Secret, name: &str, legacy: bool) -> Result<(Vec<u8>, Vec<u8>), String> {
    let data = secret.data.clone().unwrap_or_default();
    let get = |k: &str| data.get(k).map(|v| v.0.clone());
    if legacy && let (Some(crt), Some(key)) = (get(cp::ISSUER_CRT_KEY), get(cp::ISSUER_KEY_KEY)) {
        return Ok((crt, key));
    }
    let crt = get(cp::TLS_CRT_KEY)
        .ok_or_else(|| format!("key {} needs to exist in secret {name}", cp::TLS_CRT_KEY))?;
    let key = get(cp::TLS_KEY_KEY)
        .ok_or_else(|| format!("key {} needs to exist in secret {name}", cp::TLS_KEY_KEY))?;
    Ok((crt, key))
}

// === linkerd-webhooks-and-apisvc-tls ===

/// One admission webhook whose serving certificate `linkerd check` judges.
struct Webhook {
    /// `proxy-injector`, `sp-validator`, `policy-validator`.
    label: &'static str,
    valid: &'static str,
    valid_anchor: &'static str,
    lasting: &'static str,
    lasting_anchor: &'static str,
    config: &'static str,
    mutating: bool,
    /// Its own serving Secret; when absent, the proxy injector's serves it (oxlink runs the
    /// validators in the injector's admission server).
    secret: &'static str,
}

const WEBHOOKS: [Webhook; 3] = [
    Webhook {
        label: "proxy-injector",
        valid: "proxy-injector webhook has valid cert",
        valid_anchor: "l5d-proxy-injector-webhook-cert-valid",
        lasting: "proxy-injector cert is valid for at least 60 days",
        lasting_anchor: "l5d-proxy-injector-webhook-cert-not-expiring-soon",
        config: cp::PROXY_INJECTOR_WEBHOOK_CONFIG,
        mutating: true,
        secret: cp::PROXY_INJECTOR_TLS_SECRET,
    },
    Webhook {
        label: "sp-validator",
        valid: "sp-validator webhook has valid cert",
        valid_anchor: "l5d-sp-validator-webhook-cert-valid",
        lasting: "sp-validator cert is valid for at least 60 days",
        lasting_anchor: "l5d-sp-validator-webhook-cert-not-expiring-soon",
        config: cp::SP_VALIDATOR_WEBHOOK_CONFIG,
        mutating: false,
        secret: cp::SP_VALIDATOR_TLS_SECRET,
    },
    Webhook {
        label: "policy-validator",
        valid: "policy-validator webhook has valid cert",
        valid_anchor: "l5d-policy-validator-webhook-cert-valid",
        lasting: "policy-validator cert is valid for at least 60 days",
        lasting_anchor: "l5d-policy-validator-webhook-cert-not-expiring-soon",
        config: cp::POLICY_VALIDATOR_WEBHOOK_CONFIG,
        mutating: false,
        secret: cp::POLICY_VALIDATOR_TLS_SECRET,
    },
];

pub(crate) async fn webhooks(client: &Client, ns: &str) -> Category {
    let now = SystemTime::now();
    let mut checks = Vec::new();
    for webhook in &WEBHOOKS {
        let bundle = ca_bundle(client, webhook).await;
        // Only the injector is required; the validators may not be installed.
        if webhook.mutating || bundle.as_ref().map_or(true, Option::is_some) {
            let bundle = bundle.and_then(|b| {
                b.ok_or_else(|| {
                    format!(
                        "mutatingwebhookconfigurations.admissionregistration.k8s.io \"{}\" not found",
                        webhook.config
                    )
                })
            });
            let cert = serving_cert(client, ns, webhook).await;
            let (valid, lasting) = match (bundle, cert) {
                (Ok(bundle), Ok((crt, name))) => (
                    webhook_cert(&bundle, &crt, &name, now),
                    webhook_cert_lasting(&crt, now),
                ),
                (Err(e), _) | (_, Err(e)) => (Err(e.clone()), Err(e)),
            };
            checks.push(Outcome::new(webhook.valid, webhook.valid_anchor, valid).fatal());
            checks.push(Outcome::new(webhook.lasting, webhook.lasting_anchor, lasting).warn_only());
        } else {
            let reason = format!("{} not installed", webhook.label);
            checks.push(Outcome::skipped(
                webhook.valid,
                webhook.valid_anchor,
                &reason,
            ));
            checks.push(Outcome::skipped(
                webhook.lasting,
                webhook.lasting_anchor,
                &reason,
            ));
        }
    }
    Category::new("linkerd-webhooks-and-apisvc-tls", checks)
}

/// The `caBundle` of the configuration's one webhook (PEM); `None` when it does not exist.
async fn ca_bundle(client: &Client, webhook: &Webhook) -> Result<Option<Vec<u8>>, String> {
    let configs: Option<Vec<WebhookClientConfig>> = if webhook.mutating {
        let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
        let found = api.get_opt(webhook.config).await.map_err(|e| message(&e))?;
        found.map(|c| {
            c.webhooks
                .into_iter()
                .flatten()
                .map(|w| w.client_config)
                .collect()
        })
    } else {
        let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
        let found = api.get_opt(webhook.config).await.map_err(|e| message(&e))?;
        found.map(|c| {
            c.webhooks
                .into_iter()
                .flatten()
                .map(|w| w.client_config)
                .collect()
        })
    };
    match configs {
        None => Ok(None),
        Some(mut configs) if configs.len() == 1 => Ok(configs
            .pop()
            .map(|c| c.ca_bundle.map(|b| b.0).unwrap_or_default())),
        Some(configs) => Err(format!("expected 1 webhooks, found {}", configs.len())),
    }
}

/// The serving certificate (PEM) behind `webhook` and the name it must be valid for.
async fn serving_cert(
    client: &Client,
    ns: &str,
    webhook: &Webhook,
) -> Result<(Vec<u8>, String), String> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let own = secrets
        .get_opt(webhook.secret)
        .await
        .map_err(|e| message(&e))?;
    let (secret, secret_name, service) = match own {
        Some(secret) => (secret, webhook.secret, format!("linkerd-{}", webhook.label)),
        None if !webhook.mutating => (
            secrets
                .get(cp::PROXY_INJECTOR_TLS_SECRET)
                .await
                .map_err(|e| message(&e))?,
            cp::PROXY_INJECTOR_TLS_SECRET,
            cp::PROXY_INJECTOR_SERVICE.to_string(),
        ),
        None => return Err(format!("secrets \"{}\" not found", webhook.secret)),
    };
    let (crt, _key) = secret_pair(&secret, secret_name, false)?;
    Ok((crt, format!("{service}.{ns}.svc")))
}

/// Linkerd's `CheckCertAndAnchors`: the anchors (the webhook's `caBundle`) and the serving
/// certificate are within their validity, and the certificate chains to the anchors and is
/// valid for `name` (`linkerd-proxy-injector.<ns>.svc`).
pub(crate) fn webhook_cert(
    ca_bundle: &[u8],
    crt: &[u8],
    name: &str,
    now: SystemTime,
) -> Result<(), String> {
    let anchors = ChainSummary::from_pem(ca_bundle).map_err(|e| e.to_string())?;
    each_anchor(&anchors, "anchors not within their validity period", |a| {
        validity(a, now)
    })?;
    let chain = ChainSummary::from_pem(crt).map_err(|e| e.to_string())?;
    let leaf = chain
        .first()
        .ok_or("the serving Secret holds no certificate")?;
    validity(leaf, now).map_err(|e| format!("certificate is {e}"))?;
    let not_issued = |e: String| format!("cert is not issued by the trust anchor: {e}");
    let bundle = TrustBundle::from_pem(ca_bundle).map_err(|e| not_issued(e.to_string()))?;
    let ders = oxlink_tls::pem::certificates(crt).map_err(|e| not_issued(e.to_string()))?;
    bundle.verify_ca_chain(&ders, now).map_err(not_issued)?;
    if !leaf.dns_names.iter().any(|n| n == name) {
        return Err(not_issued(format!(
            "x509: certificate is valid for {}, not {name}",
            leaf.dns_names.join(", ")
        )));
    }
    Ok(())
}

/// Linkerd's `CheckCertAndAnchorsExpiringSoon` for a self-signed serving certificate.
pub(crate) fn webhook_cert_lasting(crt: &[u8], now: SystemTime) -> Result<(), String> {
    let chain = ChainSummary::from_pem(crt).map_err(|e| e.to_string())?;
    let leaf = chain
        .first()
        .ok_or("the serving Secret holds no certificate")?;
    each_anchor(&chain[1..], "Anchors expiring soon", |a| {
        expiring_soon(a, now)
    })?;
    expiring_soon(leaf, now).map_err(|e| format!("certificate {e}"))
}
