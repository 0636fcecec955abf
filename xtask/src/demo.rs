//! `cargo xtask demo`: the workshop on a local cluster, end to end.
//!
//! The local cluster comes up (or the running one is reused); the CRDs and the control plane are
//! installed with `oxlink install … | kubectl apply -f -`; the three controllers run as local
//! processes, each under its own ServiceAccount's token (so the chart's RBAC is what they get),
//! with the injector serving the API server's webhook calls at 127.0.0.1; `oxlink check` runs; the
//! todo app is deployed into a namespace annotated for injection and comes out injected; the
//! todoui ServiceProfile is applied; and a simulated proxy is certified by identity and resolves
//! todobackend's endpoints and todoui's profile through destination. Everything is torn down on
//! exit or Ctrl-C.

mod idle;
mod mesh;

pub(crate) use self::idle::idle_rss;

use crate::{cluster, paths, pods, run, tools};
use anyhow::{Context, Result, bail, ensure};
use oxlink_crds::names::{
    control_plane::{DESTINATION_SERVICE_ACCOUNT, IDENTITY_TOKEN_AUDIENCE},
    identity::service_account_identity,
};
use std::{
    fs,
    io::Write,
    net::SocketAddr,
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

/// The namespace of the control plane, and of the app.
pub(crate) const CONTROL_NS: &str = "linkerd";
pub(crate) const APP_NS: &str = "todo";
const TRUST_DOMAIN: &str = "cluster.local";

/// Where the local controllers listen (all on 127.0.0.1).
const IDENTITY: u16 = 18080;
const IDENTITY_ADMIN: u16 = 19990;
const DESTINATION: u16 = 18086;
const DESTINATION_ADMIN: u16 = 19996;
const INJECTOR: u16 = 18443;
const INJECTOR_ADMIN: u16 = 19995;

#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Run through, print the summary and tear down without waiting for Ctrl-C.
    #[arg(long)]
    pub(crate) no_wait: bool,
    /// How to install the CRDs and the control plane.
    #[arg(long, value_enum, default_value = "oxlink")]
    pub(crate) install_with: Installer,
}

/// The two install routes of the workshop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Installer {
    /// `oxlink install --crds | kubectl apply -f -`, then `oxlink install | kubectl apply -f -`.
    Oxlink,
    /// `helm install` of `charts/oxlink-crds` and `charts/oxlink-control-plane`.
    Helm,
}

impl Installer {
    /// The name of the `cargo xtask test` step that runs the demo this way.
    pub(crate) fn step_name(self) -> &'static str {
        match self {
            Installer::Oxlink => "demo (oxlink install)",
            Installer::Helm => "demo (helm install)",
        }
    }
}

pub(crate) fn run(args: DemoArgs) -> Result<()> {
    let mut demo = Demo::new("demo", ctrl_c()?, target_dir().join("debug"))?;
    let result = demo.run(&args);
    if let Err(e) = &result {
        eprintln!("\nthe demo failed: {e:#}\nlogs: {}", demo.dir.display());
    }
    demo.teardown();
    result
}

/// A flag that Ctrl-C sets; the handler is installed once per process (a test run may run the
/// demo more than once).
pub(crate) fn ctrl_c() -> Result<Arc<AtomicBool>> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    if let Some(flag) = FLAG.get() {
        return Ok(flag.clone());
    }
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    ctrlc::set_handler(move || set.store(true, Ordering::SeqCst))
        .context("installing the Ctrl-C handler")?;
    Ok(FLAG.get_or_init(|| flag).clone())
}

/// One run: the cluster, the binaries, the files handed to the controllers, and the processes.
/// `cargo xtask soak` sets up its mesh with the same pieces.
pub(crate) struct Demo {
    cluster: cluster::Cluster,
    /// Whether this run started the cluster (and so stops it).
    started_cluster: bool,
    /// The pod runtime runs the pods: the controllers run as pods and the proxies for real.
    real: bool,
    dir: PathBuf,
    bin: PathBuf,
    /// Where the controllers' binaries are: `bin`, or the release builds for `idle-rss`.
    controllers_bin: PathBuf,
    children: Vec<(&'static str, Child)>,
    stop: Arc<AtomicBool>,
    step: usize,
    started: Instant,
}

const STEPS: usize = 10;

impl Demo {
    /// A run whose files and logs go to `target/<name>` (emptied first), running the controllers
    /// built in `controllers_bin`.
    pub(crate) fn new(name: &str, stop: Arc<AtomicBool>, controllers_bin: PathBuf) -> Result<Self> {
        let dir = paths::workspace().join("target").join(name);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("logs"))?;
        Ok(Self {
            cluster: cluster::Cluster::from_env()?,
            started_cluster: false,
            real: false,
            dir,
            bin: target_dir().join("debug"),
            controllers_bin,
            children: Vec::new(),
            stop,
            step: 0,
            started: Instant::now(),
        })
    }

