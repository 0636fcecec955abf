//! `cargo xtask test`: everything CI runs, in order, stopping at the first failure.
//!
//! fmt → clippy → unit tests → codegen drift → fuzz targets build → helm lint → local cluster
//! up → e2e suite → cluster down (also on failure) → `cargo xtask demo --no-wait`.

use crate::{cluster, codegen, demo, e2e, paths, run, tools};
use anyhow::{Context, Result};
use std::{process::Command, time::Instant};

#[derive(Debug, clap::Args)]
pub(crate) struct TestArgs {
    /// Skip the e2e suite (and the local cluster).
    #[arg(long)]
    no_e2e: bool,
    /// Leave the local cluster running after the e2e suite, for a look around.
    #[arg(long)]
    keep_cluster: bool,
}

pub(crate) fn run(args: TestArgs) -> Result<()> {
    let started = Instant::now();
    let mut counts = run::TestCounts::default();
    let mut steps: Vec<(&str, f64)> = Vec::new();
    let mut step = |name: &'static str, f: &mut dyn FnMut() -> Result<()>| -> Result<()> {
        eprintln!("\n==> {name}");
        let t = Instant::now();
        f().with_context(|| format!("step `{name}` failed"))?;
        steps.push((name, t.elapsed().as_secs_f64()));
        Ok(())
    };

    step("fmt", &mut || {
        run::status(run::cargo().args(["fmt", "--all", "--", "--check"]))
    })?;
    step("clippy", &mut || {
        run::status(run::cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    step("unit tests", &mut || {
        counts.merge(run::tests(run::cargo().args([
            "test",
            "--workspace",
            "--locked",
            "--exclude",
            "oxlink-e2e",
        ]))?);
        Ok(())
    })?;
    step("codegen --check", &mut codegen::check)?;
    step("fuzz build", &mut || {
        run::status(
            run::cargo().args([
                "build",
                "--locked",
                "--manifest-path",
                &paths::workspace()
                    .join("fuzz/Cargo.toml")
                    .display()
                    .to_string(),
            ]),
        )
    })?;
    step("helm lint", &mut || {
        let (ws, cp) = (paths::workspace(), "charts/oxlink-control-plane");
        let identity = |key: &str, file: &str| {
            format!("{key}={}", ws.join("tls/testdata").join(file).display())
        };
        let control_plane = [
            "lint".into(),
            ws.join(cp).display().to_string(),
            "--set-file".into(),
            identity("identityTrustAnchorsPEM", "anchor.crt.pem"),
            "--set-file".into(),
            identity("identity.issuer.tls.crtPEM", "issuer.crt.pem"),
            "--set-file".into(),
            identity("identity.issuer.tls.keyPEM", "issuer.key.pem"),
        ];
        let ha = [
            "-f".into(),
            ws.join(cp).join("values-ha.yaml").display().to_string(),
        ];
        for args in [
            vec![
                "lint".into(),
                ws.join("charts/oxlink-crds").display().to_string(),
            ],
            control_plane.to_vec(),
            [&control_plane[..], &ha[..]].concat(),
        ] {
            run::status(Command::new(tools::ensure(tools::Tool::Helm)?).args(args))?;
        }
        Ok(())
    })?;
    if !args.no_e2e {
        step("tools", &mut || {
            tools::ensure(tools::Tool::Helm)?;
            tools::ensure(tools::Tool::Kubectl).map(drop)
        })?;
        step("e2e build", &mut e2e::build)?;
        let cluster = cluster::Cluster::from_env()?;
        step("cluster up", &mut || cluster.up(true))?;
        let e2e = step("e2e", &mut || {
            counts.merge(e2e::suite(&cluster.kubeconfig(), Some(&cluster), &[])?);
            Ok(())
        });
        if !args.keep_cluster {
            cluster.down()?;
        }
        e2e?;
        // The README's first command, non-interactively, through both install routes: on a fresh
        // cluster of its own (or the kept one), it must run through and tear down.
        for installer in [demo::Installer::Oxlink, demo::Installer::Helm] {
            step(installer.step_name(), &mut || {
                demo::run(demo::DemoArgs {
                    no_wait: true,
                    install_with: installer,
                })?;
                counts.passed += 1;
                Ok(())
            })?;
        }
    }
    eprintln!(
        "\nall steps passed in {:.0}s:",
        started.elapsed().as_secs_f64()
    );
    for (name, secs) in steps {
        eprintln!("  {name:<16} {secs:>6.1}s");
    }
    // The closing line: every test that ran, unit and e2e.
    println!(
        "tests: {} passed, {} failed, {} skipped",
        counts.passed, counts.failed, counts.ignored
    );
    Ok(())
}
