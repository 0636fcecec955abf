use super::*;
use crate::Cli;
use clap::Parser;
use oxlink_tls::fixtures;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh directory holding the fixture certificates (and any extra files).
fn fixture_dir(extra: &[(&str, &str)]) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "oxlink-install-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let files = [
        ("ca.crt", fixtures::ANCHOR_CRT),
        ("issuer.crt", fixtures::ISSUER_CRT),
        ("issuer.key", fixtures::ISSUER_KEY),
        ("other-issuer.crt", fixtures::OTHER_ISSUER_CRT),
        ("other-issuer.key", fixtures::OTHER_ISSUER_KEY),
        ("issuer-2.key", fixtures::ISSUER_2_KEY),
        ("garbage", "not a certificate\n"),
    ];
    for (name, text) in files.iter().chain(extra) {
        std::fs::write(dir.join(name), text).unwrap();
    }
    dir
}

fn run(args: &[&str]) -> Result<String> {
    let cli = Cli::try_parse_from(std::iter::once("oxlink").chain(args.iter().copied()))?;
    let mut out = Vec::new();
    cli.run(&mut out)?;
    Ok(String::from_utf8(out)?)
}

fn with_files(dir: &Path, crt: &str, key: &str, extra: &[&str]) -> Result<String> {
    let anchors = dir.join("ca.crt");
    let crt = dir.join(crt);
    let key = dir.join(key);
    let mut args = vec![
        "install",
        "--ignore-cluster",
        "--identity-trust-anchors-file",
        anchors.to_str().unwrap(),
        "--identity-issuer-certificate-file",
        crt.to_str().unwrap(),
        "--identity-issuer-key-file",
        key.to_str().unwrap(),
    ];
    args.extend(extra);
    run(&args)
}

fn parse(manifest: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(manifest)
        .unwrap()
        .into_iter()
        .filter(|v| !v.is_null())
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind} {name} is rendered"))
}

fn secret_text(objects: &[Value], key: &str) -> String {
    let secret = find(objects, "Secret", "linkerd-identity-issuer");
    let b64 = secret["data"][key].as_str().unwrap();
    String::from_utf8(decode_base64(b64)).unwrap()
}

fn decode_base64(s: &str) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let digits: Vec<u32> = s
        .bytes()
        .filter(|b| *b != b'=')
        .map(|b| alphabet.iter().position(|a| *a == b).unwrap() as u32)
        .collect();
    let mut out = Vec::new();
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0, |n, (i, d)| n | d << (18 - 6 * i));
        for i in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

#[test]
fn install_generates_an_identity_that_chains() {
    let objects = parse(&run(&["install", "--ignore-cluster"]).unwrap());
    let anchors =
        find(&objects, "ConfigMap", "linkerd-identity-trust-roots")["data"]["ca-bundle.crt"]
            .as_str()
            .unwrap()
            .to_string();
    let crt = secret_text(&objects, "crt.pem");
    let key = secret_text(&objects, "key.pem");
    let bundle = oxlink_tls::TrustBundle::from_pem(anchors.as_bytes()).unwrap();
    let issuer = oxlink_tls::IssuerCredentials::from_pem(
        crt.as_bytes(),
        key.as_bytes(),
        &bundle,
        SystemTime::now(),
    )
    .unwrap();
    assert_eq!(issuer.subject(), "CN=identity.linkerd.cluster.local");
    // The CLI renders the namespace, as `linkerd install` does.
    let ns = find(&objects, "Namespace", "linkerd");
    assert_eq!(
        ns["metadata"]["annotations"]["linkerd.io/inject"],
        "disabled"
    );
    // Two runs generate two different identities.
    let again = parse(&run(&["install", "--ignore-cluster"]).unwrap());
    assert_ne!(secret_text(&again, "key.pem"), key);
}

