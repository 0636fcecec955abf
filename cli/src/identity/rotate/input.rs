//! What the first run of a rotation is given (or generates), checked before anything in the
//! cluster changes: the new trust anchor, and the issuer it signed.

use super::state::anchor_id;
use crate::algorithm;
use anyhow::{Context, Result, bail};
use oxlink_tls::{ChainSummary, IssuerCredentials, TrustBundle, generate, pem, utc_rfc3339};
use std::{
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

/// How long a generated anchor and issuer are valid (as `oxlink identity generate`).
pub(crate) const ANCHOR_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
pub(crate) const ISSUER_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// The files a rotation may be given.
#[derive(Clone, Debug, Default)]
pub(crate) struct Files {
    pub(crate) new_anchor: Option<PathBuf>,
    pub(crate) issuer_crt: Option<PathBuf>,
    pub(crate) issuer_key: Option<PathBuf>,
}

/// The new anchor and, unless the issuer is external, the issuer it signed; all PEM.
#[derive(Clone, Debug)]
pub(crate) struct Material {
    pub(crate) anchor_pem: String,
    pub(crate) anchor_id: String,
    pub(crate) anchor_subject: String,
    pub(crate) anchor_not_after: SystemTime,
    /// `(crt, key)`; `None` with an external issuer.
    pub(crate) issuer: Option<(String, String)>,
    /// The new anchor's key, when oxlink generated the anchor (to be written out, never stored
    /// in the cluster).
    pub(crate) generated_anchor_key: Option<String>,
}

/// Checks the given files against the installed bundle (`current_bundle`, PEM) at `now`, or
/// generates the anchor and issuer when no file is given. `names` are the common names of
/// generated certificates (anchor, issuer).
pub(crate) fn material(
    files: &Files,
    current_bundle: &str,
    external_issuer: bool,
    names: (&str, &str),
    now: SystemTime,
) -> Result<Material> {
    let Files {
        new_anchor,
        issuer_crt,
        issuer_key,
    } = files;
    let issuer_files = match (issuer_crt, issuer_key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => bail!(
            "--identity-issuer-certificate-file and --identity-issuer-key-file go together: give both or neither"
        ),
    };
    if external_issuer && issuer_files.is_some() {
        bail!(
            "the issuer is managed externally (scheme kubernetes.io/tls): oxlink does not write it, \
             so give only --new-anchor-file and have your certificate manager sign the new issuer with it"
        );
    }
    let current = TrustBundle::from_pem(current_bundle.as_bytes())
        .context("the installed trust bundle (linkerd-identity-trust-roots) cannot be read")?;

    let (anchor_pem, generated_anchor_key, issuer) = match (new_anchor, issuer_files) {
        (None, Some(_)) => bail!(
            "an issuer for the rotation must be signed by the new trust anchor: give --new-anchor-file too"
        ),
        (None, None) if external_issuer => bail!(
            "the issuer is managed externally (scheme kubernetes.io/tls): give the new trust anchor \
             with --new-anchor-file (the CA your certificate manager will sign the issuer with)"
        ),
        (None, None) => {
            let anchor = generate::trust_anchor(names.0, ANCHOR_LIFETIME, now)
                .context("generating the new trust anchor")?;
            let issuer = generate::issuer(&anchor, names.1, ISSUER_LIFETIME, now)
                .context("generating the new issuer")?;
            (
                anchor.crt_pem,
                Some(anchor.key_pem),
                Some((issuer.crt_pem, issuer.key_pem)),
            )
        }
        (Some(_), None) if !external_issuer => bail!(
            "give the new issuer with --identity-issuer-certificate-file and --identity-issuer-key-file \
             (signed by the new trust anchor), or no file at all to have both generated"
        ),
        (Some(anchor), issuer) => {
            let anchor_pem = read("--new-anchor-file", anchor)?;
            let issuer = match issuer {
                Some((crt, key)) => Some((
                    read("--identity-issuer-certificate-file", crt)?,
                    read("--identity-issuer-key-file", key)?,
                )),
                None => None,
            };
            (anchor_pem, None, issuer)
        }
    };

    let flag = if new_anchor.is_some() {
        "--new-anchor-file"
    } else {
        "the generated anchor"
    };
    let ders = pem::certificates(anchor_pem.as_bytes())
        .with_context(|| format!("{flag}: not a PEM certificate"))?;
    if ders.len() != 1 {
        bail!(
            "{flag}: must hold exactly one certificate (the new trust anchor), found {}",
            ders.len()
        );
    }
    let der = ders[0].clone();
    let summary = ChainSummary::from_der(&der).map_err(|e| anyhow::anyhow!("{flag}: {e}"))?;
    if !summary.is_ca {
        bail!("{flag}: {} is not a CA certificate", summary.subject);
    }
    algorithm::anchor(&der).map_err(|e| anyhow::anyhow!("{flag}: the trust anchor {e}"))?;
    if summary.not_after <= now {
        bail!(
            "{flag}: the trust anchor {} expired on {}",
            summary.subject,
            utc_rfc3339(summary.not_after)
        );
    }
    if summary.not_before > now + Duration::from_secs(60) {
        bail!(
            "{flag}: the trust anchor {} is not valid before {}",
            summary.subject,
            utc_rfc3339(summary.not_before)
        );
    }
    let id = anchor_id(&der);
    if current.anchors().iter().any(|a| anchor_id(a) == id) {
        bail!(
            "{flag}: {} is already in the trust bundle; nothing to rotate to",
            summary.subject
        );
    }
    let new_bundle = TrustBundle::from_der(vec![der.clone()])
        .map_err(|e| anyhow::anyhow!("{flag}: not usable as a trust anchor: {e}"))?;
    if let Some((crt, key)) = &issuer {
        let credentials =
            IssuerCredentials::from_pem(crt.as_bytes(), key.as_bytes(), &new_bundle, now)
                .context("the new issuer cannot be used with the new trust anchor")?;
        let der = credentials.chain()[0].clone();
        algorithm::issuer(&der).map_err(|e| anyhow::anyhow!("the new issuer certificate {e}"))?;
    }
    Ok(Material {
        anchor_pem: pem::encode_certificates([&der]),
        anchor_id: id,
        anchor_subject: summary.subject,
        anchor_not_after: summary.not_after,
        issuer,
        generated_anchor_key,
    })
}

fn read(flag: &str, path: &Path) -> Result<String> {
    std::fs::read_to_string(path)
        .with_context(|| format!("{flag} {}: cannot read it", path.display()))
}
