//! The built `oxlink` binary on its main failure paths, each asserted by exit code and message:
//! no cluster (a kubeconfig whose API server refuses connections, or none at all), bad input
//! files, and check failures. Nothing here needs a cluster; the only traffic goes to a closed
//! port on 127.0.0.1.

use serde_json::Value;
use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Command, Output},
};

/// A scratch directory holding a kubeconfig for an API server that is not there.
struct NoCluster {
    dir: PathBuf,
}

impl NoCluster {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("oxlink-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // A port that was free a moment ago: nothing listens there, connections are refused.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let kubeconfig = format!(
            "apiVersion: v1\nkind: Config\n\
             clusters: [{{name: c, cluster: {{server: 'https://127.0.0.1:{port}', insecure-skip-tls-verify: true}}}}]\n\
             contexts: [{{name: c, context: {{cluster: c, user: u}}}}]\n\
             current-context: c\n\
             users: [{{name: u, user: {{token: t}}}}]\n"
        );
        std::fs::write(dir.join("kubeconfig"), kubeconfig).unwrap();
        Self { dir }
    }

    fn file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// Runs `oxlink ARGS` in the scratch directory, with only its kubeconfig to go by.
    fn oxlink(&self, args: &[&str]) -> Run {
        let output = Command::new(env!("CARGO_BIN_EXE_oxlink"))
            .args(args)
            .current_dir(&self.dir)
            .env("KUBECONFIG", self.dir.join("kubeconfig"))
            .env("HOME", &self.dir)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        Run::new(args, output)
    }
}

