use clap::Parser;

fn main() -> anyhow::Result<()> {
    oxlink_cli::Cli::parse().run(&mut std::io::stdout().lock())
}
