//! `cargo xtask fuzz [TARGET] [--seconds N]`: the fuzz targets of `fuzz/`, built and run on
//! stable Rust.
//!
//! libFuzzer's coverage feedback comes from LLVM's SanitizerCoverage pass, which stable rustc
//! runs when asked by codegen flags (`-Cpasses=sancov-module` and its `-Cllvm-args`), exactly
//! the flags `cargo fuzz` passes; only the sanitizers themselves (`-Zsanitizer`) need nightly,
//! and they are left out: safe Rust needs no AddressSanitizer to crash loudly, and debug
//! assertions and overflow checks are on. The targets are built for the host triple named
//! explicitly, so the flags reach the targets and not the build scripts and proc macros, in a
//! target directory of their own (`<target>/fuzz`), so they never invalidate the main build.
//!
//! Each target runs on a working corpus in the cache (`$OXLINK_CACHE_DIR/fuzz/corpus/TARGET`,
//! kept between runs) plus the seeds committed in `fuzz/seeds/TARGET`; a crashing input is
//! written to `$OXLINK_CACHE_DIR/fuzz/artifacts/TARGET/` and fails the run.

use crate::{paths, run};
use anyhow::{Context, Result, bail};
use std::{path::PathBuf, process::Command};

#[derive(Debug, clap::Args)]
pub(crate) struct FuzzArgs {
    /// The target to run; every target when left out.
    target: Option<String>,
    /// How long each target runs.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
}

/// How long each target runs in `cargo xtask test`.
pub(crate) const TEST_SECONDS: u64 = 6;

/// The SanitizerCoverage instrumentation libFuzzer feeds on, on stable rustc.
const RUSTFLAGS: &str = "--cfg fuzzing -Cpasses=sancov-module \
    -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares \
    -Cdebug-assertions -Coverflow-checks";

pub(crate) fn run(args: FuzzArgs) -> Result<()> {
    let all = targets()?;
    let chosen = match &args.target {
        Some(name) if all.contains(name) => vec![name.clone()],
        Some(name) => bail!(
            "no fuzz target {name:?}; the targets are {}",
            all.join(", ")
        ),
        None => all,
    };
    build()?;
    run_targets(&chosen, args.seconds)
}

/// Builds every target and runs each for `seconds`; fails naming the targets that crashed.
pub(crate) fn build_and_run_all(seconds: u64) -> Result<()> {
    build()?;
    run_targets(&targets()?, seconds)
}

fn run_targets(targets: &[String], seconds: u64) -> Result<()> {
    let mut crashed = Vec::new();
    for target in targets {
        if let Err(e) = run_one(target, seconds) {
            eprintln!("fuzz target {target}: {e:#}");
            crashed.push(target.as_str());
        }
    }
    if !crashed.is_empty() {
        bail!("fuzz targets failed: {}", crashed.join(", "));
    }
    Ok(())
}

/// The targets, as `fuzz/Cargo.toml` declares them (`[[bin]]` names).
pub(crate) fn targets() -> Result<Vec<String>> {
    let manifest = paths::workspace().join("fuzz/Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let mut in_bin = false;
    let mut names = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin
            && let Some(value) = line.strip_prefix("name").map(str::trim_start)
            && let Some(value) = value.strip_prefix('=')
        {
            names.push(value.trim().trim_matches('"').to_string());
        }
    }
    if names.is_empty() {
        bail!("{} declares no fuzz target", manifest.display());
    }
    Ok(names)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| paths::workspace().join("target"))
        .join("fuzz")
}

fn host() -> Result<String> {
    let out = run::output(Command::new("rustc").arg("-vV"))?;
    out.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_string)
        .context("`rustc -vV` names no host")
}

fn binary(target: &str) -> Result<PathBuf> {
    Ok(target_dir().join(host()?).join("release").join(target))
}

/// Builds every target, instrumented, optimized, with debug assertions.
pub(crate) fn build() -> Result<()> {
    let manifest = paths::workspace().join("fuzz/Cargo.toml");
    run::status(
        run::cargo()
            .args([
                "build",
                "--locked",
                "--release",
                "--bins",
                "--target",
                &host()?,
            ])
            .arg("--manifest-path")
            .arg(&manifest)
            .env("CARGO_TARGET_DIR", target_dir())
            .env(
                "RUSTFLAGS",
                RUSTFLAGS.split_whitespace().collect::<Vec<_>>().join(" "),
            )
            .env_remove("CARGO_ENCODED_RUSTFLAGS"),
    )
}

fn run_one(target: &str, seconds: u64) -> Result<()> {
    let seeds = paths::workspace().join("fuzz/seeds").join(target);
    let work = paths::cache().join("fuzz/corpus").join(target);
    let artifacts = paths::cache().join("fuzz/artifacts").join(target);
    for dir in [&work, &artifacts] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut cmd = Command::new(binary(target)?);
    cmd.arg(format!("-max_total_time={seconds}"))
        .arg("-timeout=20")
        .arg("-rss_limit_mb=2048")
        .arg("-print_final_stats=1")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg(&work);
    if seeds.is_dir() {
        cmd.arg(&seeds);
    }
    run::status(&mut cmd).with_context(|| {
        format!(
            "a crashing input is in {} (run it again: {} INPUT)",
            artifacts.display(),
            binary(target).map_or_else(|_| target.to_string(), |b| b.display().to_string())
        )
    })
}