impl Drop for NoCluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What one run of the binary did.
struct Run {
    what: String,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn new(args: &[&str], output: Output) -> Self {
        Self {
            what: format!("oxlink {}", args.join(" ")),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts the exit code, that stdout is empty, and that stderr is `Error: ` + `prefix`…
    #[track_caller]
    fn fails_with(&self, code: i32, prefix: &str) -> &Self {
        assert_eq!(self.code, Some(code), "{self}");
        assert!(self.stdout.is_empty(), "nothing on stdout: {self}");
        assert!(
            self.stderr.starts_with(&format!("Error: {prefix}")),
            "stderr starts with `Error: {prefix}`: {self}"
        );
        self
    }

    #[track_caller]
    fn stderr_has(&self, part: &str) -> &Self {
        assert!(self.stderr.contains(part), "stderr has {part:?}: {self}");
        self
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` exited {:?}\n--- stdout\n{}--- stderr\n{}",
            self.what, self.code, self.stdout, self.stderr
        )
    }
}

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: web}]}
";

const BROKEN_YAML: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x\n  bad\n";

#[test]
fn commands_that_need_the_cluster_fail_without_one() {
    let env = NoCluster::new("no-cluster");
    let refused = "Connection refused";
    env.oxlink(&["install"])
        .fails_with(1, "listing CustomResourceDefinitions: ")
        .stderr_has(refused);
    for command in ["upgrade", "uninstall"] {
        env.oxlink(&[command])
            .fails_with(1, "getting ConfigMap linkerd/linkerd-config: ")
            .stderr_has(refused);
    }
    // inject reads linkerd-config unless told not to, and says how to do without it.
    let manifest = env.file("web.yaml", DEPLOYMENT);
    env.oxlink(&["inject", manifest.to_str().unwrap()])
        .fails_with(
            1,
            "could not read the control plane's configuration from the cluster; \
             pass --ignore-cluster to use the defaults: getting ConfigMap linkerd/linkerd-config: ",
        )
        .stderr_has(refused);
}

#[test]
fn check_fails_on_an_unreachable_cluster_in_every_output_format() {
    let env = NoCluster::new("check");
    for mode in [&["check"][..], &["check", "--pre"], &["check", "--crds"]] {
        let args = [mode, &["--wait", "1s"]].concat();
        let run = env.oxlink(&args);
        assert_eq!(run.code, Some(1), "{run}");
        assert!(
            run.stdout.starts_with(
                "kubernetes-api\n--------------\n√ can initialize the client\n\
                 × can query the Kubernetes API\n"
            ),
            "{run}"
        );
        assert!(
            run.stdout
                .contains("see https://linkerd.io/2/checks/#k8s-api for hints"),
            "{run}"
        );
        assert!(
            run.stdout.ends_with("Status check results are ×\n"),
            "{run}"
        );
        // A fatal check ends the run: no later category is printed.
        assert!(!run.stdout.contains("kubernetes-version"), "{run}");
    }

    let run = env.oxlink(&["check", "--wait", "1s", "-o", "json"]);
    assert_eq!(run.code, Some(1), "{run}");
    let json: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run}"));
    assert_eq!(json["success"], false, "{run}");
    let checks = &json["categories"][0]["checks"];
    assert_eq!(json["categories"][0]["categoryName"], "kubernetes-api");
    assert_eq!(checks[1]["description"], "can query the Kubernetes API");
    assert_eq!(checks[1]["result"], "error", "{run}");
    assert_eq!(checks[1]["hint"], "https://linkerd.io/2/checks/#k8s-api");
}

#[test]
fn check_fails_on_a_missing_kubeconfig() {
    let env = NoCluster::new("kubeconfig");
    let missing = env.dir.join("nope").join("kubeconfig");
    let run = env.oxlink(&[
        "check",
        "--wait",
        "1s",
        "--kubeconfig",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.stdout.starts_with(&format!(
            "kubernetes-api\n--------------\n× can initialize the client\n    reading {}: ",
            missing.display()
        )),
        "{run}"
    );
    assert!(
        run.stdout.ends_with("Status check results are ×\n"),
        "{run}"
    );
}

#[test]
fn inject_and_uninject_refuse_bad_input_files() {
    let env = NoCluster::new("input");
    let broken = env.file("broken.yaml", BROKEN_YAML);
    let manifest = env.file("web.yaml", DEPLOYMENT);
    for command in [&["inject", "--ignore-cluster"][..], &["uninject"]] {
        env.oxlink(&[command, &["missing.yaml"]].concat())
            .fails_with(1, "reading missing.yaml: No such file or directory");
        env.oxlink(&[command, &[broken.to_str().unwrap()]].concat())
            .fails_with(
                1,
                &format!("{} is not valid YAML or JSON: ", broken.display()),
            )
            .stderr_has("line 3 column 11: unclosed bracket '{'");
    }
    // --manual renders the proxy, which needs trust anchors: none, or an unreadable file.
    env.oxlink(&["inject", "--ignore-cluster", "--manual", "web.yaml"])
        .fails_with(
            1,
            "--manual needs the trust anchors: pass --identity-trust-anchors-file",
        );
    env.oxlink(&[
        "inject",
        "--ignore-cluster",
        "--manual",
        "--identity-trust-anchors-file",
        "missing.pem",
        manifest.to_str().unwrap(),
    ])
    .fails_with(1, "reading --identity-trust-anchors-file missing.pem: ");
    // The same input, well-formed, goes through: the failures above are the input's.
    let run = env.oxlink(&["inject", "--ignore-cluster", "web.yaml"]);
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.stdout.contains("linkerd.io/inject: enabled"), "{run}");
}

#[test]
fn bad_flag_values_are_usage_errors() {
    let env = NoCluster::new("usage");
    let run = env.oxlink(&["inject", "--ignore-cluster", "--proxy-uid", "abc", "-"]);
    assert_eq!(run.code, Some(2), "{run}");
    assert!(
        run.stderr
            .starts_with("error: invalid value 'abc' for '--proxy-uid <PROXY_UID>': "),
        "{run}"
    );
    let run = env.oxlink(&["check", "--wait", "soon"]);
    assert_eq!(run.code, Some(2), "{run}");
    assert!(
        run.stderr
            .starts_with("error: invalid value 'soon' for '--wait <WAIT>': "),
        "{run}"
    );
    let run = env.oxlink(&["frobnicate"]);
    assert_eq!(run.code, Some(2), "{run}");
    assert!(
        run.stderr
            .starts_with("error: unrecognized subcommand 'frobnicate'"),
        "{run}"
    );
}

/// Every command that talks to a cluster takes `--kubeconfig` and `--context`; a kubeconfig
/// that is not there is named, and its cause given once, whether passed by flag or by
/// `$KUBECONFIG`.
#[test]
fn a_missing_kubeconfig_is_reported_once_by_every_cluster_command() {
    let env = NoCluster::new("missing-kubeconfig");
    let missing = env.dir.join("nope").join("kubeconfig");
    let missing = missing.to_str().unwrap();
    let manifest = env.file("web.yaml", DEPLOYMENT);
    let manifest = manifest.to_str().unwrap();
    for command in [
        &["install"][..],
        &["upgrade"],
        &["uninstall"],
        &["inject", manifest],
    ] {
        let mut args = command.to_vec();
        args.extend(["--kubeconfig", missing, "--context", "c"]);
        let run = env.oxlink(&args);
        assert_eq!(run.code, Some(1), "{run}");
        assert!(run.stdout.is_empty(), "{run}");
        assert!(run.stderr.starts_with("Error: "), "{run}");
        assert!(
            run.stderr.contains(&format!("reading {missing}: ")),
            "{run}"
        );
        assert_eq!(
            run.stderr.matches("No such file or directory").count(),
            1,
            "{run}"
        );
        assert_eq!(run.stderr.matches(missing).count(), 1, "{run}");
    }

    // The same file named by $KUBECONFIG, and no pod to fall back to.
    let run = Run::new(
        &["install"],
        Command::new(env!("CARGO_BIN_EXE_oxlink"))
            .arg("install")
            .env("KUBECONFIG", missing)
            .env("HOME", &env.dir)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .output()
            .unwrap(),
    );
    run.fails_with(
        1,
        &format!(
            "connecting to the cluster (pass --ignore-cluster to render without it): no kubeconfig: \
             {missing} does not exist, and this is not a pod in a cluster\n"
        ),
    );

    // --context picks a context of the kubeconfig: an unknown one is refused by name.
    let run = env.oxlink(&["upgrade", "--context", "elsewhere"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains("elsewhere"), "{run}");
}

#[test]
fn viz_commands_refuse_bad_input_before_the_cluster_and_name_a_missing_one() {
    let nc = NoCluster::new("viz");
    // Refused before any cluster access, with the metrics API's own words.
    nc.oxlink(&["viz", "dashboard", "--show", "grafana"])
        .fails_with(1, "the oxlink viz extension has no Grafana");
    nc.oxlink(&["viz", "stat", "widgets"]).fails_with(
        1,
        "cannot find Kubernetes canonical name from friendly name [widgets]",
    );
    nc.oxlink(&["viz", "stat", "deploy", "-n", "Bad_NS"])
        .fails_with(1, "invalid namespace \"Bad_NS\"");
    // Without a cluster: the dashboard and the metrics commands fail and say where they looked.
    nc.oxlink(&["viz", "dashboard", "--show", "url"])
        .fails_with(1, "")
        .stderr_has("web Deployment");
    nc.oxlink(&["viz", "edges", "deploy"])
        .fails_with(1, "")
        .stderr_has("metrics API");
}
