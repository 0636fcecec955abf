//! The mesh's trust anchors and issuer as `oxlink install` and `upgrade` take them: generated,
//! read from files, or found in the values — and always checked to work together before
//! anything is rendered.

use anyhow::{Context, Result, bail};
use oxlink_crds::names::control_plane::{
    CLUSTER_DOMAIN, ISSUER_SCHEME_KUBERNETES, ISSUER_SCHEME_LINKERD, NAMESPACE,
};
use oxlink_tls::{IssuerCredentials, TrustBundle, generate};
use serde_json::{Value, json};
use std::{path::Path, time::Duration, time::SystemTime};

/// How long generated trust anchors and issuers are valid (Linkerd's CLI: one year).
const GENERATED_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// Trust anchors and an issuer signed by them, PEM.
#[derive(Clone, Debug)]
pub(crate) struct Identity {
    pub anchors_pem: String,
    pub crt_pem: String,
    pub key_pem: String,
}

// === impl Identity ===

impl Identity {
    /// A new trust anchor and an issuer signed by it, named for `trust_domain`.
    pub(crate) fn generate(trust_domain: &str, now: SystemTime) -> Result<Self> {
        let anchor = generate::trust_anchor(
            &format!("root.{NAMESPACE}.{trust_domain}"),
            GENERATED_LIFETIME,
            now,
        )
        .context("generating the trust anchor")?;
        let issuer = generate::issuer(
            &anchor,
            &format!("identity.{NAMESPACE}.{trust_domain}"),
            GENERATED_LIFETIME,
            now,
        )
        .context("generating the issuer")?;
        Ok(Self {
            anchors_pem: anchor.crt_pem,
            crt_pem: issuer.crt_pem,
            key_pem: issuer.key_pem,
        })
    }

    /// The issuer in `crt` and `key`, checked against `anchors` (already read).
    pub(crate) fn from_files(
        anchors: String,
        crt: &Path,
        key: &Path,
        now: SystemTime,
    ) -> Result<Self> {
        let crt_name = format!("--identity-issuer-certificate-file {}", crt.display());
        let key_name = format!("--identity-issuer-key-file {}", key.display());
        let identity = Self {
            anchors_pem: anchors,
            crt_pem: read_file("--identity-issuer-certificate-file", crt)?,
            key_pem: read_file("--identity-issuer-key-file", key)?,
        };
        check(
            &identity.anchors_pem,
            "--identity-trust-anchors-file",
            Some((&identity.crt_pem, &crt_name, &identity.key_pem, &key_name)),
            now,
        )?;
        Ok(identity)
    }

    /// The chart values that carry this identity (scheme `linkerd.io/tls`).
    pub(crate) fn values(&self) -> Value {
        json!({
            "identityTrustAnchorsPEM": self.anchors_pem,
            "identity": {"issuer": {
                "scheme": ISSUER_SCHEME_LINKERD,
                "tls": {"crtPEM": self.crt_pem, "keyPEM": self.key_pem},
            }},
        })
    }
}

/// The contents of a PEM file named by `flag`.
pub(crate) fn read_file(flag: &str, path: &Path) -> Result<String> {
    std::fs::read_to_string(path)
        .with_context(|| format!("{flag} {}: cannot read it", path.display()))
}

/// The trust domain the values describe (`identityTrustDomain`, else `clusterDomain`).
pub(crate) fn trust_domain(values: &Value) -> String {
    [&values["identityTrustDomain"], &values["clusterDomain"]]
        .into_iter()
        .filter_map(Value::as_str)
        .find(|s| !s.is_empty())
        .unwrap_or(CLUSTER_DOMAIN)
        .to_string()
}

/// Checks the identity settings of the final values: anchors that parse and, with the
/// `linkerd.io/tls` scheme, an issuer certificate and key that belong together and chain to them.
pub(crate) fn check_values(values: &Value, now: SystemTime) -> Result<()> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let anchors = text(&values["identityTrustAnchorsPEM"]);
    let issuer = &values["identity"]["issuer"];
    match issuer["scheme"].as_str().unwrap_or_default() {
        ISSUER_SCHEME_LINKERD => check(
            &anchors,
            "identityTrustAnchorsPEM",
            Some((
                &text(&issuer["tls"]["crtPEM"]),
                "identity.issuer.tls.crtPEM",
                &text(&issuer["tls"]["keyPEM"]),
                "identity.issuer.tls.keyPEM",
            )),
            now,
        ),
        ISSUER_SCHEME_KUBERNETES => check(&anchors, "identityTrustAnchorsPEM", None, now),
        other => bail!(
            "identity.issuer.scheme must be {ISSUER_SCHEME_LINKERD} or {ISSUER_SCHEME_KUBERNETES}, not {other:?}"
        ),
    }
}

/// Anchors, and optionally an issuer `(crt, crt_name, key, key_name)`, checked together.
fn check(
    anchors: &str,
    anchors_name: &str,
    issuer: Option<(&str, &str, &str, &str)>,
    now: SystemTime,
) -> Result<()> {
    if anchors.trim().is_empty() {
        bail!("{anchors_name} is empty: the mesh needs trust anchors (PEM)");
    }
    let bundle = TrustBundle::from_pem(anchors.as_bytes())
        .with_context(|| format!("{anchors_name} holds no usable trust anchors"))?;
    if let Some((crt, crt_name, key, key_name)) = issuer {
        for (pem, name) in [(crt, crt_name), (key, key_name)] {
            if pem.trim().is_empty() {
                bail!("{name} is empty");
            }
        }
        IssuerCredentials::from_pem(crt.as_bytes(), key.as_bytes(), &bundle, now).with_context(
            || format!("{crt_name} and {key_name} are not a usable issuer under {anchors_name}"),
        )?;
    }
    Ok(())
}
