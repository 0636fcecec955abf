//! `cargo xtask bench NAME [-- ARGS]`: the benchmarks, built with optimizations.
//!
//! Each is a `harness = false` bench target of the crate it measures; it prints its numbers
//! (rates, percentiles, ratios, memory) and never fails on a timing.

use crate::run;
use anyhow::Result;
use std::process::Command;

/// The benchmarks: (name on the command line, package, bench target, what it measures).
const BENCHES: &[(&str, &str, &str, &str)] = &[
    (
        "identity",
        "oxlink-identity",
        "certify",
        "Certify: certs/s and per CPU-second, p50/p99, RSS (add `-- --token-review` for TokenReview against the cluster in KUBECONFIG)",
    ),
    (
        "injector",
        "oxlink-proxy-injector",
        "admission",
        "inject function throughput; admission p50/p99 over TLS at a paced rate; CPU; RSS",
    ),
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
    let Some((_, package, target, _)) = BENCHES.iter().find(|(n, ..)| *n == args.name) else {
        let known: Vec<String> = BENCHES
            .iter()
            .map(|(n, _, _, what)| format!("  {n:<12} {what}"))
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
    run::status(
        Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args(["bench", "--locked", "-p", package, "--bench", target, "--"])
            .args(&args.args),
    )
}
