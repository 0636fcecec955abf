use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    oxlink_testapp::Cli::parse().run().await
}
