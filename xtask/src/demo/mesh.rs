//! The demo on the real data plane (when the pod runtime runs the pods): the controllers run as
//! the chart's pods, and requests go through the real proxies of the todo app.

use super::{APP_NS, CONTROL_NS, Demo, fixture};
use anyhow::{Context, Result, bail, ensure};
use std::{
    process::Command,
    time::{Duration, Instant},
};

/// The todo app's UI, by its cluster DNS name, as the workshop's ingress calls it.
const UI: &str = "http://todoui.todo.svc.cluster.local:8090";

impl Demo {
    /// Waits until the chart's three controller Deployments are available, their pods running
    /// for real on the local cluster's nodes.
    pub(crate) fn wait_for_controller_pods(&self) -> Result<()> {
        for deploy in [
            "linkerd-identity",
            "linkerd-destination",
            "linkerd-proxy-injector",
        ] {
            self.kubectl(&[
                "rollout",
                "status",
                "-n",
                CONTROL_NS,
                &format!("deployment/{deploy}"),
                "--timeout=120s",
            ])?;
        }
        let pods = self.kubectl_output(&[
            "get",
            "pods",
            "-n",
            CONTROL_NS,
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.status.podIP}{\"\\n\"}{end}",
        ])?;
        for line in pods.lines().filter(|l| !l.trim().is_empty()) {
            println!("    {line}");
        }
        Ok(())
    }

    /// Deploys a meshed client, and sends requests from it to todoui, which calls todobackend,
    /// which talks to postgresdb: every hop through the proxies, over mTLS.
    pub(super) fn requests_through_the_mesh(&self) -> Result<()> {
        self.kubectl(&["apply", "-n", APP_NS, "-f", &fixture("client.yaml")])?;
        self.kubectl(&[
            "rollout",
            "status",
            "-n",
            APP_NS,
            "deployment/client",
            "--timeout=120s",
        ])?;
        let replies = self.get_from_client(&format!("{UI}/"), 5)?;
        for r in &replies {
            println!("    GET {UI}/ → {r}");
        }
        ensure!(
            replies.iter().all(|r| r.contains("\"status\":200")),
            "requests through the mesh failed: {replies:?}"
        );
        let ip = self.kubectl_output(&[
            "get",
            "pods",
            "-n",
            APP_NS,
            "-l",
            "app=todoui",
            "-o",
            "jsonpath={.items[0].status.podIP}",
        ])?;
        let metrics = proxy_metrics(ip.trim())?;
        let line = metrics
            .lines()
            .find(|l| {
                l.starts_with("request_total{direction=\"outbound\"")
                    && l.contains("tls=\"true\"")
                    && l.contains("dst_deployment=\"todobackend\"")
            })
            .context("todoui's proxy counts no mTLS request to todobackend")?;
        let label = |name: &str| {
            let key = format!("{name}=\"");
            line.split(&key)
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or("?")
                .to_string()
        };
        println!(
            "    todoui's proxy → {} ({}): tls=true, server_id={}",
            label("dst_pod"),
            label("target_addr"),
            label("server_id")
        );
        Ok(())
    }

    /// The workshop's ServiceProfile: `GET /stress` takes 300 ms; with the profile's 100ms
    /// timeout the client's proxy answers 504 instead. A proxy picks up a profile for a target
    /// it has not used for 5 s, so the demo waits that long between tries.
    pub(super) fn stress_times_out(&self) -> Result<()> {
        let stress = format!("{UI}/stress");
        let before = self.get_from_client(&stress, 1)?;
        println!("    before: GET /stress → {}", before.join(""));
        self.apply_profile()?;
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            self.interrupted()?;
            std::thread::sleep(Duration::from_secs(6));
            let after = self.get_from_client(&stress, 1)?.join("");
            if after.contains("\"status\":504") {
                println!("    after:  GET /stress → {after} (the route's 100ms timeout)");
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("GET /stress did not time out after the ServiceProfile: {after}");
            }
            println!("    waiting for the proxy to take up the profile: {after}");
        }
    }

    /// `count` GETs of `url` from inside the client pod, one JSON line each.
    fn get_from_client(&self, url: &str, count: u32) -> Result<Vec<String>> {
        let out = run_output(
            Command::new(self.bin.join("oxlink-pod-runtime"))
                .args(["exec", "-n", APP_NS, "-l", "app=client", "--kubeconfig"])
                .arg(self.cluster.kubeconfig())
                .args([
                    "--",
                    "oxlink-testapp",
                    "get",
                    url,
                    "--count",
                    &count.to_string(),
                ]),
        )?;
        Ok(out.lines().map(str::to_string).collect())
    }
}

fn run_output(cmd: &mut Command) -> Result<String> {
    crate::run::output(cmd)
}

/// The Prometheus text on a proxy's admin port.
fn proxy_metrics(ip: &str) -> Result<String> {
    let ip: std::net::IpAddr = ip.parse().with_context(|| format!("pod IP {ip:?}"))?;
    let (status, text) = crate::run::http(
        (ip, 4191).into(),
        "GET",
        "/metrics",
        Duration::from_secs(10),
    )?;
    ensure!(status == 200, "{ip}:4191/metrics answered {status}");
    Ok(text)
}

/// What the summary says to try by hand.
pub(super) fn look_around(bin: &std::path::Path, kubeconfig: &std::path::Path) -> String {
    format!(
        "\x20 export KUBECONFIG={kc}\n\
         \x20 kubectl get pods -A -o wide\n\
         \x20 {bin}/oxlink-pod-runtime exec -n {APP_NS} -l app=client -- oxlink-testapp get {UI}/stress\n\
         \x20 curl http://$(kubectl get pod -n {APP_NS} -l app=todoui -o jsonpath='{{.items[0].status.podIP}}'):4191/metrics\n\
         \x20 {bin}/oxlink check --proxy -n {APP_NS}\n\
         \x20 container logs: /var/lib/oxlink-pods/pods/<ns>_<pod>_<uid>/logs",
        kc = kubeconfig.display(),
        bin = bin.display(),
    )
}
