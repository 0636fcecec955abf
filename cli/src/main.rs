use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    match oxlink_cli::Cli::parse().run(&mut std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A failed check has said everything already; other errors say what went wrong.
            if !oxlink_cli::is_reported(&e) {
                eprintln!("Error: {}", oxlink_cli::error_chain(&e));
            }
            ExitCode::FAILURE
        }
    }
}
