use super::*;
use crate::fixtures::{csr, csr_from, csr_with};
use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P384_SHA384, PKCS_ED25519, SanType};

const NAME: &str = "web.default.serviceaccount.identity.linkerd.cluster.local";

#[test]
fn accepts_a_proxy_csr() {
    let (key, der) = csr(NAME);
    let req = CertificateRequest::from_der(&der).unwrap();
    req.check_identity(NAME).unwrap();
    assert_eq!(req.dns_names(), [NAME]);
    assert!(req.has_common_name());
    assert_eq!(req.der_bytes(), key.public_key_raw());
}

#[test]
fn accepts_an_empty_common_name() {
    let key = KeyPair::generate().unwrap();
    let req = CertificateRequest::from_der(&csr_with(&[NAME], None, &key)).unwrap();
    req.check_identity(NAME).unwrap();
    assert!(!req.has_common_name());
}

#[test]
fn refuses_garbage() {
    assert!(matches!(
        CertificateRequest::from_der(b"not a csr"),
        Err(CsrError::Malformed(_))
    ));
    let (_, mut der) = csr(NAME);
    der.push(0);
    assert!(matches!(
        CertificateRequest::from_der(&der),
        Err(CsrError::Malformed(_))
    ));
}

#[test]
fn refuses_a_bad_signature() {
    let (_, mut der) = csr(NAME);
    let last = der.len() - 1;
    der[last] ^= 0x01;
    assert_eq!(
        CertificateRequest::from_der(&der),
        Err(CsrError::BadSignature)
    );
}

#[test]
fn refuses_a_csr_whose_key_was_swapped() {
    // Another key's public key spliced into a CSR signed by the first: no proof of possession.
    let (key_a, der_a) = csr(NAME);
    let key_b = KeyPair::generate().unwrap();
    let mut der = der_a.clone();
    let a = key_a.public_key_raw();
    let at = der.windows(a.len()).position(|w| w == a).unwrap();
    der[at..at + a.len()].copy_from_slice(key_b.public_key_raw());
    assert_eq!(
        CertificateRequest::from_der(&der),
        Err(CsrError::BadSignature)
    );
}

#[test]
fn refuses_keys_other_than_p256() {
    for alg in [&PKCS_ECDSA_P384_SHA384, &PKCS_ED25519] {
        let key = KeyPair::generate_for(alg).unwrap();
        let err = CertificateRequest::from_der(&csr_with(&[NAME], Some(NAME), &key)).unwrap_err();
        assert!(matches!(err, CsrError::UnsupportedKey(_)), "{err}");
    }
}

#[test]
fn requires_exactly_one_dns_name() {
    let key = KeyPair::generate().unwrap();
    let two =
        CertificateRequest::from_der(&csr_with(&[NAME, "other.example"], None, &key)).unwrap();
    assert!(matches!(
        two.check_identity(NAME),
        Err(CsrError::DnsNameCount(_))
    ));
    let none = CertificateRequest::from_der(&csr_with(&[], Some(NAME), &key)).unwrap();
    assert!(matches!(
        none.check_identity(NAME),
        Err(CsrError::DnsNameCount(_))
    ));
}

#[test]
fn refuses_the_wrong_name() {
    let (_, der) = csr("db.default.serviceaccount.identity.linkerd.cluster.local");
    let req = CertificateRequest::from_der(&der).unwrap();
    assert!(matches!(
        req.check_identity(NAME),
        Err(CsrError::WrongName { .. })
    ));
}

#[test]
fn refuses_a_different_common_name() {
    let key = KeyPair::generate().unwrap();
    let req = CertificateRequest::from_der(&csr_with(&[NAME], Some("admin"), &key)).unwrap();
    assert!(matches!(
        req.check_identity(NAME),
        Err(CsrError::WrongCommonName { .. })
    ));
}

#[test]
fn refuses_ip_uri_and_email_sans() {
    let key = KeyPair::generate().unwrap();
    for extra in [
        SanType::IpAddress([10, 0, 0, 1].into()),
        SanType::URI(
            "spiffe://cluster.local/ns/default/sa/web"
                .try_into()
                .unwrap(),
        ),
        SanType::Rfc822Name("web@example.com".try_into().unwrap()),
    ] {
        let mut params = CertificateParams::new(vec![NAME.to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.subject_alt_names.push(extra);
        let req = CertificateRequest::from_der(&csr_from(&params, &key)).unwrap();
        assert!(matches!(
            req.check_identity(NAME),
            Err(CsrError::ForbiddenSan(_))
        ));
    }
}
