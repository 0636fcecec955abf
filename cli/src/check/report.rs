//! Check results and how they are shown: Linkerd's √/×/‼ table, `short`, or JSON.

use serde_json::json;
use std::io::Write;

/// Every hint points into Linkerd's troubleshooting page, at the same anchor as `linkerd check`.
pub(crate) const HINT_BASE_URL: &str = "https://linkerd.io/2/checks/#";

/// One category of checks, in the order they ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Category {
    pub(crate) name: &'static str,
    pub(crate) checks: Vec<Outcome>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) description: &'static str,
    pub(crate) result: Verdict,
    /// The anchor of the check's section on Linkerd's checks page.
    pub(crate) anchor: &'static str,
    /// A failure stops every later check, as in Linkerd (later ones cannot succeed).
    pub(crate) fatal: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Success,
    Warning(String),
    Error(String),
    /// The check does not apply here; like Linkerd, it is not shown.
    Skipped(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Output {
    Table,
    Short,
    Json,
}

// === impl Category ===

impl Category {
    pub(crate) fn new(name: &'static str, checks: Vec<Outcome>) -> Self {
        Self { name, checks }
    }

    /// Drops the checks after the first failed fatal one; returns whether there was one.
    pub(crate) fn stop_at_fatal(&mut self) -> bool {
        match self
            .checks
            .iter()
            .position(|o| o.fatal && matches!(o.result, Verdict::Error(_)))
        {
            Some(at) => {
                self.checks.truncate(at + 1);
                true
            }
            None => false,
        }
    }
}

// === impl Outcome ===

impl Outcome {
    pub(crate) fn new(
        description: &'static str,
        anchor: &'static str,
        result: Result<(), String>,
    ) -> Self {
        Self {
            description,
            result: match result {
                Ok(()) => Verdict::Success,
                Err(e) => Verdict::Error(e),
            },
            anchor,
            fatal: false,
        }
    }

    /// A check that does not apply, for `reason`.
    pub(crate) fn skipped(description: &'static str, anchor: &'static str, reason: &str) -> Self {
        Self {
            description,
            result: Verdict::Skipped(reason.into()),
            anchor,
            fatal: false,
        }
    }

    /// A check whose failure is reported but does not fail the run.
    pub(crate) fn warn_only(mut self) -> Self {
        if let Verdict::Error(e) = self.result {
            self.result = Verdict::Warning(e);
        }
        self
    }

    /// A check whose failure stops the checks after it.
    pub(crate) fn fatal(mut self) -> Self {
        self.fatal = true;
        self
    }

    pub(crate) fn hint_url(&self) -> String {
        format!("{HINT_BASE_URL}{}", self.anchor)
    }
}

/// Whether every check passed (warnings pass).
pub(crate) fn success(categories: &[Category]) -> bool {
    categories
        .iter()
        .flat_map(|c| &c.checks)
        .all(|o| !matches!(o.result, Verdict::Error(_)))
}

fn warning(categories: &[Category]) -> bool {
    categories
        .iter()
        .flat_map(|c| &c.checks)
        .any(|o| matches!(o.result, Verdict::Warning(_)))
}

pub(crate) fn render(
    categories: &[Category],
    output: Output,
    out: &mut impl Write,
) -> std::io::Result<()> {
    match output {
        Output::Json => render_json(categories, out),
        Output::Table => render_table(categories, false, out),
        Output::Short => render_table(categories, true, out),
    }
}

fn render_table(categories: &[Category], short: bool, out: &mut impl Write) -> std::io::Result<()> {
    for category in categories {
        let shown: Vec<&Outcome> = category
            .checks
            .iter()
            .filter(|o| match o.result {
                Verdict::Skipped(_) => false,
                Verdict::Success => !short,
                _ => true,
            })
            .collect();
        if shown.is_empty() {
            continue;
        }
        writeln!(out, "{}", category.name)?;
        writeln!(out, "{}", "-".repeat(category.name.chars().count()))?;
        for o in shown {
            match &o.result {
                Verdict::Success | Verdict::Skipped(_) => writeln!(out, "√ {}", o.description)?,
                Verdict::Warning(e) | Verdict::Error(e) => {
                    let mark = if matches!(o.result, Verdict::Warning(_)) {
                        "‼"
                    } else {
                        "×"
                    };
                    writeln!(out, "{mark} {}", o.description)?;
                    writeln!(out, "    {e}")?;
                    writeln!(out, "    see {} for hints", o.hint_url())?;
                }
            }
        }
        writeln!(out)?;
    }
    let status = if success(categories) { "√" } else { "×" };
    writeln!(out, "Status check results are {status}")
}

fn render_json(categories: &[Category], out: &mut impl Write) -> std::io::Result<()> {
    let shown: Vec<_> = categories
        .iter()
        .filter_map(|c| {
            let checks: Vec<_> = c
                .checks
                .iter()
                .filter_map(|o| {
                    let (result, error) = match &o.result {
                        Verdict::Skipped(_) => return None,
                        Verdict::Success => ("success", None),
                        Verdict::Warning(e) => ("warning", Some(e)),
                        Verdict::Error(e) => ("error", Some(e)),
                    };
                    let mut check = json!({"description": o.description, "result": result});
                    if let Some(e) = error {
                        check["error"] = json!(e);
                        check["hint"] = json!(o.hint_url());
                    }
                    Some(check)
                })
                .collect();
            (!checks.is_empty()).then(|| json!({"categoryName": c.name, "checks": checks}))
        })
        .collect();
    let doc = json!({
        "success": success(categories),
        "warning": warning(categories),
        "categories": shown,
    });
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    writeln!(out)
}
