//! Where things live: the workspace, the local cluster's state, and the cache shared by clones.

use anyhow::{Context, Result};
use std::{
    fs,
    hash::{DefaultHasher, Hash, Hasher},
    path::{Path, PathBuf},
};

/// The workspace root (the parent of `xtask/`).
pub(crate) fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

/// The local cluster's state: etcd data, certificates, logs and the kubeconfig.
pub(crate) fn localkube_dir() -> PathBuf {
    workspace().join("target").join("localkube")
}

/// Where cargo puts the binaries of this workspace's debug build.
pub(crate) fn debug_bin_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    target.join("debug")
}

/// The admin kubeconfig of the local cluster.
pub(crate) fn kubeconfig() -> PathBuf {
    localkube_dir().join("kubeconfig")
}

/// A cache outside the work tree, reused by every clone on this machine: pinned tools and
/// localkube builds. `OXLINK_CACHE_DIR` overrides it.
pub(crate) fn cache() -> PathBuf {
    if let Some(dir) = std::env::var_os("OXLINK_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("oxlink");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".cache").join("oxlink"),
        None => workspace().join("target").join("cache"),
    }
}

/// A hash of a Go module's sources (go.mod, go.sum and the Go files) and build flags, naming its
/// cached build (localkube's, Prometheus').
pub(crate) fn source_hash(src: &Path, ldflags: &str) -> Result<u64> {
    let mut files: Vec<PathBuf> = fs::read_dir(src)
        .with_context(|| format!("reading {}", src.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "go")
                || p.file_name()
                    .is_some_and(|n| n == "go.mod" || n == "go.sum")
        })
        .collect();
    files.sort();
    let mut h = DefaultHasher::new();
    ldflags.hash(&mut h);
    for f in files {
        f.file_name().hash(&mut h);
        fs::read(&f)?.hash(&mut h);
    }
    Ok(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_cache_key_changes_with_the_flags() {
        let src = workspace().join("e2e").join("localkube");
        let a = source_hash(&src, "-ldflags=a").unwrap();
        assert_eq!(a, source_hash(&src, "-ldflags=a").unwrap());
        assert_ne!(a, source_hash(&src, "-ldflags=b").unwrap());
    }
}
