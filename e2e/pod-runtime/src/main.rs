use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    oxlink_pod_runtime::Cli::parse().run().await
}
