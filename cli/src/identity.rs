//! `oxlink identity`: mint the mesh's trust anchor and issuer, and inspect certificate chains.
//!
//! `generate` writes what `oxlink install --identity-*-file` and the `linkerd-identity-issuer`
//! Secret take: `ca.crt` (the trust anchor), `ca.key`, `issuer.crt` and `issuer.key`, ECDSA
//! P-256 as the proxy requires. `inspect` prints each certificate of a PEM chain and, given a
//! bundle, whether the chain verifies to it.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use oxlink_crds::duration::parse_duration;
use oxlink_tls::{
    generate::{self, DEFAULT_ANCHOR_NAME, DEFAULT_ISSUER_NAME},
    utc_rfc3339,
};
use std::{
    io::Write,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

#[derive(Debug, Subcommand)]
pub(crate) enum IdentityCommand {
    /// Generate a trust anchor and an issuer signed by it, as PEM files.
    Generate(GenerateArgs),
    /// Describe a PEM certificate chain and check it against a trust bundle.
    Inspect(InspectArgs),
    /// Replace the mesh's trust anchor, restarting the meshed workloads in batches; resumes an
    /// interrupted rotation.
    RotateAnchor(Box<rotate::RotateArgs>),
}

#[derive(Debug, Args)]
pub(crate) struct GenerateArgs {
    /// Directory to write ca.crt, ca.key, issuer.crt and issuer.key into.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Common name of the trust anchor.
    #[arg(long, default_value = DEFAULT_ANCHOR_NAME)]
    anchor_common_name: String,
    /// Common name of the issuer.
    #[arg(long, default_value = DEFAULT_ISSUER_NAME)]
    issuer_common_name: String,
    /// How long the trust anchor is valid (Go duration; 87600h is ten years).
    #[arg(long, default_value = "87600h", value_parser = parse_duration)]
    anchor_lifetime: Duration,
    /// How long the issuer is valid (Go duration; 8760h is one year).
    #[arg(long, default_value = "8760h", value_parser = parse_duration)]
    issuer_lifetime: Duration,
    /// Sign the issuer with the trust anchor in this directory (its ca.crt and ca.key) instead
    /// of generating an anchor; only issuer.crt and issuer.key are written (an issuer rotation).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["anchor_common_name", "anchor_lifetime"])]
    anchor_dir: Option<PathBuf>,
    /// Replace files that already exist.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// PEM file with the certificate chain, leaf or issuer first.
    chain: PathBuf,
    /// PEM trust bundle to verify the chain against.
    #[arg(long)]
    bundle: Option<PathBuf>,
}

pub(crate) fn run(
    cmd: IdentityCommand,
    cluster: &crate::client::ClusterArgs,
    out: &mut impl Write,
) -> Result<()> {
    match cmd {
        IdentityCommand::Generate(args) => generate(args, SystemTime::now(), out),
        IdentityCommand::Inspect(args) => inspect(args, SystemTime::now(), out),
        IdentityCommand::RotateAnchor(args) => rotate::run(*args, cluster, out),
    }
}

const FILES: [&str; 4] = ["ca.crt", "ca.key", "issuer.crt", "issuer.key"];

fn generate(args: GenerateArgs, now: SystemTime, out: &mut impl Write) -> Result<()> {
    if let Some(anchor_dir) = &args.anchor_dir {
        return generate_issuer(&args, anchor_dir, now, out);
    }
    if args.issuer_lifetime > args.anchor_lifetime {
        bail!(
            "the issuer would outlive its trust anchor ({} > {}); shorten --issuer-lifetime",
            humanize(args.issuer_lifetime),
            humanize(args.anchor_lifetime)
        );
    }
    if !args.force {
        refuse_overwrite(&args.dir).map_err(|e| anyhow::anyhow!("{e} (use --force to replace)"))?;
    }
    let anchor = generate::trust_anchor(&args.anchor_common_name, args.anchor_lifetime, now)
        .context("generating the trust anchor")?;
    let issuer = generate::issuer(&anchor, &args.issuer_common_name, args.issuer_lifetime, now)
        .context("generating the issuer")?;
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    write(&args.dir, "ca.crt", &anchor.crt_pem, false)?;
    write(&args.dir, "ca.key", &anchor.key_pem, true)?;
    write(&args.dir, "issuer.crt", &issuer.crt_pem, false)?;
    write(&args.dir, "issuer.key", &issuer.key_pem, true)?;
    writeln!(
        out,
        "trust anchor {:?} valid for {}: {}",
        args.anchor_common_name,
        humanize(args.anchor_lifetime),
        args.dir.join("ca.crt").display()
    )?;
    writeln!(
        out,
        "issuer {:?} valid for {}: {}",
        args.issuer_common_name,
        humanize(args.issuer_lifetime),
        args.dir.join("issuer.crt").display()
    )?;
    writeln!(
        out,
        "keep ca.key offline; the control plane needs only ca.crt, issuer.crt and issuer.key"
    )?;
    Ok(())
}

/// `generate --anchor-dir`: a new issuer signed by an existing trust anchor.
fn generate_issuer(
    args: &GenerateArgs,
    anchor_dir: &Path,
    now: SystemTime,
    out: &mut impl Write,
) -> Result<()> {
    let read = |name: &str| {
        let path = anchor_dir.join(name);
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    };
    let anchor = generate::GeneratedCa {
        crt_pem: read("ca.crt")?,
        key_pem: read("ca.key")?,
    };
    if !args.force {
        refuse_overwrite_of(&args.dir, &FILES[2..])
            .map_err(|e| anyhow::anyhow!("{e} (use --force to replace)"))?;
    }
    let issuer = generate::issuer(&anchor, &args.issuer_common_name, args.issuer_lifetime, now)
        .with_context(|| {
            format!(
                "signing an issuer with the trust anchor in {}",
                anchor_dir.display()
            )
        })?;
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    write(&args.dir, "issuer.crt", &issuer.crt_pem, false)?;
    write(&args.dir, "issuer.key", &issuer.key_pem, true)?;
    writeln!(
        out,
        "issuer {:?} valid for {}, signed by the trust anchor {}: {}",
        args.issuer_common_name,
        humanize(args.issuer_lifetime),
        anchor_dir.join("ca.crt").display(),
        args.dir.join("issuer.crt").display()
    )?;
    Ok(())
}

/// Fails when any of the four files already exists in `dir`.
fn refuse_overwrite(dir: &Path) -> Result<()> {
    refuse_overwrite_of(dir, &FILES)
}

/// Fails when any of `files` already exists in `dir`.
fn refuse_overwrite_of(dir: &Path, files: &[&str]) -> Result<()> {
    let existing: Vec<String> = files
        .iter()
        .map(|f| dir.join(f))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !existing.is_empty() {
        bail!("refusing to overwrite {}", existing.join(", "));
    }
    Ok(())
}

fn write(dir: &Path, name: &str, contents: &str, secret: bool) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(name);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

fn inspect(args: InspectArgs, now: SystemTime, out: &mut impl Write) -> Result<()> {
    let chain =
        std::fs::read(&args.chain).with_context(|| format!("reading {}", args.chain.display()))?;
    let bundle = match &args.bundle {
        Some(path) => {
            Some(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?)
        }
        None => None,
    };
    let inspection = generate::inspect(&chain, bundle.as_deref(), now)
        .with_context(|| format!("{} is not a PEM certificate chain", args.chain.display()))?;
    for (i, cert) in inspection.certificates.iter().enumerate() {
        writeln!(out, "certificate {i}:")?;
        writeln!(out, "  subject:   {}", cert.subject)?;
        writeln!(out, "  issuer:    {}", cert.issuer)?;
        if !cert.dns_names.is_empty() {
            writeln!(out, "  dns names: {}", cert.dns_names.join(", "))?;
        }
        writeln!(
            out,
            "  CA:        {}",
            if cert.is_ca { "yes" } else { "no" }
        )?;
        writeln!(
            out,
            "  valid:     {} to {}",
            utc_rfc3339(cert.not_before),
            utc_rfc3339(cert.not_after)
        )?;
        match cert.not_after.duration_since(now) {
            Ok(left) => writeln!(out, "  expires in {}", humanize(left))?,
            Err(_) => writeln!(out, "  EXPIRED")?,
        }
    }
    match inspection.verified {
        None => Ok(()),
        Some(Ok(())) => {
            writeln!(out, "√ the chain verifies to the bundle")?;
            Ok(())
        }
        Some(Err(e)) => {
            writeln!(out, "× the chain does not verify to the bundle: {e}")?;
            bail!("{} does not verify to the bundle", args.chain.display())
        }
    }
}

/// `8760h` → `365d`, `36h` → `1d12h`, `90s` → `1m30s`.
fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, mins, secs) = (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
    let mut out = String::new();
    for (n, unit) in [(days, "d"), (hours, "h"), (mins, "m"), (secs, "s")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    if out.is_empty() { "0s".into() } else { out }
}

pub(crate) mod rotate;

#[cfg(test)]
mod tests;