#[test]
fn generated_names_follow_the_trust_domain() {
    let objects = parse(
        &run(&[
            "install",
            "--ignore-cluster",
            "--set",
            "identityTrustDomain=example.org",
        ])
        .unwrap(),
    );
    let crt = secret_text(&objects, "crt.pem");
    let summary = oxlink_tls::generate::inspect(crt.as_bytes(), None, SystemTime::now()).unwrap();
    assert!(
        format!("{summary:?}").contains("identity.linkerd.example.org"),
        "{summary:?}"
    );
}

#[test]
fn install_uses_the_given_issuer() {
    let dir = fixture_dir(&[]);
    let objects = parse(&with_files(&dir, "issuer.crt", "issuer.key", &[]).unwrap());
    assert_eq!(secret_text(&objects, "crt.pem"), fixtures::ISSUER_CRT);
    assert_eq!(secret_text(&objects, "key.pem"), fixtures::ISSUER_KEY);
    let config = find(&objects, "ConfigMap", "linkerd-config");
    let values = config["data"]["values"].as_str().unwrap();
    assert!(
        !values.contains("PRIVATE KEY"),
        "the key stays out of linkerd-config"
    );
}

#[test]
fn bad_identity_files_are_refused_precisely() {
    let dir = fixture_dir(&[]);
    let cases: &[(&str, &str, &str)] = &[
        (
            "missing.crt",
            "issuer.key",
            "--identity-issuer-certificate-file",
        ),
        ("issuer.crt", "missing.key", "--identity-issuer-key-file"),
        (
            "other-issuer.crt",
            "other-issuer.key",
            "are not a usable issuer under --identity-trust-anchors-file",
        ),
        ("issuer.crt", "issuer-2.key", "are not a usable issuer"),
        ("garbage", "issuer.key", "are not a usable issuer"),
    ];
    for (crt, key, want) in cases {
        let error = format!("{:#}", with_files(&dir, crt, key, &[]).unwrap_err());
        assert!(error.contains(want), "{crt}/{key}: {error}");
        if *crt == "missing.crt" {
            assert!(error.contains("cannot read it"), "{error}");
        }
    }
    let garbage = dir.join("garbage");
    let error = format!(
        "{:#}",
        run(&[
            "install",
            "--ignore-cluster",
            "--identity-trust-anchors-file",
            garbage.to_str().unwrap(),
            "--identity-issuer-certificate-file",
            dir.join("issuer.crt").to_str().unwrap(),
            "--identity-issuer-key-file",
            dir.join("issuer.key").to_str().unwrap(),
        ])
        .unwrap_err()
    );
    assert!(
        error.contains("--identity-trust-anchors-file holds no usable trust anchors"),
        "{error}"
    );
    let anchors = dir.join("ca.crt");
    let error = format!(
        "{:#}",
        run(&[
            "install",
            "--ignore-cluster",
            "--identity-trust-anchors-file",
            anchors.to_str().unwrap()
        ])
        .unwrap_err()
    );
    assert!(
        error.contains("needs --identity-issuer-certificate-file"),
        "{error}"
    );
    // A certificate without its key is a usage error.
    let error = run(&[
        "install",
        "--ignore-cluster",
        "--identity-issuer-certificate-file",
        dir.join("issuer.crt").to_str().unwrap(),
    ])
    .unwrap_err();
    assert!(
        error.to_string().contains("--identity-issuer-key-file"),
        "{error}"
    );
}

#[test]
fn values_given_with_set_are_checked_too() {
    let error = format!(
        "{:#}",
        run(&[
            "install",
            "--ignore-cluster",
            "--set",
            "identity.issuer.tls.keyPEM=nope"
        ])
        .unwrap_err()
    );
    assert!(
        error.contains(
            "identity.issuer.tls.crtPEM and identity.issuer.tls.keyPEM are not a usable issuer"
        ),
        "{error}"
    );
    let error = format!(
        "{:#}",
        run(&[
            "install",
            "--ignore-cluster",
            "--set",
            "identity.issuer.scheme=magic"
        ])
        .unwrap_err()
    );
    assert!(error.contains("identity.issuer.scheme must be"), "{error}");
}