    fn run(&mut self, args: &DemoArgs) -> Result<()> {
        self.begin("Building oxlink, the controllers, the pod runtime and the simulated proxy");
        self.build()?;

        self.begin("Starting the local cluster");
        self.start_cluster()?;
        self.oxlink(&["check", "--pre"])?;

        self.begin("Installing the CRDs and the control plane");
        match args.install_with {
            Installer::Oxlink => self.install_with_oxlink(&[])?,
            Installer::Helm => self.install_with_helm()?,
        }

        if self.real {
            self.begin("identity, destination and the proxy injector run as the chart's pods");
            self.wait_for_controller_pods()?;
        } else {
            self.begin("Starting identity, destination and the proxy injector as local processes");
            self.start_controllers()?;
        }

        self.begin("Checking the installation");
        self.oxlink(&["check", "--wait", "2m"])?;

        self.begin("Deploying the todo app into a namespace annotated for injection");
        self.deploy_todo_app()?;
        self.after_the_todo_app(args)
    }

    /// Builds oxlink, the controllers, the pod runtime and the simulated proxy, and kubectl.
    pub(crate) fn build(&self) -> Result<()> {
        run::status(run::cargo().args([
            "build",
            "--locked",
            "--bins",
            "-p",
            "oxlink-cli",
            "-p",
            "oxlink-identity",
            "-p",
            "oxlink-destination",
            "-p",
            "oxlink-proxy-injector",
            "-p",
            "oxlink-web",
            "-p",
            "oxlink-e2e",
            "-p",
            "oxlink-pod-runtime",
        ]))?;
        tools::ensure(tools::Tool::Kubectl)?;
        Ok(())
    }

    /// Starts the local cluster, or reuses the running one (and then leaves it up).
    pub(crate) fn start_cluster(&mut self) -> Result<()> {
        if self.cluster.is_running() {
            println!("    reusing the running local cluster (it stays up afterwards)");
        } else {
            self.cluster.up(true)?;
            self.started_cluster = true;
        }
        self.real = pods::ready_file(self.cluster.dir()).exists();
        match self.real {
            true => println!(
                "    pods run for real: the chart's controllers and the real linkerd2-proxy"
            ),
            false => println!(
                "    pods are status only: the controllers run as local processes, the proxy is simulated"
            ),
        }
        Ok(())
    }

    /// Deploys the todo app into namespace `todo`, annotated for injection, and checks that
    /// every pod came out injected.
    pub(crate) fn deploy_todo_app(&self) -> Result<()> {
        self.kubectl(&["create", "namespace", APP_NS])?;
        self.kubectl(&["annotate", "namespace", APP_NS, "linkerd.io/inject=enabled"])?;
        let app = fixture("todo-app.yaml");
        self.kubectl(&["apply", "-n", APP_NS, "-f", &app])?;
        for deploy in ["postgresdb", "todobackend", "todoui"] {
            self.kubectl(&[
                "rollout",
                "status",
                "-n",
                APP_NS,
                &format!("deployment/{deploy}"),
                "--timeout=120s",
            ])?;
        }
        self.show_injected_pods()
    }

    fn after_the_todo_app(&mut self, args: &DemoArgs) -> Result<()> {
        if self.real {
            self.begin(
                "Requests through the mesh: client → todoui → todobackend → postgresdb, over mTLS",
            );
            self.requests_through_the_mesh()?;
            self.begin("The todoui ServiceProfile: GET /stress times out at 100ms");
            self.stress_times_out()?;
        } else {
            self.begin("Applying the todoui ServiceProfile");
            self.apply_profile()?;
            self.begin(
                "A simulated proxy in todoui: certify, resolve todobackend, fetch the profile",
            );
            self.simulated_proxy()?;
        }

        self.begin("Checking the data plane");
        self.oxlink(&["check", "--proxy", "-n", APP_NS])?;

        self.begin("Done");
        self.summary();
        if !args.no_wait {
            println!("\nPress Ctrl-C to stop the controllers and tear everything down.");
            while !self.stop.load(Ordering::SeqCst) {
                self.ensure_children_alive()?;
                std::thread::sleep(Duration::from_millis(250));
            }
            println!();
        }
        Ok(())
    }

