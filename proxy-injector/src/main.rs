fn main() -> std::process::ExitCode {
    oxlink_proxy_injector::Args::parse_and_run()
}
