//! The limit flags, shared by every server binary. Each binary has its own defaults
//! ([`Limits::GRPC`], [`Limits::WEBHOOK`]); a flag that is not given keeps it.

use super::Limits;
use oxlink_crds::duration::parse_duration;
use std::time::Duration;

/// Resource limits of the server's listeners (the admin listener has fixed ones).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct LimitArgs {
    /// Connections served at once per listener; each further one is closed at once, logged and
    /// counted in `server_connections_refused_total{reason="limit"}` [default: 10000; the
    /// proxy-injector: 1000].
    #[arg(long, env = "OXLINK_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: Option<u32>,

    /// HTTP/2 streams a client may open on one connection; more are refused with
    /// REFUSED_STREAM [default: 1000; the proxy-injector: 100].
    #[arg(long, env = "OXLINK_MAX_CONCURRENT_STREAMS", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent_streams: Option<u32>,

    /// The largest request header list accepted, in bytes [default: 16384].
    #[arg(long, env = "OXLINK_MAX_HEADER_LIST_SIZE", value_parser = clap::value_parser!(u32).range(1024..))]
    pub max_header_list_size: Option<u32>,

    /// Time for a client to complete the TLS handshake and then to send the HTTP/2 preface
    /// (HTTP/1: the request head) [default: 10s].
    #[arg(long, env = "OXLINK_HANDSHAKE_TIMEOUT", value_parser = positive_duration)]
    pub handshake_timeout: Option<Duration>,

    /// Time for a client to send a request's body [default: 10s].
    #[arg(long, env = "OXLINK_REQUEST_BODY_TIMEOUT", value_parser = positive_duration)]
    pub request_body_timeout: Option<Duration>,

    /// How often an HTTP/2 PING checks that a client is still there [default: 30s].
    #[arg(long, env = "OXLINK_HTTP2_KEEPALIVE_INTERVAL", value_parser = positive_duration)]
    pub http2_keepalive_interval: Option<Duration>,

    /// How long a client has to answer the PING before its connection is closed [default: 20s].
    #[arg(long, env = "OXLINK_HTTP2_KEEPALIVE_TIMEOUT", value_parser = positive_duration)]
    pub http2_keepalive_timeout: Option<Duration>,

    /// A connection without a request in flight for this long is closed [default: 10m; the
    /// proxy-injector: 90s].
    #[arg(long, env = "OXLINK_IDLE_TIMEOUT", value_parser = positive_duration)]
    pub idle_timeout: Option<Duration>,
}

impl LimitArgs {
    /// `defaults`, with each flag that was given in its place.
    pub fn limits(&self, defaults: Limits) -> Limits {
        let Self {
            max_connections,
            max_concurrent_streams,
            max_header_list_size,
            handshake_timeout,
            request_body_timeout,
            http2_keepalive_interval,
            http2_keepalive_timeout,
            idle_timeout,
        } = self.clone();
        Limits {
            max_connections: max_connections.map_or(defaults.max_connections, |n| n as usize),
            max_concurrent_streams: max_concurrent_streams
                .unwrap_or(defaults.max_concurrent_streams),
            max_header_list_size: max_header_list_size.unwrap_or(defaults.max_header_list_size),
            handshake_timeout: handshake_timeout.unwrap_or(defaults.handshake_timeout),
            request_body_timeout: request_body_timeout.unwrap_or(defaults.request_body_timeout),
            keepalive_interval: http2_keepalive_interval.unwrap_or(defaults.keepalive_interval),
            keepalive_timeout: http2_keepalive_timeout.unwrap_or(defaults.keepalive_timeout),
            idle_timeout: idle_timeout.unwrap_or(defaults.idle_timeout),
        }
    }
}

fn positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err("must be longer than 0s".into()),
        d => Ok(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        limits: LimitArgs,
    }

    fn parse(args: &[&str]) -> Result<Limits, clap::Error> {
        let argv = std::iter::once("server").chain(args.iter().copied());
        Cli::try_parse_from(argv).map(|cli| cli.limits.limits(Limits::WEBHOOK))
    }

    #[test]
    fn flags_override_the_servers_defaults_one_by_one() {
        assert_eq!(parse(&[]).unwrap(), Limits::WEBHOOK);
        let limits = parse(&[
            "--max-concurrent-streams=2000",
            "--http2-keepalive-interval=1m",
            "--idle-timeout",
            "1h30m",
        ])
        .unwrap();
        assert_eq!(
            limits,
            Limits {
                max_concurrent_streams: 2000,
                keepalive_interval: Duration::from_secs(60),
                idle_timeout: Duration::from_secs(5400),
                ..Limits::WEBHOOK
            }
        );
    }

    #[test]
    fn a_zero_or_malformed_limit_is_refused() {
        for bad in [
            "--max-connections=0",
            "--max-concurrent-streams=0",
            "--max-header-list-size=100",
            "--handshake-timeout=0s",
            "--request-body-timeout=soon",
        ] {
            assert!(parse(&[bad]).is_err(), "{bad} was accepted");
        }
    }
}
