use crate::Cli;
use clap::Parser;
use std::{fs, os::unix::fs::PermissionsExt, path::PathBuf};

fn oxlink(args: &[&str]) -> anyhow::Result<String> {
    let cli = Cli::try_parse_from(std::iter::once("oxlink").chain(args.iter().copied()))?;
    let mut out = Vec::new();
    cli.run(&mut out)?;
    Ok(String::from_utf8(out)?)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("oxlink-identity-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir
}

fn path(dir: &std::path::Path, f: &str) -> String {
    dir.join(f).display().to_string()
}

#[test]
fn generate_writes_an_anchor_and_an_issuer_that_verify() {
    let dir = scratch("generate");
    let out = oxlink(&["identity", "generate", "--dir", &dir.display().to_string()]).unwrap();
    assert!(
        out.contains("trust anchor \"root.linkerd.cluster.local\" valid for 3650d"),
        "{out}"
    );
    assert!(
        out.contains("issuer \"identity.linkerd.cluster.local\" valid for 365d"),
        "{out}"
    );
    for (f, mode) in [
        ("ca.crt", 0o644),
        ("ca.key", 0o600),
        ("issuer.crt", 0o644),
        ("issuer.key", 0o600),
    ] {
        let meta = fs::metadata(dir.join(f)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, mode, "{f}");
    }

    let out = oxlink(&[
        "identity",
        "inspect",
        &path(&dir, "issuer.crt"),
        "--bundle",
        &path(&dir, "ca.crt"),
    ])
    .unwrap();
    assert!(
        out.contains("subject:   CN=identity.linkerd.cluster.local"),
        "{out}"
    );
    assert!(out.contains("CA:        yes"), "{out}");
    assert!(out.contains("expires in 365d"), "{out}");
    assert!(out.contains("√ the chain verifies to the bundle"), "{out}");
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_issuer_does_not_verify_to_another_anchor() {
    let (a, b) = (scratch("anchor-a"), scratch("anchor-b"));
    for d in [&a, &b] {
        oxlink(&["identity", "generate", "--dir", &d.display().to_string()]).unwrap();
    }
    let err = oxlink(&[
        "identity",
        "inspect",
        &path(&a, "issuer.crt"),
        "--bundle",
        &path(&b, "ca.crt"),
    ])
    .unwrap_err()
    .to_string();
    assert!(err.contains("does not verify to the bundle"), "{err}");
    fs::remove_dir_all(a).unwrap();
    fs::remove_dir_all(b).unwrap();
}

#[test]
fn generate_refuses_to_overwrite_and_changes_nothing() {
    let dir = scratch("overwrite");
    let d = dir.display().to_string();
    oxlink(&["identity", "generate", "--dir", &d]).unwrap();
    let before = fs::read(dir.join("issuer.key")).unwrap();
    let err = oxlink(&["identity", "generate", "--dir", &d])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("refusing to overwrite") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(fs::read(dir.join("issuer.key")).unwrap(), before);
    oxlink(&["identity", "generate", "--dir", &d, "--force"]).unwrap();
    assert_ne!(
        fs::read(dir.join("issuer.key")).unwrap(),
        before,
        "--force replaces"
    );
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn generate_with_anchor_dir_signs_a_new_issuer_with_that_anchor() {
    let pki = scratch("anchor-dir");
    let p = pki.display().to_string();
    oxlink(&["identity", "generate", "--dir", &p]).unwrap();
    let (anchor, old_issuer) = (
        fs::read(pki.join("ca.crt")).unwrap(),
        fs::read(pki.join("issuer.crt")).unwrap(),
    );
    // Without --force, the issuer files in place are kept.
    let err = oxlink(&["identity", "generate", "--dir", &p, "--anchor-dir", &p])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("refusing to overwrite") && err.contains("issuer.crt"),
        "{err}"
    );
    assert!(!err.contains("ca.crt"), "{err}");
    let out = oxlink(&[
        "identity",
        "generate",
        "--dir",
        &p,
        "--anchor-dir",
        &p,
        "--force",
    ])
    .unwrap();
    assert!(out.contains("signed by the trust anchor"), "{out}");
    assert_eq!(
        fs::read(pki.join("ca.crt")).unwrap(),
        anchor,
        "the anchor stays"
    );
    assert_ne!(fs::read(pki.join("issuer.crt")).unwrap(), old_issuer);
    let out = oxlink(&[
        "identity",
        "inspect",
        &path(&pki, "issuer.crt"),
        "--bundle",
        &path(&pki, "ca.crt"),
    ])
    .unwrap();
    assert!(out.contains("√ the chain verifies to the bundle"), "{out}");

    // An anchor directory without the anchor's key is a precise error, and writes nothing.
    let elsewhere = scratch("anchor-dir-none");
    let e = elsewhere.display().to_string();
    let err = format!(
        "{:#}",
        oxlink(&["identity", "generate", "--dir", &e, "--anchor-dir", &e]).unwrap_err()
    );
    assert!(err.contains("reading") && err.contains("ca.crt"), "{err}");
    assert!(!elsewhere.exists());
    fs::remove_dir_all(pki).unwrap();
}

#[test]
fn bad_lifetimes_and_bad_files_are_precise_errors() {
    let dir = scratch("bad");
    let d = dir.display().to_string();
    let err = oxlink(&[
        "identity",
        "generate",
        "--dir",
        &d,
        "--issuer-lifetime",
        "100000h",
    ])
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("the issuer would outlive its trust anchor"),
        "{err}"
    );
    assert!(!dir.exists(), "nothing was written");

    let err = oxlink(&[
        "identity",
        "generate",
        "--dir",
        &d,
        "--anchor-lifetime",
        "10 years",
    ])
    .unwrap_err()
    .to_string();
    assert!(err.contains("--anchor-lifetime"), "{err}");

    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("junk.pem"), "not a certificate").unwrap();
    let err = oxlink(&["identity", "inspect", &path(&dir, "junk.pem")]).unwrap_err();
    assert!(
        format!("{err:#}").contains("is not a PEM certificate chain"),
        "{err:#}"
    );
    let err = oxlink(&["identity", "inspect", &path(&dir, "missing.pem")]).unwrap_err();
    assert!(format!("{err:#}").contains("reading"), "{err:#}");
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn inspect_shows_a_leaf_with_its_names() {
    let dir = scratch("leaf");
    fs::create_dir_all(&dir).unwrap();
    let name = "web.default.serviceaccount.identity.linkerd.cluster.local";
    let (_key, csr) = oxlink_tls::fixtures::csr(name);
    let csr = oxlink_tls::CertificateRequest::from_der(&csr).unwrap();
    let leaf = oxlink_tls::fixtures::issuer()
        .sign(&csr, std::time::SystemTime::now())
        .unwrap();
    let chain = oxlink_tls::pem::encode_certificates(
        std::iter::once(&leaf.certificate).chain(&leaf.intermediates),
    );
    fs::write(dir.join("leaf.pem"), chain).unwrap();
    fs::write(dir.join("anchors.pem"), oxlink_tls::fixtures::ANCHOR_CRT).unwrap();
    let out = oxlink(&[
        "identity",
        "inspect",
        &path(&dir, "leaf.pem"),
        "--bundle",
        &path(&dir, "anchors.pem"),
    ])
    .unwrap();
    assert!(
        out.contains("dns names: web.default.serviceaccount.identity.linkerd.cluster.local"),
        "{out}"
    );
    assert!(out.contains("CA:        no"), "{out}");
    assert!(out.contains("√ the chain verifies to the bundle"), "{out}");
    fs::remove_dir_all(dir).unwrap();
}
