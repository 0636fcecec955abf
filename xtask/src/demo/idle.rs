//! `cargo xtask bench idle-rss`: the three controllers' resident memory at rest.
//!
//! On the running local cluster, the CRDs and the control plane are installed as the demo
//! installs them, without the controllers' Deployments (their pods would run the same
//! programs a second time when pods run for real); identity, destination and the proxy
//! injector then run as local processes from their release builds, each under its own
//! ServiceAccount as the demo runs them, until each is ready; after `idle` without requests,
//! each one's `VmRSS` and thread count are read from `/proc`. Everything is removed again.

use super::{CONTROL_NS, Demo, LOCAL_VALUES, ctrl_c, target_dir};
use crate::run;
use anyhow::{Context, Result, ensure};
use std::time::Duration;

/// Runs the measurement and prints (and returns) its one line of figures.
pub(crate) fn idle_rss(idle: Duration) -> Result<String> {
    run::status(run::cargo().args([
        "build",
        "--release",
        "--locked",
        "--bins",
        "-p",
        "oxlink-identity",
        "-p",
        "oxlink-destination",
        "-p",
        "oxlink-proxy-injector",
    ]))?;
    run::status(run::cargo().args(["build", "--locked", "--bins", "-p", "oxlink-cli"]))?;
    let mut demo = Demo::new("bench-idle", ctrl_c()?, target_dir().join("release"))?;
    ensure!(
        demo.cluster.is_running(),
        "idle-rss needs the local cluster: start it with `cargo xtask cluster up`"
    );
    let result = demo.idle_rss(idle);
    demo.teardown();
    let line = result?;
    println!("{line}");
    Ok(line)
}

impl Demo {
    fn idle_rss(&mut self, idle: Duration) -> Result<String> {
        let crds = self.oxlink_output(&["install", "--crds"])?;
        self.kubectl_stdin(&["apply", "-f", "-"], &crds)?;
        self.wait_for_crds()?;
        let mut install = vec!["install"];
        install.extend(LOCAL_VALUES.iter().flat_map(|v| ["--set", v]));
        let control_plane = self.oxlink_output(&install)?;
        let without_deployments: Vec<&str> = control_plane
            .split("\n---")
            .filter(|doc| !doc.lines().any(|l| l == "kind: Deployment"))
            .collect();
        self.kubectl_stdin(&["apply", "-f", "-"], &without_deployments.join("\n---"))?;
        self.start_controllers()?;
        println!(
            "    idle for {}s, no requests (the controllers' watches stay open)",
            idle.as_secs()
        );
        let deadline = std::time::Instant::now() + idle;
        while std::time::Instant::now() < deadline {
            self.interrupted()?;
            self.ensure_children_alive()?;
            std::thread::sleep(Duration::from_millis(500));
        }
        let mut figures = Vec::new();
        for (name, child) in &self.children {
            let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()))?;
            let field = |key: &str| -> Result<u64> {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(key))
                    .and_then(|v| v.split_whitespace().next()?.parse().ok())
                    .with_context(|| format!("{key} of {name}"))
            };
            let (rss_kib, threads) = (field("VmRSS:")?, field("Threads:")?);
            let name = name.trim_start_matches("linkerd-");
            figures.push(format!(
                "{name} {:.2} MiB ({threads} threads)",
                rss_kib as f64 / 1024.0
            ));
        }
        let count = |kind: &str| -> String {
            self.kubectl_output(&["get", kind, "-A", "--no-headers", "-o", "name"])
                .map(|out| out.lines().count().to_string())
                .unwrap_or_else(|_| "?".into())
        };
        let shape = format!(
            "{} nodes, {} namespaces, {} pods, {} ServiceAccounts, {} Services, {} EndpointSlices; control plane in {CONTROL_NS}",
            count("nodes"),
            count("namespaces"),
            count("pods"),
            count("serviceaccounts"),
            count("services"),
            count("endpointslices"),
        );
        Ok(format!(
            "idle RSS after {}s (release builds, local processes): {}   [cluster: {shape}]",
            idle.as_secs(),
            figures.join(", ")
        ))
    }
}