#[test]
fn external_issuer_renders_no_issuer_secret() {
    let dir = fixture_dir(&[]);
    let anchors = dir.join("ca.crt");
    let objects = parse(
        &run(&[
            "install",
            "--ignore-cluster",
            "--identity-external-issuer",
            "--identity-trust-anchors-file",
            anchors.to_str().unwrap(),
        ])
        .unwrap(),
    );
    assert!(!objects.iter().any(|o| o["kind"] == "Secret"));
    let error = format!(
        "{:#}",
        run(&["install", "--ignore-cluster", "--identity-external-issuer"]).unwrap_err()
    );
    assert!(
        error.contains("--identity-external-issuer needs the trust anchors"),
        "{error}"
    );
}

#[test]
fn ha_set_and_values_files_layer_in_order() {
    let dir = fixture_dir(&[
        (
            "a.yaml",
            "controllerReplicas: 5\ncontrollerLogLevel: debug\n",
        ),
        ("b.yaml", "controllerReplicas: 7\n"),
    ]);
    let a = dir.join("a.yaml");
    let b = dir.join("b.yaml");
    let objects = parse(
        &with_files(
            &dir,
            "issuer.crt",
            "issuer.key",
            &[
                "--ha",
                "-f",
                a.to_str().unwrap(),
                "--values",
                b.to_str().unwrap(),
                "--set",
                "controllerLogLevel=trace,webhookFailurePolicy=Ignore",
            ],
        )
        .unwrap(),
    );
    let identity = find(&objects, "Deployment", "linkerd-identity");
    assert_eq!(identity["spec"]["replicas"], 7);
    let args = identity["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(args.contains("--log-level=trace"), "{args}");
    find(&objects, "PodDisruptionBudget", "linkerd-identity");
    let webhook = find(
        &objects,
        "MutatingWebhookConfiguration",
        "linkerd-proxy-injector-webhook-config",
    );
    assert_eq!(webhook["webhooks"][0]["failurePolicy"], "Ignore");
    // `null` deletes a default.
    let objects = parse(
        &with_files(
            &dir,
            "issuer.crt",
            "issuer.key",
            &["--set", "nodeSelector=null"],
        )
        .unwrap(),
    );
    let spec = &find(&objects, "Deployment", "linkerd-identity")["spec"]["template"]["spec"];
    assert!(spec.get("nodeSelector").is_none(), "{spec}");
}

#[test]
fn bad_values_are_refused_precisely() {
    let dir = fixture_dir(&[("list.yaml", "- a\n"), ("broken.yaml", "a: [\n")]);
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--set".into(), "novalue".into()], "has no `=`"),
        (vec!["--set".into(), "a[0]=x".into()], "list indices"),
        (vec!["--set".into(), "a..b=x".into()], "empty key segment"),
        (
            vec!["-f".into(), dir.join("none.yaml").display().to_string()],
            "reading values file",
        ),
        (
            vec!["-f".into(), dir.join("list.yaml").display().to_string()],
            "must be a YAML mapping",
        ),
        (
            vec!["-f".into(), dir.join("broken.yaml").display().to_string()],
            "do not parse as YAML",
        ),
        (
            vec!["--set".into(), "controllerImage.x=y".into()],
            "printing a dict is not supported",
        ),
    ];
    for (extra, want) in cases {
        let mut args = vec!["install", "--ignore-cluster"];
        args.extend(extra.iter().map(String::as_str));
        let error = format!("{:#}", run(&args).unwrap_err());
        assert!(error.contains(want), "{extra:?}: {error}");
    }
}

#[test]
fn set_follows_helms_typing() {
    let overlay = values::parse_set("a.b=1,c=true,d=0123,e=null,f={x,2},g=a\\,b,h=").unwrap();
    assert_eq!(
        overlay,
        json!({"a": {"b": 1}, "c": true, "d": "0123", "e": null, "f": ["x", 2], "g": "a,b", "h": ""})
    );
}

