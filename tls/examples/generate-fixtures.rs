//! Writes the test certificates of `tls/testdata/` (see `testdata/README.md`).
//!
//! Run rarely, by hand: `cargo run -p oxlink-tls --features test-util --example
//! generate-fixtures`. Needs `openssl` on PATH for the SEC1 copy of the issuer key and, when
//! `rsa-anchor.key.pem` is missing, for a new RSA key.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_RSA_SHA256, date_time_ymd,
};
use std::{fs, path::PathBuf, process::Command};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

struct Ca {
    params: CertificateParams,
    key: KeyPair,
}

fn main() -> Result<()> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let write = |name: &str, contents: &str| fs::write(dir.join(name), contents);

    let anchor = root("root.linkerd.cluster.local", KeyPair::generate()?)?;
    write(
        "anchor.crt.pem",
        &anchor.params.self_signed(&anchor.key)?.pem(),
    )?;

    let issuer = ca("identity.linkerd.cluster.local", 0, (2025, 2125));
    let issuer_key = KeyPair::generate()?;
    write(
        "issuer.crt.pem",
        &issuer.signed_by(&issuer_key, &signer(&anchor))?.pem(),
    )?;
    write("issuer.key.pem", &issuer_key.serialize_pem())?;
    let sec1 = Command::new("openssl")
        .args(["ec", "-in"])
        .arg(dir.join("issuer.key.pem"))
        .output()?;
    if !sec1.status.success() {
        return Err("openssl ec failed".into());
    }
    write("issuer.key.sec1.pem", std::str::from_utf8(&sec1.stdout)?)?;

    let issuer_2_key = KeyPair::generate()?;
    write(
        "issuer-2.crt.pem",
        &issuer.signed_by(&issuer_2_key, &signer(&anchor))?.pem(),
    )?;
    write("issuer-2.key.pem", &issuer_2_key.serialize_pem())?;

    let other = root("root.other.example", KeyPair::generate()?)?;
    write(
        "other-anchor.crt.pem",
        &other.params.self_signed(&other.key)?.pem(),
    )?;
    let other_key = KeyPair::generate()?;
    write(
        "other-issuer.crt.pem",
        &issuer.signed_by(&other_key, &signer(&other))?.pem(),
    )?;
    write("other-issuer.key.pem", &other_key.serialize_pem())?;

    let expired = ca("identity.linkerd.cluster.local", 0, (2000, 2001));
    let expired_key = KeyPair::generate()?;
    write(
        "expired-issuer.crt.pem",
        &expired.signed_by(&expired_key, &signer(&anchor))?.pem(),
    )?;
    write("expired-issuer.key.pem", &expired_key.serialize_pem())?;

    let mut not_ca = ca("not-a-ca.linkerd.cluster.local", 0, (2025, 2125));
    not_ca.is_ca = IsCa::ExplicitNoCa;
    not_ca.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let not_ca_key = KeyPair::generate()?;
    write(
        "not-ca.crt.pem",
        &not_ca.signed_by(&not_ca_key, &signer(&anchor))?.pem(),
    )?;
    write("not-ca.key.pem", &not_ca_key.serialize_pem())?;

    let intermediate = Ca {
        params: ca("intermediate.linkerd.cluster.local", 1, (2025, 2125)),
        key: KeyPair::generate()?,
    };
    let intermediate_crt = intermediate
        .params
        .signed_by(&intermediate.key, &signer(&anchor))?;
    let chained_key = KeyPair::generate()?;
    let chained = issuer.signed_by(&chained_key, &signer(&intermediate))?;
    write(
        "chained-issuer.crt.pem",
        &format!("{}{}", chained.pem(), intermediate_crt.pem()),
    )?;
    write("chained-issuer.key.pem", &chained_key.serialize_pem())?;

    let rsa_key_path = dir.join("rsa-anchor.key.pem");
    if fs::metadata(&rsa_key_path).map_or(true, |m| m.len() == 0) {
        let status = Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
            ])
            .arg(&rsa_key_path)
            .status()?;
        if !status.success() {
            return Err("openssl genpkey failed".into());
        }
    }
    let rsa_key =
        KeyPair::from_pem_and_sign_algo(&fs::read_to_string(&rsa_key_path)?, &PKCS_RSA_SHA256)?;
    let rsa = root("root.rsa.linkerd.cluster.local", rsa_key)?;
    write(
        "rsa-anchor.crt.pem",
        &rsa.params.self_signed(&rsa.key)?.pem(),
    )?;
    let rsa_issuer_key = KeyPair::generate()?;
    write(
        "rsa-issuer.crt.pem",
        &issuer.signed_by(&rsa_issuer_key, &signer(&rsa))?.pem(),
    )?;
    write("rsa-issuer.key.pem", &rsa_issuer_key.serialize_pem())?;
    Ok(())
}

fn root(cn: &str, key: KeyPair) -> Result<Ca> {
    let mut params = ca(cn, 0, (2025, 2125));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    Ok(Ca { params, key })
}

fn ca(cn: &str, path_len: u8, (from, until): (i32, i32)) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = date_time_ymd(from, 1, 1);
    params.not_after = date_time_ymd(until, 1, 1);
    params.use_authority_key_identifier_extension = true;
    params
}

fn signer(ca: &Ca) -> Issuer<'_, &KeyPair> {
    Issuer::from_params(&ca.params, &ca.key)
}
