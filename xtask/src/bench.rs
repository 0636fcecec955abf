//! `cargo xtask bench [NAME] [-- ARGS]`: the benchmarks, built with optimizations.
//!
//! Each is a `harness = false` bench target or an example of the crate it measures, or (for
//! `idle-rss`) the controllers' release binaries run here; it prints its numbers (rates,
//! percentiles, ratios, memory) and never fails on a timing. `cargo xtask bench` (or `all`)
//! runs the set the performance goals are read from, one after the other, and repeats each
//! one's summary lines at the end.

use crate::{cluster, demo, run};
use anyhow::{Context, Result};
use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

struct Bench {
    name: &'static str,
    target: Target,
    /// Arguments used when none are given.
    default_args: &'static [&'static str],
    what: &'static str,
}

enum Target {
    Bench(&'static str, &'static str),
    Example(&'static str, &'static str),
    /// Run by xtask itself.
    IdleRss,
}

const BENCHES: &[Bench] = &[
    Bench {
        name: "identity",
        target: Target::Bench("oxlink-identity", "certify"),
        default_args: &[],
        what: "Certify: certs/s and per CPU-second, p50/p99, RSS (add `-- --token-review` for TokenReview against the cluster in KUBECONFIG, with API-server connections and CPU per cert; `-- --storm N` for N pods with bound tokens certifying at once, TokenReview only vs in-process verification)",
    },
    Bench {
        name: "injector",
        target: Target::Bench("oxlink-proxy-injector", "admission"),
        default_args: &[],
        what: "inject function throughput; admission p50/p99 over TLS at a paced rate, and where a review's time goes; CPU; RSS",
    },
    Bench {
        name: "destination",
        target: Target::Example("oxlink-destination", "fanout"),
        // subscribers, endpoints, connections, changes, nodes
        default_args: &["10000", "1000", "100", "20", "100"],
        what: "Get fan-out on proxies' keys (context tokens over 100 nodes; `--hints` for a topology-aware Service): memory per key and per subscription, change-to-last-subscriber p50/p99, the server's time to its last write, server and client CPU, lost updates",
    },
    Bench {
        name: "destination-churn",
        target: Target::Example("oxlink-destination", "churn"),
        // streams of each kind, rounds
        default_args: &["20000", "2"],
        what: "streams that come and go, each for its own key (unknown names, IPs, nodes, ports, egress addresses): subscription keys and server RSS after each round",
    },
    Bench {
        name: "idle-rss",
        target: Target::IdleRss,
        // seconds idle
        default_args: &["30"],
        what: "idle RSS of identity, destination and the proxy injector (release builds, run the same way against the running local cluster)",
    },
];

/// What `cargo xtask bench all` runs: (bench, arguments, whether it needs the cluster). The
/// ones without the cluster run first, so the cluster's own CPU use does not weigh on them.
const ALL: &[(&str, &[&str], bool)] = &[
    ("destination", &[], false),
    ("injector", &[], false),
    ("idle-rss", &[], true),
    ("identity", &["--storm", "10000"], true),
];

/// The lines each bench of `all` prints that carry its figures, repeated at the end.
const SUMMARY_PREFIXES: &[&str] = &[
    "storm:",
    "fan-out",
    "keys:",
    "admission",
    "where a review",
    "idle RSS",
];

#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// Which benchmark; `list` shows them; `all` (the default) runs the goal set.
    #[arg(default_value = "all")]
    name: String,
    /// Passed to the benchmark.
    #[arg(last = true)]
    args: Vec<String>,
}

