fn main() -> std::process::ExitCode {
    oxlink_destination::Args::parse_and_run()
}
