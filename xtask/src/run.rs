//! Running other programs, with the command line echoed and failures named.

use anyhow::{Context, Result, bail};
use std::{fs, process::Command};

/// `cargo`: the one that runs this xtask.
pub(crate) fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Runs `cmd` to completion, inheriting stdio; fails with the command line if it fails.
pub(crate) fn status(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {}", display(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {}", cmd.get_program().to_string_lossy()))?;
    if !status.success() {
        bail!("`{}` failed ({status})", display(cmd));
    }
    Ok(())
}

/// Runs `cmd` and returns its standard output; fails with its standard error if it fails.
pub(crate) fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {}", cmd.get_program().to_string_lossy()))?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}):\n{}",
            display(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A plain HTTP/1.0 request (no body) to `addr`: the status and the body of the response.
pub(crate) fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    timeout: std::time::Duration,
) -> Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n"
    )?;
    let mut text = String::new();
    stream
        .read_to_string(&mut text)
        .with_context(|| format!("{method} {path} on {addr}"))?;
    let status = text
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("{method} {path} on {addr}: not an HTTP response"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_string();
    Ok((status, body))
}

/// Whether `program` can be found and started.
pub(crate) fn available(program: &str, version_arg: &str) -> bool {
    Command::new(program)
        .arg(version_arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

pub(crate) fn display(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The variable naming the file where a test records that it skipped (see [`TestReport`]).
pub(crate) const SKIP_LOG_ENV: &str = "OXLINK_TEST_SKIP_LOG";

/// A test that did not run what it claims: `#[ignore]`d, or skipped at run time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Skip {
    pub(crate) name: String,
    pub(crate) reason: String,
}

/// What `cargo test` reported, summed over every test binary it ran.
///
/// The counts come from libtest's `test result:` lines; the names from its per-test lines
/// (`test NAME ... ok|FAILED|ignored[, REASON]`). libtest has no run-time skip, so a test that
/// finds what it needs missing appends `NAME<TAB>REASON` to the file named by
/// [`SKIP_LOG_ENV`] (the e2e crate's `skip`) and returns; [`TestReport::apply_skip_log`] then
/// moves it from passed to skipped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TestReport {
    pub(crate) passed: u64,
    pub(crate) failed: u64,
    pub(crate) skipped: u64,
    /// The names of the tests that passed (to match skip records against).
    passed_names: Vec<String>,
    pub(crate) failures: Vec<String>,
    pub(crate) skips: Vec<Skip>,
}

impl TestReport {
    /// Takes one line of libtest's output into account.
    pub(crate) fn add_line(&mut self, line: &str) {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("test result: ") {
            for part in rest.split(';') {
                let mut words = part.split_whitespace().rev();
                let (Some(what), Some(n)) = (words.next(), words.next()) else {
                    continue;
                };
                let Ok(n) = n.parse::<u64>() else { continue };
                match what {
                    "passed" => self.passed += n,
                    "failed" => self.failed += n,
                    "ignored" => self.skipped += n,
                    _ => {}
                }
            }
        } else if let Some((name, outcome)) = line
            .strip_prefix("test ")
            .and_then(|rest| rest.rsplit_once(" ... "))
        {
            let name = name.to_string();
            match outcome {
                "ok" => self.passed_names.push(name),
                "FAILED" => self.failures.push(name),
                "ignored" => self.skips.push(Skip {
                    name,
                    reason: "#[ignore]".into(),
                }),
                _ => {
                    if let Some(reason) = outcome.strip_prefix("ignored, ") {
                        self.skips.push(Skip {
                            name,
                            reason: format!("#[ignore = {reason:?}]"),
                        });
                    }
                }
            }
        }
    }

    /// Moves the tests that recorded a skip (lines `NAME<TAB>REASON`) from passed to skipped.
    /// A record for a test that did not pass (it failed after recording) changes nothing.
    pub(crate) fn apply_skip_log(&mut self, log: &str) {
        for line in log.lines().filter(|l| !l.trim().is_empty()) {
            let (name, reason) = line.split_once('\t').unwrap_or((line, "no reason given"));
            let Some(at) = self.passed_names.iter().position(|n| n == name) else {
                continue;
            };
            self.passed_names.remove(at);
            self.passed -= 1;
            self.skipped += 1;
            self.skips.push(Skip {
                name: name.into(),
                reason: reason.into(),
            });
        }
    }

    pub(crate) fn merge(&mut self, other: TestReport) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.skipped += other.skipped;
        self.passed_names.extend(other.passed_names);
        self.failures.extend(other.failures);
        self.skips.extend(other.skips);
    }

    /// The closing line: `N passed, N failed, N skipped`.
    pub(crate) fn counts_line(&self) -> String {
        format!(
            "{} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        )
    }

    /// Names every failed and skipped test (with its reason), then the counts line, on stdout.
    pub(crate) fn print_summary(&self) {
        if !self.failures.is_empty() {
            println!("\nfailed tests:");
            for name in &self.failures {
                println!("  {name}");
            }
        }
        if !self.skips.is_empty() {
            println!("\nskipped tests:");
            for Skip { name, reason } in &self.skips {
                println!("  {name}: {reason}");
            }
        }
        println!("{}", self.counts_line());
    }
}

/// Runs a `cargo test` command with `--no-fail-fast` (placed before any `--`), passing its
/// output through, and adds the tests it ran to `report`, also when some failed. Fails, naming
/// the command and its counts, if the command fails.
pub(crate) fn tests(cmd: &mut Command, report: &mut TestReport) -> Result<()> {
    tests_to(cmd, report, &mut std::io::stdout().lock())
}

/// [`tests`], passing the output through to `out`.
fn tests_to(
    cmd: &mut Command,
    report: &mut TestReport,
    out: &mut dyn std::io::Write,
) -> Result<()> {
    use std::io::{BufRead, BufReader};
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let split = args.iter().position(|a| a == "--").unwrap_or(args.len());
    let mut with_flag = Command::new(cmd.get_program());
    with_flag
        .args(&args[..split])
        .arg("--no-fail-fast")
        .args(&args[split..]);
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => with_flag.env(key, value),
            None => with_flag.env_remove(key),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        with_flag.current_dir(dir);
    }
    let cmd = &mut with_flag;
    static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let skip_log = std::env::temp_dir().join(format!(
        "oxlink-test-skips-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::write(&skip_log, "").context("creating the skip log")?;
    cmd.env(SKIP_LOG_ENV, &skip_log);
    eprintln!("$ {}", display(cmd));
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", cmd.get_program().to_string_lossy()))?;
    let mut this = TestReport::default();
    let stdout = child.stdout.take().context("the child's stdout is piped")?;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        this.add_line(&line);
        writeln!(out, "{line}")?;
    }
    let status = child.wait()?;
    let log = std::fs::read_to_string(&skip_log).context("reading the skip log")?;
    let _ = std::fs::remove_file(&skip_log);
    this.apply_skip_log(&log);
    let counts = this.counts_line();
    report.merge(this);
    if !status.success() {
        bail!("`{}` failed ({status}): {counts}", display(cmd));
    }
    Ok(())
}

/// Whether process `pid` is running.
pub(crate) fn alive(pid: u32) -> bool {
    // A zombie (exited, not yet reaped) counts as gone.
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Sends `sig` (`TERM`, `KILL`) to process `pid`, ignoring failure.
pub(crate) fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(lines: &str) -> TestReport {
        let mut r = TestReport::default();
        for line in lines.lines() {
            r.add_line(line);
        }
        r
    }

    #[test]
    fn counts_sum_over_result_lines() {
        let r = report(
            "running 4 tests\n\
             test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s\n\
             test result: FAILED. 1 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out\n",
        );
        assert_eq!((r.passed, r.failed, r.skipped), (4, 2, 1));
        assert_eq!(r.counts_line(), "4 passed, 2 failed, 1 skipped");
    }

    #[test]
    fn names_failed_and_ignored_tests_with_their_reasons() {
        let r = report(
            "test a::one ... ok\n\
             test a::two ... FAILED\n\
             test b ... ignored\n\
             test c ... ignored, needs a GPU\n\
             test src/lib.rs - f (line 3) ... ignored\n\
             test d ... ok\n",
        );
        assert_eq!(r.failures, ["a::two"]);
        let skips: Vec<_> = r.skips.iter().map(|s| (&*s.name, &*s.reason)).collect();
        assert_eq!(
            skips,
            [
                ("b", "#[ignore]"),
                ("c", "#[ignore = \"needs a GPU\"]"),
                ("src/lib.rs - f (line 3)", "#[ignore]")
            ]
        );
    }

    #[test]
    fn a_recorded_skip_moves_a_passed_test_to_skipped() {
        let mut r = report(
            "test restart ... ok\n\
             test other ... ok\n\
             test broken ... FAILED\n\
             test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out\n",
        );
        r.apply_skip_log("restart\tno hook\nbroken\tskipped, then failed\n\n");
        assert_eq!(r.counts_line(), "1 passed, 1 failed, 1 skipped");
        assert_eq!(
            r.skips,
            [Skip {
                name: "restart".into(),
                reason: "no hook".into()
            }]
        );
        // A second record for the same test does not count it twice.
        r.apply_skip_log("restart\tagain\n");
        assert_eq!(r.counts_line(), "1 passed, 1 failed, 1 skipped");
    }

    #[test]
    fn no_fail_fast_goes_before_the_test_binaries_arguments() {
        let mut report = TestReport::default();
        let mut cmd = Command::new("false");
        cmd.args(["test", "--", "--exact"]);
        let mut out = Vec::new();
        let err = tests_to(&mut cmd, &mut report, &mut out)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("`false test --no-fail-fast -- --exact` failed"),
            "{err}"
        );
        assert!(err.ends_with(": 0 passed, 0 failed, 0 skipped"), "{err}");
    }

    #[test]
    fn a_test_binary_records_its_skip_through_the_environment() {
        // Stands in for `cargo test`: one test passes, one records a skip and passes, one fails.
        let script = format!(
            "echo 'test a ... ok'; echo 'test restart ... ok'; echo 'test c ... FAILED'; \
             printf 'restart\\tthe hook is absent\\n' >> \"${SKIP_LOG_ENV}\"; \
             echo 'test result: FAILED. 2 passed; 1 failed; 0 ignored'; exit 101"
        );
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &script, "sh"]);
        let mut report = TestReport::default();
        let mut out = Vec::new();
        let err = tests_to(&mut cmd, &mut report, &mut out)
            .unwrap_err()
            .to_string();
        assert!(err.ends_with(": 1 passed, 1 failed, 1 skipped"), "{err}");
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("test c ... FAILED\n"), "passed through: {out}");
        assert_eq!(report.failures, ["c"]);
        assert_eq!(
            report.skips,
            [Skip {
                name: "restart".into(),
                reason: "the hook is absent".into()
            }]
        );
    }

    #[test]
    fn merging_sums_counts_and_names() {
        let mut r =
            report("test x ... FAILED\ntest result: FAILED. 0 passed; 1 failed; 0 ignored\n");
        r.merge(report(
            "test y ... ignored\ntest result: ok. 2 passed; 0 failed; 1 ignored\n",
        ));
        assert_eq!(r.counts_line(), "2 passed, 1 failed, 1 skipped");
        assert_eq!(r.failures, ["x"]);
        assert_eq!(r.skips.len(), 1);
    }
}
