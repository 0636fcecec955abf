//! `oxlink uninject`: remove what `oxlink inject` (or the webhook) added to manifests.

use crate::inject::{Output, describe, for_each_object, read_input, write_output, write_report};
use anyhow::Result;
use oxlink_inject::workload::uninject_object;
use std::io::{Read, Write};

/// Arguments of `oxlink uninject`.
#[derive(Debug, clap::Args)]
pub(crate) struct UninjectArgs {
    /// A file, a directory (read recursively), an http:// or https:// URL, or `-` for stdin.
    input: String,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Yaml)]
    output: Output,
}

// === impl UninjectArgs ===

impl UninjectArgs {
    pub(crate) fn run(
        self,
        stdin: &mut dyn Read,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> Result<()> {
        let Self { input, output } = self;
        let mut docs = read_input(&input, stdin)?;
        let mut report = Vec::new();
        for doc in &mut docs {
            for_each_object(doc, &mut |obj| {
                let changed = uninject_object(obj);
                let what = describe(obj);
                report.push(if changed {
                    format!("{what} uninjected")
                } else {
                    format!("{what} skipped")
                });
                Ok(())
            })?;
        }
        write_output(&docs, output, out)?;
        write_report(&report, err)
    }
}
