//! The logging flags every binary takes, and the subscriber they set up.

use std::io::IsTerminal;

/// `--log-level` and `--log-format`, flattened into each binary's arguments.
#[derive(Clone, Debug, clap::Args)]
pub struct LogArgs {
    /// Log filter (tracing `EnvFilter` syntax, e.g. `info` or `oxlink_destination=debug,info`).
    #[arg(long, env = "OXLINK_LOG", default_value = "info")]
    pub log_level: String,

    /// Log format.
    #[arg(long, env = "OXLINK_LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain)]
    pub log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Plain,
    Json,
}

impl LogArgs {
    /// Installs the global subscriber. Colours only when stderr is a terminal.
    pub fn init(&self) -> Result<(), tracing_subscriber::filter::ParseError> {
        let filter = tracing_subscriber::EnvFilter::try_new(&self.log_level)?;
        let logs = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr);
        match self.log_format {
            LogFormat::Plain => logs.with_ansi(std::io::stderr().is_terminal()).init(),
            LogFormat::Json => logs.json().init(),
        }
        Ok(())
    }
}
