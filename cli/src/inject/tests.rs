use crate::Cli;
use clap::Parser;
use serde_json::Value;

const MANIFEST: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: emojivoto
spec:
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
        - name: web
          image: example/web:1
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  key: value
---
apiVersion: v1
kind: List
items:
  - apiVersion: apps/v1
    kind: DaemonSet
    metadata:
      name: agent
    spec:
      selector:
        matchLabels:
          app: agent
      template:
        metadata:
          labels:
            app: agent
        spec:
          hostNetwork: true
          containers:
            - name: agent
              image: example/agent:1
";

/// Runs `oxlink <args>` with `stdin`, returning stdout and stderr.
fn oxlink(args: &[&str], stdin: &str) -> anyhow::Result<(String, String)> {
    let cli = Cli::try_parse_from(std::iter::once("oxlink").chain(args.iter().copied()))?;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut input = stdin.as_bytes();
    match cli.command {
        crate::Command::Inject(a) => a.run(&cli.cluster, &mut input, &mut out, &mut err)?,
        crate::Command::Uninject(a) => a.run(&mut input, &mut out, &mut err)?,
        _ => unreachable!("only inject and uninject are tested here"),
    }
    Ok((String::from_utf8(out)?, String::from_utf8(err)?))
}

fn docs(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple(yaml).expect("output is YAML")
}

fn anchors_file() -> tempfile_path::TempPath {
    tempfile_path::TempPath::with(oxlink_tls::fixtures::ANCHOR_CRT)
}

