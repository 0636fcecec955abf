//! Check results and how they are shown: Linkerd's √/×/‼ table, `short`, or JSON.

use serde_json::json;
use std::io::Write;

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
    /// What to do about a failure or warning.
    pub(crate) hint: Option<&'static str>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Success,
    Warning(String),
    Error(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Output {
    Table,
    Short,
    Json,
}

impl Outcome {
    pub(crate) fn new(
        description: &'static str,
        result: Result<(), String>,
        hint: &'static str,
    ) -> Self {
        Self {
            description,
            result: match result {
                Ok(()) => Verdict::Success,
                Err(e) => Verdict::Error(e),
            },
            hint: Some(hint),
        }
    }

    pub(crate) fn warn_only(mut self) -> Self {
        if let Verdict::Error(e) = self.result {
            self.result = Verdict::Warning(e);
        }
        self
    }
}

/// Whether every check passed (warnings pass).
pub(crate) fn success(categories: &[Category]) -> bool {
    categories
        .iter()
        .flat_map(|c| &c.checks)
        .all(|o| !matches!(o.result, Verdict::Error(_)))
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
            .filter(|o| !short || o.result != Verdict::Success)
            .collect();
        if shown.is_empty() {
            continue;
        }
        writeln!(out, "{}", category.name)?;
        writeln!(out, "{}", "-".repeat(category.name.len()))?;
        for o in shown {
            match &o.result {
                Verdict::Success => writeln!(out, "√ {}", o.description)?,
                Verdict::Warning(e) | Verdict::Error(e) => {
                    let mark = if matches!(o.result, Verdict::Warning(_)) {
                        "‼"
                    } else {
                        "×"
                    };
                    writeln!(out, "{mark} {}", o.description)?;
                    for line in e.lines() {
                        writeln!(out, "    {line}")?;
                    }
                    if let Some(hint) = o.hint {
                        writeln!(out, "    hint: {hint}")?;
                    }
                }
            }
        }
        writeln!(out)?;
    }
    let status = if success(categories) { "√" } else { "×" };
    writeln!(out, "Status check results are {status}")
}

fn render_json(categories: &[Category], out: &mut impl Write) -> std::io::Result<()> {
    let ok = success(categories);
    let categories: Vec<_> = categories
        .iter()
        .map(|c| {
            let checks: Vec<_> = c
                .checks
                .iter()
                .map(|o| {
                    let (result, error) = match &o.result {
                        Verdict::Success => ("success", None),
                        Verdict::Warning(e) => ("warning", Some(e)),
                        Verdict::Error(e) => ("error", Some(e)),
                    };
                    let mut check = json!({"description": o.description, "result": result});
                    if let Some(e) = error {
                        check["error"] = json!(e);
                        check["hint"] = json!(o.hint);
                    }
                    check
                })
                .collect();
            json!({"categoryName": c.name, "checks": checks})
        })
        .collect();
    let doc = json!({"success": ok, "categories": categories});
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    writeln!(out)
}
