//! Fixed certificates and keys for tests, checked in under `tls/testdata/`.
//!
//! They were generated once by `cargo run -p oxlink-tls --features test-util --example
//! generate-fixtures` (see `testdata/README.md`); tests read them and never mint their own CAs.
//! Everything is ECDSA P-256 except the RSA anchor, and valid from 2025 to 2125 except the
//! expired issuer (2000–2001).

use crate::{IssuancePolicy, Issuer, IssuerCredentials, TrustBundle};
use std::time::SystemTime;

macro_rules! fixture {
    ($($(#[$doc:meta])* $name:ident = $file:literal;)*) => {
        $($(#[$doc])* pub const $name: &str = include_str!(concat!("../testdata/", $file));)*
    };
}

fixture! {
    /// The mesh's trust anchor: a self-signed root, `CN=root.linkerd.cluster.local`.
    ANCHOR_CRT = "anchor.crt.pem";
    /// The issuer (`CN=identity.linkerd.cluster.local`), a CA signed by the anchor.
    ISSUER_CRT = "issuer.crt.pem";
    /// The issuer's key, PKCS#8.
    ISSUER_KEY = "issuer.key.pem";
    /// The same key as [`ISSUER_KEY`] in SEC1 (`EC PRIVATE KEY`) form.
    ISSUER_KEY_SEC1 = "issuer.key.sec1.pem";
    /// A second issuer from the same anchor, for rotation.
    ISSUER_2_CRT = "issuer-2.crt.pem";
    /// The second issuer's key.
    ISSUER_2_KEY = "issuer-2.key.pem";
    /// An unrelated root.
    OTHER_ANCHOR_CRT = "other-anchor.crt.pem";
    /// An issuer signed by the unrelated root: valid, but not chained to [`ANCHOR_CRT`].
    OTHER_ISSUER_CRT = "other-issuer.crt.pem";
    /// The unrelated issuer's key.
    OTHER_ISSUER_KEY = "other-issuer.key.pem";
    /// An issuer signed by the anchor that expired in 2001.
    EXPIRED_ISSUER_CRT = "expired-issuer.crt.pem";
    /// The expired issuer's key.
    EXPIRED_ISSUER_KEY = "expired-issuer.key.pem";
    /// A certificate signed by the anchor that is not a CA.
    NOT_CA_CRT = "not-ca.crt.pem";
    /// The non-CA certificate's key.
    NOT_CA_KEY = "not-ca.key.pem";
    /// An issuer signed by an intermediate CA that the anchor signed: two certificates,
    /// issuer first.
    CHAINED_ISSUER_CRT = "chained-issuer.crt.pem";
    /// The chained issuer's key.
    CHAINED_ISSUER_KEY = "chained-issuer.key.pem";
    /// A self-signed RSA-2048 root.
    RSA_ANCHOR_CRT = "rsa-anchor.crt.pem";
    /// The RSA root's key (kept so that regeneration can reuse it).
    RSA_ANCHOR_KEY = "rsa-anchor.key.pem";
    /// A P-256 issuer signed by the RSA root.
    RSA_ISSUER_CRT = "rsa-issuer.crt.pem";
    /// The RSA-rooted issuer's key.
    RSA_ISSUER_KEY = "rsa-issuer.key.pem";
}

/// The trust bundle holding [`ANCHOR_CRT`].
pub fn anchors() -> TrustBundle {
    TrustBundle::from_pem(ANCHOR_CRT.as_bytes()).expect("the anchor fixture parses")
}

/// The issuer of [`ISSUER_CRT`] with Linkerd's default lifetimes.
pub fn issuer() -> Issuer {
    load(ISSUER_CRT, ISSUER_KEY)
}

/// The second issuer of the same anchor.
pub fn issuer_2() -> Issuer {
    load(ISSUER_2_CRT, ISSUER_2_KEY)
}

/// The issuer of [`EXPIRED_ISSUER_CRT`], loaded in 2000 while it was valid (trusted directly,
/// since the anchor fixture is younger), as a server that has held it since then would.
pub fn expired_issuer() -> Issuer {
    let then = std::time::UNIX_EPOCH + std::time::Duration::from_secs(960_000_000);
    let credentials = IssuerCredentials::from_pem(
        EXPIRED_ISSUER_CRT.as_bytes(),
        EXPIRED_ISSUER_KEY.as_bytes(),
        &TrustBundle::from_pem(EXPIRED_ISSUER_CRT.as_bytes()).expect("the fixture parses"),
        then,
    )
    .expect("the expired issuer fixture loads at a time it was valid");
    Issuer::new(credentials, IssuancePolicy::default())
}

/// The credentials of [`ISSUER_CRT`] alone, without an issuance policy.
pub fn issuer_credentials() -> IssuerCredentials {
    credentials(ISSUER_CRT, ISSUER_KEY)
}

fn credentials(crt: &str, key: &str) -> IssuerCredentials {
    IssuerCredentials::from_pem(
        crt.as_bytes(),
        key.as_bytes(),
        &anchors(),
        SystemTime::now(),
    )
    .expect("the issuer fixture loads")
}

fn load(crt: &str, key: &str) -> Issuer {
    Issuer::new(credentials(crt, key), IssuancePolicy::default())
}

/// A fresh P-256 key and a DER CSR for `name` (CN = DNS SAN = `name`), as a proxy makes them.
pub fn csr(name: &str) -> (rcgen::KeyPair, Vec<u8>) {
    let key = rcgen::KeyPair::generate().expect("P-256 key generation");
    let der = csr_with(&[name], Some(name), &key);
    (key, der)
}

/// A DER CSR with the given DNS SANs and common name, signed by `key`.
pub fn csr_with(dns_names: &[&str], common_name: Option<&str>, key: &rcgen::KeyPair) -> Vec<u8> {
    let mut params =
        rcgen::CertificateParams::new(dns_names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("valid DNS names");
    params.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(cn) = common_name {
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
    }
    csr_from(&params, key)
}

/// A DER CSR for arbitrary parameters.
pub fn csr_from(params: &rcgen::CertificateParams, key: &rcgen::KeyPair) -> Vec<u8> {
    params
        .serialize_request(key)
        .expect("CSR serialization")
        .der()
        .to_vec()
}
