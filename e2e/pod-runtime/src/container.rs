//! Starting one container as a process: in the pod's network namespace, in a mount namespace of
//! its own where the pod's volumes appear at their mount paths, as the container's user, with
//! the resolved environment and nothing else.

use anyhow::{Context, Result};
use std::{
    path::{Path, PathBuf},
    process::Stdio,
};
use tokio::process::{Child, Command};

/// A volume directory (or file, for a `subPath`) shown at a path inside the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub source: PathBuf,
    pub target: String,
    pub read_only: bool,
}

/// Everything needed to start a container's process.
#[derive(Clone, Debug)]
pub struct Spec {
    pub netns: String,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub mounts: Vec<Mount>,
    pub uid: Option<i64>,
    pub gid: Option<i64>,
    pub workdir: Option<String>,
    pub log: PathBuf,
}

/// The search path of a container whose env sets none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Starts the process in a process group of its own (so [`signal`] reaches its children too).
pub fn spawn(spec: &Spec) -> Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log)
        .with_context(|| format!("opening {}", spec.log.display()))?;
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &spec.netns, "sh", "-c", &script(spec)])
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .kill_on_drop(true);
    if !spec.env.iter().any(|(k, _)| k == "PATH") {
        cmd.env("PATH", DEFAULT_PATH);
    }
    cmd.spawn()
        .with_context(|| format!("starting {:?}", spec.argv.first()))
}

/// Sends a signal (`TERM`, `KILL`) to a container's process group.
pub async fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args(["-s", sig, "--", &format!("-{pid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
}

/// The shell script run inside the namespaces: mounts, then `exec` of the program as the
/// container's user, so the process holds the PID that was spawned.
pub fn script(spec: &Spec) -> String {
    let mut s = String::from("set -e\n");
    // Parents before children, as container runtimes mount: `/run` before `/run/x`, which
    // would otherwise be hidden. (Volume sources live outside any usual mount path.)
    let mut mounts: Vec<&Mount> = spec.mounts.iter().collect();
    mounts.sort_by_key(|m| Path::new(&m.target).components().count());
    for m in mounts {
        let (src, dst) = (quote(&m.source.display().to_string()), quote(&m.target));
        if m.source.is_dir() {
            s.push_str(&format!("mkdir -p {dst}\n"));
        } else {
            s.push_str(&format!(
                "mkdir -p \"$(dirname {dst})\"; [ -e {dst} ] || touch {dst}\n"
            ));
        }
        s.push_str(&format!("mount --bind {src} {dst}\n"));
        if m.read_only {
            s.push_str(&format!("mount -o remount,bind,ro {dst}\n"));
        }
    }
    if let Some(dir) = &spec.workdir {
        s.push_str(&format!("cd {}\n", quote(dir)));
    }
    s.push_str("exec ");
    if let Some(uid) = spec.uid.filter(|u| *u != 0) {
        let gid = spec.gid.unwrap_or(uid);
        s.push_str(&format!(
            "setpriv --reuid={uid} --regid={gid} --clear-groups -- "
        ));
    }
    let argv: Vec<String> = spec.argv.iter().map(|a| quote(a)).collect();
    s.push_str(&argv.join(" "));
    s.push('\n');
    s
}

/// Single-quotes a word for `sh`.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_mounts_then_execs_as_the_user() {
        let dir = std::env::temp_dir();
        let spec = Spec {
            netns: "oxlp-x".into(),
            argv: vec!["/bin/proxy".into(), "it's".into()],
            env: vec![],
            mounts: vec![Mount {
                source: dir.clone(),
                target: "/var/run/secrets/tokens".into(),
                read_only: true,
            }],
            uid: Some(2102),
            gid: None,
            workdir: None,
            log: dir.join("log"),
        };
        let s = script(&spec);
        assert_eq!(
            s,
            format!(
                "set -e\nmkdir -p '/var/run/secrets/tokens'\nmount --bind '{0}' '/var/run/secrets/tokens'\nmount -o remount,bind,ro '/var/run/secrets/tokens'\nexec setpriv --reuid=2102 --regid=2102 --clear-groups -- '/bin/proxy' 'it'\\''s'\n",
                dir.display()
            )
        );
    }

    #[test]
    fn parent_mounts_come_first() {
        let m = |source: &str, target: &str| Mount {
            source: source.into(),
            target: target.into(),
            read_only: false,
        };
        let spec = Spec {
            netns: "n".into(),
            argv: vec!["/bin/true".into()],
            env: vec![],
            mounts: vec![
                m("/var/lib/pods/p/volumes/token", "/run/secrets/tokens"),
                m("/var/lib/pods/p/volumes/xtables", "/run"),
            ],
            uid: None,
            gid: None,
            workdir: None,
            log: "/dev/null".into(),
        };
        let s = script(&spec);
        let run = s.find("'/run'\n").unwrap();
        let tokens = s.find("'/run/secrets/tokens'\n").unwrap();
        assert!(run < tokens, "{s}");
    }

    #[test]
    fn root_runs_without_setpriv() {
        let spec = Spec {
            netns: "n".into(),
            argv: vec!["/bin/true".into()],
            env: vec![],
            mounts: vec![],
            uid: Some(0),
            gid: None,
            workdir: Some("/tmp".into()),
            log: "/dev/null".into(),
        };
        assert_eq!(script(&spec), "set -e\ncd '/tmp'\nexec '/bin/true'\n");
    }
}
