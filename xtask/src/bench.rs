//! `cargo xtask bench NAME [-- ARGS]`: the benchmarks, built with optimizations.
//!
//! Each is a `harness = false` bench target or an example of the crate it measures; it prints
//! its numbers (rates, percentiles, ratios, memory) and never fails on a timing.

use crate::run;
use anyhow::Result;
use std::process::Command;

struct Bench {
    name: &'static str,
    package: &'static str,
    target: Target,
    /// Arguments used when none are given.
    default_args: &'static [&'static str],
    what: &'static str,
}

enum Target {
    Bench(&'static str),
    Example(&'static str),
}

const BENCHES: &[Bench] = &[
    Bench {
        name: "identity",
        package: "oxlink-identity",
        target: Target::Bench("certify"),
        default_args: &[],
        what: "Certify: certs/s and per CPU-second, p50/p99, RSS (add `-- --token-review` for TokenReview against the cluster in KUBECONFIG, with API-server connections and CPU per cert)",
    },
    Bench {
        name: "injector",
        package: "oxlink-proxy-injector",
        target: Target::Bench("admission"),
        default_args: &[],
        what: "inject function throughput; admission p50/p99 over TLS at a paced rate; CPU; RSS",
    },
    Bench {
        name: "destination",
        package: "oxlink-destination",
        target: Target::Example("fanout"),
        // subscribers, endpoints, changes, concurrent connections
        default_args: &["10000", "1000", "100", "20"],
        what: "Get fan-out: memory per subscription, change-to-last-subscriber p50/p99, CPU per fan-out, lost updates",
    },
    Bench {
        name: "destination-churn",
        package: "oxlink-destination",
        target: Target::Example("churn"),
        // streams of each kind, rounds
        default_args: &["20000", "2"],
        what: "streams that come and go, each for its own key (unknown names, IPs, nodes, ports, egress addresses): subscription keys and server RSS after each round",
    },
];

#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// Which benchmark; `list` shows them.
    name: String,
    /// Passed to the benchmark.
    #[arg(last = true)]
    args: Vec<String>,
}

pub(crate) fn run(args: BenchArgs) -> Result<()> {
    let Some(bench) = BENCHES.iter().find(|b| b.name == args.name) else {
        let known: Vec<String> = BENCHES
            .iter()
            .map(|b| format!("  {:<12} {}", b.name, b.what))
            .collect();
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
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    match bench.target {
        Target::Bench(target) => {
            cmd.args(["bench", "--locked", "-p", bench.package, "--bench", target])
        }
        Target::Example(target) => cmd.args([
            "run",
            "--release",
            "--locked",
            "-p",
            bench.package,
            "--example",
            target,
        ]),
    };
    cmd.arg("--");
    if args.args.is_empty() {
        cmd.args(bench.default_args);
    } else {
        cmd.args(&args.args);
    }
    run::status(&mut cmd)
}