    /// The local cluster.
    pub(crate) fn cluster(&self) -> &cluster::Cluster {
        &self.cluster
    }

    /// Whether pods run for real (the pod runtime, the real proxy).
    pub(crate) fn real(&self) -> bool {
        self.real
    }

    /// The run's directory (`target/<name>`).
    pub(crate) fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Prints the next step's heading (and checks for Ctrl-C between steps).
    fn begin(&mut self, what: &str) {
        self.step += 1;
        println!(
            "\n[{}/{STEPS}] {what} ({:.0}s)",
            self.step,
            self.started.elapsed().as_secs_f64()
        );
    }

    pub(crate) fn interrupted(&self) -> Result<()> {
        if self.stop.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        Ok(())
    }

    /// `oxlink install --crds | kubectl apply -f -`, then `oxlink install EXTRA… | kubectl
    /// apply -f -`.
    pub(crate) fn install_with_oxlink(&self, extra: &[&str]) -> Result<()> {
        let crds = self.oxlink_output(&["install", "--crds"])?;
        self.kubectl_stdin(&["apply", "-f", "-"], &crds)?;
        self.wait_for_crds()?;
        let mut install = vec!["install"];
        if !self.real {
            install.extend(LOCAL_VALUES.iter().flat_map(|v| ["--set", v]));
        }
        install.extend(extra);
        let control_plane = self.oxlink_output(&install)?;
        self.kubectl_stdin(&["apply", "-f", "-"], &control_plane)
    }

