//! `cargo xtask`: oxlink's developer tasks. See `cargo xtask --help`.

mod bench;
#[cfg(test)]
mod circles;
mod cluster;
mod codegen;
mod demo;
mod e2e;
mod fuzz;
mod paths;
mod pods;
mod prometheus;
mod run;
mod soak;
mod test;
mod tools;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "oxlink's developer tasks")]
struct Args {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Run a benchmark (optimized build); `cargo xtask bench list` names them.
    Bench(bench::BenchArgs),
    /// Start, stop or inspect the local Kubernetes cluster (e2e/localkube).
    Cluster {
        #[command(subcommand)]
        action: cluster::Action,
    },
    /// Write the generated files (the CRD chart's templates); `--check` only compares.
    Codegen(codegen::CodegenArgs),
    /// Run the pinned Helm with the given arguments, installing it first if needed.
    Helm {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run the pinned kubectl against the local cluster, installing it first if needed.
    Kubectl {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Build the fuzz targets (stable Rust, libFuzzer) and run one or all of them.
    Fuzz(fuzz::FuzzArgs),
    /// Run the e2e suite on the local cluster, or on kind with real images (`--cluster kind`).
    E2e(e2e::E2eArgs),
    /// Run everything CI runs: fmt, clippy, unit tests, and the e2e suite on localkube.
    Test(test::TestArgs),
    /// The todo app and a gRPC pair under steady load through the real proxies while faults
    /// run (controllers killed, the API server restarted, watches closed, issuer and trust
    /// anchor rotated, endpoints churned, pods deleted); a table per fault and one closing line.
    Soak(soak::SoakArgs),
    /// The workshop on a local cluster: control plane installed and running, the todo app
    /// injected, a simulated proxy certified and resolving; torn down on exit or Ctrl-C.
    Demo(demo::DemoArgs),
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let result = match args.task {
        Task::Bench(args) => bench::run(args),
        Task::Cluster { action } => cluster::run(action),
        Task::Codegen(args) => codegen::run(args),
        Task::Helm { args } => tools::exec(tools::Tool::Helm, &args),
        Task::Kubectl { args } => tools::exec(tools::Tool::Kubectl, &args),
        Task::Test(args) => test::run(args),
        Task::E2e(args) => e2e::run(args),
        Task::Fuzz(args) => fuzz::run(args),
        Task::Demo(args) => demo::run(args),
        Task::Soak(args) => soak::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