pub(crate) fn run(args: BenchArgs) -> Result<()> {
    if args.name == "all" {
        return run_all();
    }
    let Some(bench) = BENCHES.iter().find(|b| b.name == args.name) else {
        let mut known: Vec<String> = BENCHES
            .iter()
            .map(|b| format!("  {:<17} {}", b.name, b.what))
            .collect();
        known.push(format!(
            "  {:<17} destination, injector, idle-rss and identity --storm 10000 in one run (the local cluster is started for the last two unless it runs)",
            "all"
        ));
        if args.name == "list" {
            println!("{}", known.join("\n"));
            return Ok(());
        }
        anyhow::bail!(
            "no benchmark named {:?}; there are:\n{}",
            args.name,
            known.join("\n")
        );
    };
    let args = if args.args.is_empty() {
        bench.default_args.iter().map(|a| a.to_string()).collect()
    } else {
        args.args
    };
    match command(bench, &args)? {
        Some(mut cmd) => run::status(&mut cmd),
        None => Ok(()),
    }
}

/// The command that runs `bench`, or `None` when xtask ran it itself.
fn command(bench: &Bench, args: &[String]) -> Result<Option<Command>> {
    let mut cmd = run::cargo();
    match bench.target {
        Target::Bench(package, target) => {
            cmd.args(["bench", "--locked", "-p", package, "--bench", target])
        }
        Target::Example(package, target) => cmd.args([
            "run",
            "--release",
            "--locked",
            "-p",
            package,
            "--example",
            target,
        ]),
        Target::IdleRss => {
            let secs: u64 = match args {
                [] => 30,
                [secs] => secs
                    .parse()
                    .with_context(|| format!("idle-rss takes seconds idle, not {secs:?}"))?,
                _ => anyhow::bail!("idle-rss takes one argument: the seconds to idle"),
            };
            demo::idle_rss(Duration::from_secs(secs))?;
            return Ok(None);
        }
    };
    cmd.arg("--").args(args);
    Ok(Some(cmd))
}

/// Runs the goal set, starting (and afterwards stopping) a fresh local cluster for the
/// benches that need one unless it already runs, and repeats the figures at the end.
fn run_all() -> Result<()> {
    let cluster = cluster::Cluster::from_env()?;
    let mut started = false;
    let mut summary = Vec::new();
    let mut failed = Vec::new();
    for (name, args, needs_cluster) in ALL {
        let bench = BENCHES
            .iter()
            .find(|b| b.name == *name)
            .expect("a known bench");
        println!("\n=== bench {name} {}", args.join(" "));
        let result = (|| -> Result<()> {
            if *needs_cluster && !cluster.is_running() {
                cluster.up(true)?;
                started = true;
            }
            let args: Vec<String> = if args.is_empty() {
                bench.default_args.iter().map(|a| a.to_string()).collect()
            } else {
                args.iter().map(|a| a.to_string()).collect()
            };
            if let Target::IdleRss = bench.target {
                // Its figures come from xtask itself.
                summary.push(demo::idle_rss(Duration::from_secs(30))?);
                return Ok(());
            }
            let mut cmd = command(bench, &args)?.context("a cargo command")?;
            if *needs_cluster {
                cmd.env("KUBECONFIG", cluster.kubeconfig());
            }
            summary.extend(tee(&mut cmd)?);
            Ok(())
        })();
        if let Err(e) = result {
            eprintln!("bench {name} failed: {e:#}");
            failed.push(*name);
        }
    }
    if started && let Err(e) = cluster.down() {
        eprintln!("stopping the local cluster: {e:#}");
    }
    println!("\n=== summary");
    for line in &summary {
        println!("{line}");
    }
    anyhow::ensure!(
        failed.is_empty(),
        "benches that failed: {}",
        failed.join(", ")
    );
    Ok(())
}

/// Runs `cmd`, echoing its standard output, and returns its summary lines.
fn tee(cmd: &mut Command) -> Result<Vec<String>> {
    eprintln!("$ {}", run::display(cmd));
    let mut child = cmd.stdout(Stdio::piped()).spawn()?;
    let out = child.stdout.take().context("the bench's stdout")?;
    let mut lines = Vec::new();
    for line in BufReader::new(out).lines() {
        let line = line?;
        println!("{line}");
        if SUMMARY_PREFIXES.iter().any(|p| line.starts_with(p)) {
            lines.push(line);
        }
    }
    let status = child.wait()?;
    anyhow::ensure!(status.success(), "{status}");
    Ok(lines)
}