#[test]
fn upgrade_keeps_the_identity_and_applies_changes() {
    let dir = fixture_dir(&[]);
    let installed = parse(&with_files(&dir, "issuer.crt", "issuer.key", &[]).unwrap());
    let config = find(&installed, "ConfigMap", "linkerd-config")["data"]["values"]
        .as_str()
        .unwrap();
    let mut stored = values::from_yaml("linkerd-config", config).unwrap();
    values::merge(
        &mut stored,
        json!({"identity": {"issuer": {"tls": {"keyPEM": fixtures::ISSUER_KEY}}}}),
    );
    let upgrade = crate::upgrade::UpgradeArgs {
        values: ValuesArgs {
            ha: true,
            values: Vec::new(),
            set: vec!["controllerLogLevel=debug".into()],
        },
        issuer: IssuerArgs::default(),
    };
    let upgraded = parse(&upgrade.manifest(stored.clone(), SystemTime::now()).unwrap());
    assert_eq!(secret_text(&upgraded, "crt.pem"), fixtures::ISSUER_CRT);
    assert_eq!(secret_text(&upgraded, "key.pem"), fixtures::ISSUER_KEY);
    assert_eq!(
        find(&upgraded, "Deployment", "linkerd-destination")["spec"]["replicas"],
        3
    );
    // Unchanged, the upgrade renders what was installed.
    let same = crate::upgrade::UpgradeArgs {
        values: ValuesArgs::default(),
        issuer: IssuerArgs::default(),
    };
    assert_eq!(
        parse(&same.manifest(stored.clone(), SystemTime::now()).unwrap()),
        installed
    );
    // A new issuer must chain to the installed anchors.
    let rotate = |crt: &str, key: &str| crate::upgrade::UpgradeArgs {
        values: ValuesArgs::default(),
        issuer: IssuerArgs {
            identity_issuer_certificate_file: Some(dir.join(crt)),
            identity_issuer_key_file: Some(dir.join(key)),
        },
    };
    let error = format!(
        "{:#}",
        rotate("other-issuer.crt", "other-issuer.key")
            .manifest(stored.clone(), SystemTime::now())
            .unwrap_err()
    );
    assert!(error.contains("are not a usable issuer"), "{error}");
    std::fs::write(dir.join("issuer-2.crt"), fixtures::ISSUER_2_CRT).unwrap();
    let rotated = parse(
        &rotate("issuer-2.crt", "issuer-2.key")
            .manifest(stored, SystemTime::now())
            .unwrap(),
    );
    assert_eq!(secret_text(&rotated, "crt.pem"), fixtures::ISSUER_2_CRT);
}

#[test]
fn uninstall_lists_every_rendered_object_webhooks_first_crds_last() {
    let dir = fixture_dir(&[]);
    let installed = parse(&with_files(&dir, "issuer.crt", "issuer.key", &[]).unwrap());
    let mut values = chart::default_values(false).unwrap();
    values::merge(
        &mut values,
        json!({"installNamespace": true, "identityTrustAnchorsPEM": fixtures::ANCHOR_CRT,
               "identity": {"issuer": {"tls": {"crtPEM": fixtures::ISSUER_CRT, "keyPEM": fixtures::ISSUER_KEY}}}}),
    );
    let objects = crate::uninstall::objects(&values, true).unwrap();
    let listed = parse(&crate::uninstall::manifest(&objects));
    let key = |o: &Value| {
        (
            o["apiVersion"].clone(),
            o["kind"].clone(),
            o["metadata"]["name"].clone(),
            o["metadata"]["namespace"].clone(),
        )
    };
    let listed_keys: Vec<_> = listed.iter().map(key).collect();
    for object in &installed {
        assert!(
            listed_keys.contains(&key(object)),
            "{:?} is listed",
            key(object)
        );
    }
    assert_eq!(
        listed.len(),
        installed.len() + 1 + oxlink_crds::install::crds().len()
    );
    assert!(
        listed[0]["kind"]
            .as_str()
            .unwrap()
            .ends_with("WebhookConfiguration")
    );
    assert_eq!(listed.last().unwrap()["kind"], "CustomResourceDefinition");
    assert!(
        listed
            .iter()
            .any(|l| l["metadata"]["name"] == "linkerd-proxy-injector-k8s-tls")
    );
}
