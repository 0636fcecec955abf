use super::*;
use crate::test_support::{b64url, es256_key, jwk_of, sign_es256};
use ring::signature::{KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair};

#[test]
fn base64url_round_trips_and_refuses_other_alphabets() {
    for (plain, enc) in [
        ("", ""),
        ("f", "Zg"),
        ("fo", "Zm8"),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg"),
    ] {
        assert_eq!(base64url(enc).unwrap(), plain.as_bytes());
        assert_eq!(b64url(plain.as_bytes()), enc);
    }
    assert_eq!(base64url("-_8").unwrap(), [0xfb, 0xff]);
    assert_eq!(base64url("+/8"), None, "standard alphabet");
    assert_eq!(base64url("Zg=="), None, "padding");
    assert_eq!(base64url("Z"), None, "one leftover character");
}

#[test]
fn verifies_es256_and_refuses_a_changed_byte_or_another_key() {
    let key = es256_key();
    let token = sign_es256(&key, "k1", &serde_json::json!({"iss": "i", "aud": "a"}));
    let jwt = Jwt::decode(&token).unwrap();
    assert_eq!(jwt.header.kid.as_deref(), Some("k1"));
    assert!(jwt.claims.aud.contains("a"));
    jwt.verify(&jwk_of(&key)).unwrap();

    let other = es256_key();
    assert_eq!(jwt.verify(&jwk_of(&other)), Err(JwtError::Signature));

    // A claim changed after signing.
    let (h, rest) = token.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let forged = format!("{h}.{}.{sig}", b64url(br#"{"iss":"i","aud":"b"}"#));
    assert_eq!(
        Jwt::decode(&forged).unwrap().verify(&jwk_of(&key)),
        Err(JwtError::Signature)
    );
}

#[test]
fn verifies_rs256_as_kube_apiserver_signs_by_default() {
    let der = match oxlink_tls::pem::private_key(oxlink_tls::fixtures::RSA_ANCHOR_KEY.as_bytes())
        .unwrap()
    {
        rustls::pki_types::PrivateKeyDer::Pkcs8(k) => k.secret_pkcs8_der().to_vec(),
        other => panic!("unexpected key {other:?}"),
    };
    let key = RsaKeyPair::from_pkcs8(&der).unwrap();
    let signed = format!(
        "{}.{}",
        b64url(br#"{"alg":"RS256","kid":"r"}"#),
        b64url(br#"{"iss":"i"}"#)
    );
    let mut sig = vec![0; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signed.as_bytes(),
        &mut sig,
    )
    .unwrap();
    let token = format!("{signed}.{}", b64url(&sig));
    let public = key.public_key();
    let components: ring::rsa::PublicKeyComponents<Vec<u8>> = public.into();
    let raw = RawJwk {
        kid: Some("r".into()),
        kty: "RSA".into(),
        crv: None,
        n: Some(b64url(&components.n)),
        e: Some(b64url(&components.e)),
        x: None,
        y: None,
    };
    let jwt = Jwt::decode(&token).unwrap();
    jwt.verify(&raw.key().unwrap()).unwrap();
    // The same key cannot be used under another algorithm name.
    let mut es = Jwt::decode(&token).unwrap();
    es.header.alg = "ES256".into();
    assert!(matches!(
        es.verify(&raw.key().unwrap()),
        Err(JwtError::Algorithm { .. })
    ));
    let mut none = Jwt::decode(&token).unwrap();
    none.header.alg = "none".into();
    assert!(matches!(
        none.verify(&raw.key().unwrap()),
        Err(JwtError::Algorithm { .. })
    ));
}

#[test]
fn refuses_what_is_not_a_compact_jws() {
    for bad in [
        "",
        "a.b",
        "a.b.c.d",
        "!!.e30.AA",
        "e30.!!.AA",
        "e30.e30.!!",
        "bm90IGpzb24.e30.AA",
    ] {
        assert!(Jwt::decode(bad).is_err(), "{bad:?}");
    }
}
