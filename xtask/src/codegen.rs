//! `cargo xtask codegen`: writes the generated files; `--check` fails when they are stale.
//!
//! Today that is the `oxlink-crds` chart's templates, one file per CRD, rendered by
//! `oxlink_crds::install::chart_templates` from the types in `crds/`.

use crate::paths;
use anyhow::{Context, Result, bail};
use oxlink_crds::install::{CHART_TEMPLATES_DIR, GENERATED_HEADER, chart_templates};
use std::{collections::BTreeMap, fs, path::Path};

#[derive(Debug, clap::Args)]
pub(crate) struct CodegenArgs {
    /// Change nothing; fail if a generated file is missing, stale or left over.
    #[arg(long)]
    check: bool,
}

pub(crate) fn run(args: CodegenArgs) -> Result<()> {
    if args.check { check() } else { write() }
}

/// Fails, naming every file, when the checked-in templates differ from what the types generate.
pub(crate) fn check() -> Result<()> {
    let dir = paths::workspace().join(CHART_TEMPLATES_DIR);
    let want: BTreeMap<String, String> = chart_templates().into_iter().collect();
    let have = generated_files(&dir)?;
    let mut problems = Vec::new();
    for (name, contents) in &want {
        match have.get(name) {
            None => problems.push(format!("{CHART_TEMPLATES_DIR}/{name} is missing")),
            Some(old) if old != contents => {
                problems.push(format!("{CHART_TEMPLATES_DIR}/{name} is out of date"))
            }
            Some(_) => {}
        }
    }
    for name in have.keys().filter(|name| !want.contains_key(*name)) {
        problems.push(format!(
            "{CHART_TEMPLATES_DIR}/{name} is generated but no CRD produces it"
        ));
    }
    if !problems.is_empty() {
        bail!(
            "generated files differ from the crds crate:\n  {}\nrun `cargo xtask codegen` and commit the result",
            problems.join("\n  ")
        );
    }
    eprintln!(
        "{} generated files in {CHART_TEMPLATES_DIR} are up to date",
        want.len()
    );
    Ok(())
}

fn write() -> Result<()> {
    let dir = paths::workspace().join(CHART_TEMPLATES_DIR);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let want: BTreeMap<String, String> = chart_templates().into_iter().collect();
    for name in generated_files(&dir)?
        .keys()
        .filter(|name| !want.contains_key(*name))
    {
        let path = dir.join(name);
        fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        eprintln!("removed {CHART_TEMPLATES_DIR}/{name}");
    }
    for (name, contents) in &want {
        let path = dir.join(name);
        if fs::read_to_string(&path).ok().as_deref() != Some(contents) {
            fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {CHART_TEMPLATES_DIR}/{name}");
        }
    }
    Ok(())
}

/// The files in `dir` that codegen wrote (they start with the generated header), by name.
fn generated_files(dir: &Path) -> Result<BTreeMap<String, String>> {
    let mut files = BTreeMap::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    for entry in entries {
        let path = entry?.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        if !name.ends_with(".yaml") {
            continue;
        }
        let contents =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        if contents.starts_with(GENERATED_HEADER) {
            files.insert(name, contents);
        }
    }
    Ok(files)
}
