//! `cargo xtask test`: everything CI runs, in order, stopping at the first failure.
//!
//! fmt → clippy → unit tests → codegen drift → fuzz targets build → helm lint → local cluster
//! up → e2e suite → cluster down (also on failure).

use crate::{cluster, codegen, paths, run, tools};
use anyhow::{Context, Result};
use std::{ffi::OsString, process::Command, time::Instant};

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
        run::status(cargo().args(["fmt", "--all", "--", "--check"]))
    })?;
    step("clippy", &mut || {
        run::status(cargo().args([
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
        counts.merge(run::tests(cargo().args([
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
            cargo().args([
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
        run::status(
            Command::new(tools::ensure(tools::Tool::Helm)?)
                .arg("lint")
                .arg(paths::workspace().join("charts/oxlink-crds")),
        )
    })?;
    if !args.no_e2e {
        step("tools", &mut || {
            tools::ensure(tools::Tool::Helm)?;
            tools::ensure(tools::Tool::Kubectl).map(drop)
        })?;
        step("e2e build", &mut || {
            run::status(cargo().args(["test", "-p", "oxlink-e2e", "--locked", "--no-run"]))
        })?;
        let cluster = cluster::Cluster::from_env()?;
        step("cluster up", &mut || cluster.up(true))?;
        let e2e = step("e2e", &mut || {
            counts.merge(run::tests(
                cargo()
                    .args([
                        "test",
                        "-p",
                        "oxlink-e2e",
                        "--locked",
                        "--",
                        "--test-threads=4",
                    ])
                    .env("KUBECONFIG", cluster.kubeconfig())
                    .env("PATH", path_with_tools()?)
                    // Lets restart tests stop and start the cluster (e2e/src/localkube.rs).
                    .env("OXLINK_E2E_LOCALKUBE_BIN", cluster::build()?)
                    .env("OXLINK_E2E_LOCALKUBE_DIR", paths::localkube_dir()),
            )?);
            Ok(())
        });
        if !args.keep_cluster {
            cluster.down()?;
        }
        e2e?;
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

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo")))
}

/// `PATH` with the pinned helm and kubectl first, so tests run exactly those.
fn path_with_tools() -> Result<OsString> {
    let mut dirs = vec![tools::bin_dir()];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    Ok(std::env::join_paths(dirs)?)
}
