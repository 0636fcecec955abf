fn main() -> std::process::ExitCode {
    oxlink_tap::Args::parse_and_run()
}
