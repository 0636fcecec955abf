//! `cargo xtask test`: everything CI runs, in order, every step run even after one fails.
//!
//! fmt → clippy → unit tests → codegen drift → fuzz targets (built, each run for
//! [`fuzz::TEST_SECONDS`]) → helm lint --strict → local cluster up → e2e suite → cluster down
//! (also on failure) → `cargo xtask demo --no-wait` through both install routes → a short
//! `cargo xtask soak` ([`SHORT_SOAK_MINUTES`], every fault once, on a fresh cluster of its own).
//!
//! A step that needs one that failed is reported as not run, with that reason. `cargo test`
//! runs with `--no-fail-fast`, so one failing test binary hides none after it. The run ends
//! with the steps and their outcomes, the failed tests, the skipped tests with their reasons,
//! and a closing line alone, `N passed, N failed, N skipped`, that counts test cases only (the
//! steps are not tests). A skipped test is one marked `#[ignore]` or one that recorded a skip
//! at run time (`oxlink_e2e::skip`, see [`run::TestReport`]). Any failed step makes the run
//! exit non-zero, after all of that is printed.

use crate::{cluster, codegen, demo, e2e, fuzz, paths, run, soak, tools};
use anyhow::{Result, bail};
use std::{process::Command, time::Instant};

#[derive(Debug, clap::Args)]
pub(crate) struct TestArgs {
    /// Leave out the local cluster, the e2e suite and the demos.
    #[arg(long)]
    no_e2e: bool,
    /// Leave the local cluster running after the e2e suite, for a look around.
    #[arg(long)]
    keep_cluster: bool,
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Passed,
    Failed(String),
    NotRun(String),
}

/// The steps of one run, in order, with how each ended.
#[derive(Debug, Default)]
struct Steps {
    done: Vec<(&'static str, f64, Outcome)>,
}

// === impl Steps ===

impl Steps {
    /// Runs `f` as step `name` and records its outcome; returns whether it passed.
    fn run(&mut self, name: &'static str, f: impl FnOnce() -> Result<()>) -> bool {
        eprintln!("\n==> {name}");
        let t = Instant::now();
        let outcome = match f() {
            Ok(()) => Outcome::Passed,
            Err(e) => {
                eprintln!("step `{name}` failed: {e:#}");
                Outcome::Failed(format!("{e:#}"))
            }
        };
        let passed = outcome == Outcome::Passed;
        self.done.push((name, t.elapsed().as_secs_f64(), outcome));
        passed
    }

    /// Records that step `name` did not run, and why.
    fn not_run(&mut self, name: &'static str, why: impl Into<String>) {
        let why = why.into();
        eprintln!("\n==> {name}: not run ({why})");
        self.done.push((name, 0.0, Outcome::NotRun(why)));
    }

    fn failed(&self) -> Vec<&'static str> {
        self.done
            .iter()
            .filter(|(_, _, o)| matches!(o, Outcome::Failed(_)))
            .map(|(name, _, _)| *name)
            .collect()
    }

    /// One line per step: its name, outcome and time (and the error or the reason).
    fn table(&self) -> String {
        let mut out = String::new();
        for (name, secs, outcome) in &self.done {
            let line = match outcome {
                Outcome::Passed => format!("  {name:<22} ok       {secs:>6.1}s"),
                Outcome::Failed(e) => {
                    let first = e.lines().next().unwrap_or_default();
                    format!("  {name:<22} FAILED   {secs:>6.1}s  {first}")
                }
                Outcome::NotRun(why) => format!("  {name:<22} not run          {why}"),
            };
            out.push_str(&line);
            out.push('\n');
        }
        out
    }
}

/// What `--no-e2e` leaves out, said at the start and in the summary.
const LEFT_OUT_BY_NO_E2E: [&str; 5] = [
    "cluster up",
    "e2e",
    "demo (oxlink install)",
    "demo (helm install)",
    SOAK_STEP,
];

/// The short soak's step: every fault once, windows of [`SHORT_SOAK_WINDOW`] seconds.
const SOAK_STEP: &str = "soak (short)";
const SHORT_SOAK_MINUTES: u64 = 3;
const SHORT_SOAK_WINDOW: u64 = 3;

