fn main() -> std::process::ExitCode {
    oxlink_web::Args::parse_and_run()
}