/// A file removed when dropped (std only).
mod tempfile_path {
    pub(crate) struct TempPath(pub(crate) std::path::PathBuf);
    impl TempPath {
        pub(crate) fn with(contents: &str) -> Self {
            let path = std::env::temp_dir().join(format!(
                "oxlink-cli-test-{}-{:?}.pem",
                std::process::id(),
                std::thread::current().id()
            ));
            std::fs::write(&path, contents).expect("temp file");
            Self(path)
        }
        pub(crate) fn as_str(&self) -> &str {
            self.0.to_str().expect("utf-8 temp path")
        }
    }
    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

#[test]
fn auto_mode_annotates_templates_and_passes_other_kinds_through() {
    let (out, err) = oxlink(&["inject", "--ignore-cluster", "-"], MANIFEST).unwrap();
    let out = docs(&out);
    assert_eq!(out.len(), 3);
    assert_eq!(
        out[0]["spec"]["template"]["metadata"]["annotations"]["linkerd.io/inject"],
        "enabled"
    );
    assert!(
        out[0]["spec"]["template"]["spec"]
            .get("initContainers")
            .is_none()
    );
    assert_eq!(out[1], docs(MANIFEST)[1], "the ConfigMap is untouched");
    assert_eq!(out[2]["kind"], "List");
    assert_eq!(
        err,
        "\ndeployment \"web\" annotated\nconfigmap \"settings\" skipped\n\
         daemonset \"agent\" skipped: hostNetwork is enabled\n\n"
    );
}

/// The pod template annotations of the first document.
fn template_annotations(out: &str) -> serde_json::Map<String, Value> {
    docs(out)[0]["spec"]["template"]["metadata"]["annotations"]
        .as_object()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn auto_mode_adds_only_the_inject_annotation_without_flags() {
    let (out, _) = oxlink(&["inject", "--ignore-cluster", "-"], MANIFEST).unwrap();
    let annotations = template_annotations(&out);
    assert_eq!(
        annotations.keys().collect::<Vec<_>>(),
        ["linkerd.io/inject"],
        "{annotations:?}"
    );
}

#[test]
fn auto_mode_annotates_only_flags_that_differ_from_the_configuration() {
    let defaults = oxlink_inject::Values::default();
    let (out, _) = oxlink(
        &[
            "inject",
            "--ignore-cluster",
            // The configuration's own values: nothing to override.
            "--proxy-log-level",
            &defaults.proxy.log_level,
            "--inbound-port",
            "4143",
            "--admin-port",
            "4191",
            // Different values: overridden.
            "--proxy-uid",
            "2200",
            "--outbound-port",
            "5140",
            // Not a valid value: kept, so that the webhook reports it.
            "--image-pull-policy",
            "Sometimes",
            "-",
        ],
        MANIFEST,
    )
    .unwrap();
    let annotations = template_annotations(&out);
    assert_eq!(
        annotations.keys().collect::<Vec<_>>(),
        [
            "config.linkerd.io/image-pull-policy",
            "config.linkerd.io/outbound-port",
            "config.linkerd.io/proxy-uid",
            "linkerd.io/inject",
        ],
        "{annotations:?}"
    );
    assert_eq!(annotations["config.linkerd.io/proxy-uid"], "2200");
    assert_eq!(annotations["config.linkerd.io/outbound-port"], "5140");
}

#[test]
fn flags_become_annotations_and_ingress_sets_the_mode() {
    let (out, _) = oxlink(
        &[
            "inject",
            "--ignore-cluster",
            "--ingress",
            "--enable-debug-sidecar",
            "--proxy-cpu-limit",
            "1",
            "--skip-outbound-ports",
            "443,6443",
            "-",
        ],
        MANIFEST,
    )
    .unwrap();
    let annotations = &docs(&out)[0]["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["linkerd.io/inject"], "ingress");
    assert_eq!(
        annotations["config.linkerd.io/enable-debug-sidecar"],
        "true"
    );
    assert_eq!(annotations["config.linkerd.io/proxy-cpu-limit"], "1");
    assert_eq!(
        annotations["config.linkerd.io/skip-outbound-ports"],
        "443,6443"
    );
}

#[test]
fn manual_mode_renders_the_proxy_and_uninject_restores_the_input() {
    let anchors = anchors_file();
    let (out, err) = oxlink(
        &[
            "inject",
            "--ignore-cluster",
            "--manual",
            "--identity-trust-anchors-file",
            anchors.as_str(),
            "-",
        ],
        MANIFEST,
    )
    .unwrap();
    assert!(err.contains("deployment \"web\" injected"), "{err}");
    let injected = docs(&out);
    let spec = &injected[0]["spec"]["template"]["spec"];
    assert_eq!(spec["initContainers"][1]["name"], "linkerd-proxy");
    assert_eq!(spec["initContainers"][1]["restartPolicy"], "Always");

    let (restored, err) = oxlink(&["uninject", "-"], &out).unwrap();
    assert_eq!(docs(&restored), docs(MANIFEST));
    assert!(err.contains("deployment \"web\" uninjected"), "{err}");
}

#[test]
fn manual_mode_needs_trust_anchors() {
    let err = oxlink(&["inject", "--ignore-cluster", "--manual", "-"], MANIFEST).unwrap_err();
    assert_eq!(
        err.to_string(),
        "--manual needs the trust anchors: pass --identity-trust-anchors-file \
         (or leave out --ignore-cluster to read them from the cluster)"
    );
    // Auto mode renders no proxy, so it needs none.
    oxlink(&["inject", "--ignore-cluster", "-"], MANIFEST).unwrap();
}

#[test]
fn a_trust_anchors_file_that_is_missing_or_not_certificates_is_refused() {
    let run = |path: &str| {
        let args = [
            "inject",
            "--ignore-cluster",
            "--manual",
            "--identity-trust-anchors-file",
            path,
            "-",
        ];
        format!("{:#}", oxlink(&args, MANIFEST).unwrap_err())
    };
    let missing = std::env::temp_dir().join("oxlink-no-such-anchors.pem");
    let err = run(missing.to_str().unwrap());
    assert!(
        err.starts_with(&format!(
            "reading --identity-trust-anchors-file {}: ",
            missing.display()
        )),
        "{err}"
    );
    let garbage = tempfile_path::TempPath::with("not a certificate\n");
    let err = run(garbage.as_str());
    assert!(
        err.contains(
            "does not hold usable trust anchors: trust bundle: no CERTIFICATE block found"
        ),
        "{err}"
    );
}

#[test]
fn json_output_and_directory_input() {
    let dir = std::env::temp_dir().join(format!("oxlink-cli-dir-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("nested")).unwrap();
    std::fs::write(dir.join("nested/web.yaml"), MANIFEST).unwrap();
    std::fs::write(dir.join("notes.txt"), "not a manifest").unwrap();
    let result = oxlink(
        &[
            "inject",
            "--ignore-cluster",
            "-o",
            "json",
            dir.to_str().unwrap(),
        ],
        "",
    );
    std::fs::remove_dir_all(&dir).unwrap();
    let (out, _) = result.unwrap();
    let parsed: Vec<Value> = serde_json::Deserializer::from_str(&out)
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("a stream of JSON objects");
    assert_eq!(parsed.len(), 3);
    assert_eq!(parsed[0]["kind"], "Deployment");
}

#[test]
fn invalid_input_is_a_clear_error() {
    let err = oxlink(&["inject", "--ignore-cluster", "-"], "kind: [unclosed").unwrap_err();
    assert!(
        format!("{err:#}").contains("not valid YAML or JSON"),
        "{err:#}"
    );
}

#[test]
fn udp_ports_are_warned_about() {
    let manifest = "\
kind: Pod
metadata:
  name: dns
spec:
  containers:
    - name: dns
      image: example/dns:1
      ports:
        - containerPort: 53
          protocol: UDP
";
    let (_, err) = oxlink(&["inject", "--ignore-cluster", "-"], manifest).unwrap();
    assert!(err.contains("pod \"dns\" annotated"), "{err}");
    assert!(err.contains("pod \"dns\": UDP port(s)"), "{err}");
}