    fn install_with_helm(&self) -> Result<()> {
        let charts = paths::workspace().join("charts");
        let helm = tools::ensure(tools::Tool::Helm)?;
        let helm = |args: &[&str]| -> Result<()> {
            self.interrupted()?;
            run::status(
                Command::new(&helm)
                    .args(args)
                    .env("KUBECONFIG", self.cluster.kubeconfig()),
            )
        };
        helm(&[
            "install",
            "oxlink-crds",
            &charts.join("oxlink-crds").display().to_string(),
        ])?;
        self.wait_for_crds()?;
        // The chart mints no certificates: a trust anchor and issuer go in as values, as with
        // Linkerd's chart.
        let pki = self.dir.join("pki");
        self.oxlink(&["identity", "generate", "--dir", &pki.display().to_string()])?;
        let file = |key: &str, name: &str| format!("{key}={}", pki.join(name).display());
        let mut args = vec![
            "install".to_string(),
            "oxlink-control-plane".to_string(),
            charts.join("oxlink-control-plane").display().to_string(),
            "--namespace".to_string(),
            CONTROL_NS.to_string(),
            "--create-namespace".to_string(),
            "--set-file".to_string(),
            file("identityTrustAnchorsPEM", "ca.crt"),
            "--set-file".to_string(),
            file("identity.issuer.tls.crtPEM", "issuer.crt"),
            "--set-file".to_string(),
            file("identity.issuer.tls.keyPEM", "issuer.key"),
        ];
        for value in LOCAL_VALUES.iter().filter(|_| !self.real) {
            args.extend(["--set".to_string(), value.to_string()]);
        }
        helm(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// The workshop's todoui ServiceProfile, in the app's namespace.
    fn apply_profile(&self) -> Result<()> {
        self.kubectl(&[
            "apply",
            "-n",
            APP_NS,
            "-f",
            &fixture("serviceprofile-todoui.yaml"),
        ])
    }

    fn wait_for_crds(&self) -> Result<()> {
        self.kubectl(&[
            "wait",
            "--for=condition=established",
            "--timeout=60s",
            "crd",
            "--all",
        ])
    }

    /// Mints a token for each controller's ServiceAccount, writes its kubeconfig and the files
    /// a pod would have mounted, starts it, and waits until it is ready.
    fn start_controllers(&mut self) -> Result<()> {
        let files = self.dir.join("files");
        fs::create_dir_all(&files)?;
        let anchors = files.join("ca-bundle.crt");
        fs::write(
            &anchors,
            self.kubectl_output(&[
                "get",
                "configmap",
                "-n",
                CONTROL_NS,
                "linkerd-identity-trust-roots",
                "-o",
                "jsonpath={.data.ca-bundle\\.crt}",
            ])?,
        )?;
        let values = files.join("values");
        fs::write(
            &values,
            self.kubectl_output(&[
                "get",
                "configmap",
                "-n",
                CONTROL_NS,
                "linkerd-config",
                "-o",
                "jsonpath={.data.values}",
            ])?,
        )?;

        let local = |port: u16| format!("127.0.0.1:{port}");
        let identity = vec![
            format!("--addr={}", local(IDENTITY)),
            format!("--admin-addr={}", local(IDENTITY_ADMIN)),
        ];
        self.start(
            "linkerd-identity",
            "oxlink-identity",
            &identity,
            IDENTITY_ADMIN,
        )?;

        // destination serves mesh TLS with a certificate it gets from identity, presenting a
        // token of its ServiceAccount for identity's audience, as its pod's projected token.
        let destination_token = files.join("linkerd-destination.token");
        fs::write(
            &destination_token,
            self.token(
                CONTROL_NS,
                "linkerd-destination",
                Some(IDENTITY_TOKEN_AUDIENCE),
            )?,
        )?;
        let destination = vec![
            format!("--addr={}", local(DESTINATION)),
            format!("--admin-addr={}", local(DESTINATION_ADMIN)),
            format!("--identity-addr={}", local(IDENTITY)),
            format!("--identity-token-path={}", destination_token.display()),
            format!("--identity-trust-anchors={}", anchors.display()),
        ];
        self.start(
            "linkerd-destination",
            "oxlink-destination",
            &destination,
            DESTINATION_ADMIN,
        )?;

        let injector = vec![
            format!("--addr={}", local(INJECTOR)),
            format!("--admin-addr={}", local(INJECTOR_ADMIN)),
            format!("--config-values={}", values.display()),
            format!("--trust-anchors={}", anchors.display()),
            "--tls-extra-names=127.0.0.1".to_string(),
        ];
        self.start(
            "linkerd-proxy-injector",
            "oxlink-proxy-injector",
            &injector,
            INJECTOR_ADMIN,
        )?;
        Ok(())
    }

    /// Starts `binary` as ServiceAccount `sa` of the control plane, logging to `logs/<sa>.log`,
    /// and waits for its admin server's `/ready`.
    fn start(
        &mut self,
        sa: &'static str,
        binary: &str,
        args: &[String],
        admin_port: u16,
    ) -> Result<()> {
        let kubeconfig = self.service_account_kubeconfig(sa)?;
        let log = self.dir.join("logs").join(format!("{sa}.log"));
        let out = fs::File::create(&log)?;
        let child = Command::new(self.controllers_bin.join(binary))
            .args(args)
            .env("KUBECONFIG", &kubeconfig)
            .env("OXLINK_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            // Its own process group: Ctrl-C reaches the demo, which stops it in order.
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", self.controllers_bin.join(binary).display()))?;
        println!("    {sa}: pid {} (log {})", child.id(), log.display());
        self.children.push((sa, child));
        let admin: SocketAddr = ([127, 0, 0, 1], admin_port).into();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            self.interrupted()?;
            self.ensure_children_alive()?;
            if http_ok(admin, "/ready") {
                println!("    {sa}: ready");
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{sa} was not ready within 60s; see {}", log.display());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A day-long token of ServiceAccount `ns/sa` from the TokenRequest API: for the API
    /// server's own audience, or for `audience` (identity's, to present to Certify).
    fn token(&self, ns: &str, sa: &str, audience: Option<&str>) -> Result<String> {
        let audience = audience.map(|a| format!("--audience={a}"));
        let mut args = vec!["create", "token", sa, "-n", ns, "--duration=24h"];
        args.extend(audience.as_deref());
        Ok(self.kubectl_output(&args)?.trim().to_string())
    }

    /// A kubeconfig for the local cluster that authenticates as ServiceAccount `sa` of the
    /// control plane, with a token minted through the TokenRequest API.
    fn service_account_kubeconfig(&self, sa: &str) -> Result<PathBuf> {
        let token = self.token(CONTROL_NS, sa, None)?;
        let server = self.kubectl_output(&[
            "config",
            "view",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ])?;
        let ca = self.kubectl_output(&[
            "config",
            "view",
            "--minify",
            "--raw",
            "-o",
            "jsonpath={.clusters[0].cluster.certificate-authority-data}",
        ])?;
        let path = self.dir.join("files").join(format!("{sa}.kubeconfig"));
        fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: {sa}\n  user:\n    token: {}\ncontexts:\n- name: {sa}\n  context: {{cluster: local, user: {sa}, namespace: {CONTROL_NS}}}\ncurrent-context: {sa}\n",
                token
            ),
        )?;
        Ok(path)
    }

    fn show_injected_pods(&self) -> Result<()> {
        let pods = self.kubectl_output(&[
            "get",
            "pods",
            "-n",
            APP_NS,
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.status.podIP} {.spec.initContainers[*].name} {.spec.containers[*].name}{\"\\n\"}{end}",
        ])?;
        let mut count = 0;
        for line in pods.lines().filter(|l| !l.trim().is_empty()) {
            let mut words = line.split_whitespace();
            let (name, ip) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            let containers: Vec<&str> = words.collect();
            ensure!(
                containers.contains(&"linkerd-proxy"),
                "pod {name} was not injected: its containers are {containers:?}"
            );
            println!("    {name:<40} {ip:<14} {}", containers.join(", "));
            count += 1;
        }
        ensure!(count > 0, "no pods in namespace {APP_NS}");
        println!("    {count} pods, every one with linkerd-proxy");
        Ok(())
    }

    fn simulated_proxy(&self) -> Result<()> {
        let token = self.dir.join("files").join("todoui.token");
        fs::write(
            &token,
            self.token(APP_NS, "todoui", Some(IDENTITY_TOKEN_AUDIENCE))?,
        )?;
        let identity = service_account_identity("todoui", APP_NS, CONTROL_NS, TRUST_DOMAIN);
        let mut cmd = Command::new(self.bin.join("simulated-proxy"));
        cmd.args(["--name", &identity])
            .arg("--token-file")
            .arg(&token)
            .arg("--trust-anchors")
            .arg(self.dir.join("files").join("ca-bundle.crt"))
            .arg(format!("--identity-addr=127.0.0.1:{IDENTITY}"))
            .arg(format!("--destination-addr=127.0.0.1:{DESTINATION}"))
            .arg(format!(
                "--destination-name={}",
                service_account_identity(
                    DESTINATION_SERVICE_ACCOUNT,
                    CONTROL_NS,
                    CONTROL_NS,
                    TRUST_DOMAIN
                )
            ))
            .args(["--namespace", APP_NS])
            .args(["--resolve", "todobackend.todo.svc.cluster.local:8080"])
            .args(["--expect-endpoints", "2"])
            .args(["--profile", "todoui.todo.svc.cluster.local:8090"])
            .args(["--expect-route", "GET /stress"]);
        let out = run::output(&mut cmd)?;
        for line in out.lines() {
            println!("    {line}");
        }
        Ok(())
    }

    fn summary(&self) {
        let kubeconfig = self.cluster.kubeconfig();
        if self.real {
            println!(
                "The workshop ran on a local cluster, with the real data plane, in {:.0}s:\n\
                 \x20 - CRDs and control plane installed; identity, destination and the injector running as pods\n\
                 \x20 - `oxlink check` green\n\
                 \x20 - the todo app injected, every pod Ready once its linkerd2-proxy was certified\n\
                 \x20 - requests from a meshed client through todoui, todobackend and postgresdb over mTLS\n\
                 \x20 - the todoui ServiceProfile turning GET /stress into a 504 at 100ms\n\n\
                 Look around:\n{}",
                self.started.elapsed().as_secs_f64(),
                mesh::look_around(&self.bin, &kubeconfig),
            );
            return;
        }
        println!(
            "The workshop ran on a local cluster in {:.0}s:\n\
             \x20 - CRDs and control plane installed with `oxlink install | kubectl apply -f -`\n\
             \x20 - identity, destination and the proxy injector running under their own ServiceAccounts\n\
             \x20 - `oxlink check` green\n\
             \x20 - the todo app injected by the webhook (namespace {APP_NS}, annotation linkerd.io/inject=enabled)\n\
             \x20 - a simulated proxy certified, resolving todobackend and todoui's ServiceProfile\n\n\
             Look around:\n\
             \x20 export KUBECONFIG={}\n\
             \x20 kubectl get pods -n {APP_NS} -o wide\n\
             \x20 {}/oxlink check --proxy -n {APP_NS}\n\
             \x20 logs of the controllers: {}",
            self.started.elapsed().as_secs_f64(),
            kubeconfig.display(),
            self.bin.display(),
            self.dir.join("logs").display(),
        );
    }

    fn ensure_children_alive(&mut self) -> Result<()> {
        for (name, child) in &mut self.children {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "{name} exited ({status}); see {}",
                    self.dir.join("logs").join(format!("{name}.log")).display()
                );
            }
        }
        Ok(())
    }

    /// Stops the controllers (SIGTERM, then SIGKILL after 10 s), removes what the demo created
    /// on a cluster it did not start, and stops the cluster it started.
    pub(crate) fn teardown(&mut self) {
        println!("\nTearing down…");
        for (name, child) in self.children.iter_mut().rev() {
            run::signal(child.id(), "TERM");
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
                let _ = child.wait();
            }
            println!("    {name} stopped");
        }
        self.children.clear();
        if self.started_cluster {
            if let Err(e) = self.cluster.down() {
                eprintln!("stopping the local cluster: {e:#}");
            }
        } else if self.cluster.is_running() {
            let _ = self.kubectl(&[
                "delete",
                "namespace",
                APP_NS,
                "--ignore-not-found",
                "--wait=false",
            ]);
            if let Ok(objects) = self.oxlink_output(&["uninstall"]) {
                let _ = self.kubectl_stdin(&["delete", "--ignore-not-found", "-f", "-"], &objects);
            }
        }
    }