pub(crate) fn run(args: TestArgs) -> Result<()> {
    let started = Instant::now();
    if args.no_e2e {
        eprintln!(
            "--no-e2e: leaving out the local cluster, the e2e suite (oxlink-e2e), the demo \
             through both install routes and the short soak; their tests are neither run nor counted"
        );
    }
    let mut tests = run::TestReport::default();
    let mut steps = Steps::default();

    steps.run("fmt", || {
        run::status(run::cargo().args(["fmt", "--all", "--", "--check"]))
    });
    steps.run("clippy", || {
        run::status(run::cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]))
    });
    steps.run("unit tests", || {
        run::tests(
            run::cargo().args(["test", "--workspace", "--locked", "--exclude", "oxlink-e2e"]),
            &mut tests,
        )
    });
    steps.run("codegen --check", codegen::check);
    steps.run("fuzz", || fuzz::build_and_run_all(fuzz::TEST_SECONDS));
    steps.run("helm lint --strict", helm_lint);
    if args.no_e2e {
        for name in LEFT_OUT_BY_NO_E2E {
            steps.not_run(name, "left out by --no-e2e");
        }
    } else {
        e2e_and_demos(&args, &mut steps, &mut tests);
    }

    eprintln!(
        "\nsteps ({:.0}s in all):\n{}",
        started.elapsed().as_secs_f64(),
        steps.table()
    );
    // The failed and skipped tests by name, then the closing line, last and alone.
    tests.print_summary();
    let failed = steps.failed();
    if !failed.is_empty() {
        bail!("failed steps: {}", failed.join(", "));
    }
    Ok(())
}

/// The local cluster, the e2e suite on it, the demo through both install routes, and the
/// short soak.
fn e2e_and_demos(args: &TestArgs, steps: &mut Steps, tests: &mut run::TestReport) {
    let tools = steps.run("tools", || {
        tools::ensure(tools::Tool::Helm)?;
        tools::ensure(tools::Tool::Kubectl).map(drop)
    });
    let built = steps.run("e2e build", e2e::build);
    let cluster = match cluster::Cluster::from_env() {
        Ok(cluster) => Some(cluster),
        Err(e) => {
            steps.run("cluster up", || Err(e));
            None
        }
    };
    if let Some(cluster) = cluster {
        let up = steps.run("cluster up", || cluster.up(true));
        match (tools, built, up) {
            (true, true, true) => {
                steps.run("e2e", || {
                    e2e::suite(&cluster.kubeconfig(), Some(&cluster), &[], tests)
                });
            }
            _ => steps.not_run(
                "e2e",
                "a step it needs failed (tools, e2e build, cluster up)",
            ),
        }
        if !args.keep_cluster {
            steps.run("cluster down", || cluster.down());
        }
    } else {
        steps.not_run("e2e", "no cluster");
    }
    // The README's first command, non-interactively, through both install routes: on a fresh
    // cluster of its own (or the kept one), it must run through and tear down. Steps, not tests.
    for installer in [demo::Installer::Oxlink, demo::Installer::Helm] {
        if tools {
            steps.run(installer.step_name(), || {
                demo::run(demo::DemoArgs {
                    no_wait: true,
                    install_with: installer,
                })
            });
        } else {
            steps.not_run(installer.step_name(), "the tools step failed");
        }
    }
    // Fails on a failed request during a fault that left a replica serving, a fault that did
    // not complete, or RSS growth beyond the soak's bound.
    if tools {
        steps.run(SOAK_STEP, || {
            soak::run(soak::SoakArgs {
                minutes: SHORT_SOAK_MINUTES,
                window: SHORT_SOAK_WINDOW,
                skip: Vec::new(),
            })
        });
    } else {
        steps.not_run(SOAK_STEP, "the tools step failed");
    }
}

/// `helm lint --strict` (warnings fail) on every chart, and on the control plane with its HA
/// values too.
fn helm_lint() -> Result<()> {
    let (ws, cp) = (paths::workspace(), "charts/oxlink-control-plane");
    let identity =
        |key: &str, file: &str| format!("{key}={}", ws.join("tls/testdata").join(file).display());
    let control_plane = [
        "lint".into(),
        "--strict".into(),
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
    let helm = tools::ensure(tools::Tool::Helm)?;
    for args in [
        vec![
            "lint".into(),
            "--strict".into(),
            ws.join("charts/oxlink-crds").display().to_string(),
        ],
        control_plane.to_vec(),
        [&control_plane[..], &ha[..]].concat(),
        vec![
            "lint".into(),
            "--strict".into(),
            ws.join("charts/oxlink-viz").display().to_string(),
        ],
    ] {
        run::status(Command::new(&helm).args(args))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_runs_and_the_failures_are_named() {
        let mut steps = Steps::default();
        assert!(steps.run("one", || Ok(())));
        assert!(!steps.run("two", || bail!("broken\nmore detail")));
        // A later step still runs after a failure.
        let mut ran = false;
        assert!(steps.run("three", || {
            ran = true;
            Ok(())
        }));
        assert!(ran);
        steps.not_run("four", "left out by --no-e2e");
        assert_eq!(steps.failed(), ["two"]);
        let table = steps.table();
        let lines: Vec<_> = table
            .lines()
            .map(str::split_whitespace)
            .map(Iterator::collect::<Vec<_>>)
            .collect();
        assert_eq!(lines[0][..2], ["one", "ok"]);
        assert_eq!(lines[1][..2], ["two", "FAILED"]);
        assert_eq!(lines[1][3..], ["broken"]);
        assert_eq!(
            lines[3],
            ["four", "not", "run", "left", "out", "by", "--no-e2e"]
        );
    }
}
