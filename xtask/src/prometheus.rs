//! The upstream Prometheus server for the local cluster, built from its Go module
//! (`e2e/prometheus` pins it) and cached like localkube: the pod runtime runs it as the viz
//! extension's `prometheus` pod.
//!
//! Only the Kubernetes service discovery is compiled in (Prometheus' own `remove_all_sd` and
//! `enable_kubernetes_sd` build tags): that is all the viz scrape configuration uses, and it
//! keeps the first build to a few minutes.

use crate::{paths, run};
use anyhow::{Context, Result, bail};
use std::{fs, path::PathBuf, process::Command, time::Instant};

/// Prometheus' build tags: Kubernetes service discovery only.
const TAGS: &str = "remove_all_sd,enable_kubernetes_sd";

/// Builds Prometheus if no binary for the pinned version is cached, and returns its path.
pub(crate) fn build() -> Result<PathBuf> {
    let src = paths::workspace().join("e2e").join("prometheus");
    let version = prometheus_version(&src)?;
    let ldflags = format!(
        "-ldflags=-s -w -X github.com/prometheus/common/version.Version={version} \
         -X github.com/prometheus/common/version.Branch=HEAD"
    );
    let flags = format!("{ldflags} -tags={TAGS}");
    let binary = paths::cache().join("prometheus").join(format!(
        "prometheus-{version}-{:016x}",
        paths::source_hash(&src, &flags)?
    ));
    if binary.exists() {
        return Ok(binary);
    }
    if !run::available("go", "version") {
        bail!("Go is not installed or not on PATH; Prometheus for the local cluster needs Go");
    }
    fs::create_dir_all(binary.parent().expect("cache path has a parent"))?;
    eprintln!("building Prometheus {version} from its Go module (the first build takes minutes)");
    let started = Instant::now();
    let tmp = binary.with_file_name(format!("prometheus-{version}.tmp"));
    run::status(
        Command::new("go")
            .current_dir(&src)
            .env("GOFLAGS", "-buildvcs=false")
            .args([
                "build",
                "-trimpath",
                &ldflags,
                &format!("-tags={TAGS}"),
                "-o",
            ])
            .arg(&tmp)
            .arg("github.com/prometheus/prometheus/cmd/prometheus"),
    )
    .context("building Prometheus (e2e/prometheus)")?;
    fs::rename(&tmp, &binary)?;
    eprintln!(
        "built Prometheus in {:.0}s ({} MiB)",
        started.elapsed().as_secs_f64(),
        fs::metadata(&binary)?.len() >> 20
    );
    Ok(binary)
}

/// The Prometheus release that `e2e/prometheus/go.mod` pins: module `v0.316.0` is 3.16.0.
fn prometheus_version(src: &std::path::Path) -> Result<String> {
    let gomod = fs::read_to_string(src.join("go.mod"))?;
    let module = gomod
        .lines()
        .filter_map(|l| {
            let l = l.trim().trim_start_matches("require ").trim();
            l.strip_prefix("github.com/prometheus/prometheus ")
        })
        .map(|v| v.split_whitespace().next().unwrap_or_default().to_string())
        .find(|v| v.starts_with('v'))
        .context("e2e/prometheus/go.mod does not require github.com/prometheus/prometheus")?;
    release(&module)
        .with_context(|| format!("github.com/prometheus/prometheus {module} is not a 3.x module"))
}

/// `v0.316.0` → `3.16.0`: Prometheus tags its Go module `v0.3MM.P` for release `3.MM.P`.
fn release(module: &str) -> Option<String> {
    let mut parts = module.strip_prefix("v0.")?.split('.');
    let minor: u32 = parts.next()?.parse().ok()?;
    let patch: u32 = parts.next()?.parse().ok()?;
    (300..400)
        .contains(&minor)
        .then(|| format!("3.{}.{patch}", minor - 300))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_versions_name_the_release() {
        assert_eq!(release("v0.316.0").as_deref(), Some("3.16.0"));
        assert_eq!(release("v0.305.1").as_deref(), Some("3.5.1"));
        assert_eq!(release("v0.54.1"), None);
        assert_eq!(release("v2.53.0"), None);
    }

    #[test]
    fn the_pinned_module_is_a_3x_release() {
        let src = paths::workspace().join("e2e").join("prometheus");
        assert!(prometheus_version(&src).unwrap().starts_with("3."));
    }
}