    pub(crate) fn oxlink(&self, args: &[&str]) -> Result<()> {
        self.interrupted()?;
        run::status(&mut self.oxlink_cmd(args))
    }

    pub(crate) fn oxlink_output(&self, args: &[&str]) -> Result<String> {
        self.interrupted()?;
        run::output(&mut self.oxlink_cmd(args))
    }

    fn oxlink_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.bin.join("oxlink"));
        cmd.args(args)
            .env("KUBECONFIG", self.cluster.kubeconfig())
            .env("PATH", tools::path_with_tools().unwrap_or_default());
        cmd
    }

    pub(crate) fn kubectl(&self, args: &[&str]) -> Result<()> {
        self.interrupted()?;
        run::status(&mut self.kubectl_cmd(args))
    }

    pub(crate) fn kubectl_output(&self, args: &[&str]) -> Result<String> {
        self.interrupted()?;
        run::output(&mut self.kubectl_cmd(args))
    }

    fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(tools::bin_dir().join("kubectl"));
        cmd.args(args).env("KUBECONFIG", self.cluster.kubeconfig());
        cmd
    }

    /// Runs kubectl with `input` on its standard input (`… | kubectl apply -f -`).
    pub(crate) fn kubectl_stdin(&self, args: &[&str], input: &str) -> Result<()> {
        self.interrupted()?;
        let mut cmd = self.kubectl_cmd(args);
        eprintln!("$ kubectl {} <<< ({} bytes)", args.join(" "), input.len());
        let mut child = cmd
            .stdin(Stdio::piped())
            .spawn()
            .context("starting kubectl")?;
        child
            .stdin
            .take()
            .context("kubectl's stdin")?
            .write_all(input.as_bytes())?;
        let status = child.wait()?;
        ensure!(
            status.success(),
            "`kubectl {}` failed ({status})",
            args.join(" ")
        );
        Ok(())
    }
}

/// The values (`--set`) of a control plane whose controllers run on this machine: the API
/// server calls every webhook at 127.0.0.1.
const LOCAL_VALUES: &[&str] = &["webhook.url=https://127.0.0.1:18443"];

pub(crate) fn fixture(name: &str) -> String {
    paths::workspace()
        .join("e2e")
        .join("fixtures")
        .join(name)
        .display()
        .to_string()
}

/// Cargo's target directory, as cargo itself resolves it for this workspace.
pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| paths::workspace().join("target"))
}

/// Whether `GET path` on `addr` answers 200.
fn http_ok(addr: SocketAddr, path: &str) -> bool {
    run::http(addr, "GET", path, Duration::from_secs(2)).is_ok_and(|(status, _)| status == 200)
}
