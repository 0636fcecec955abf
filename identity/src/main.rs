fn main() -> std::process::ExitCode {
    oxlink_identity::Args::parse_and_run()
}
