//! The metrics API of `oxlink viz`: Linkerd's `stat`, `routes` and `edges` over the metrics that
//! the real proxies export, as scraped by the viz extension's Prometheus (whose relabelling gives
//! every series the pod's `namespace`, `pod`, `deployment`, … labels).
//!
//! The crate is pure: [`resource`] parses Linkerd's resource words (`deploy/web`, `ns`,
//! `svc/backend`); [`promql`] builds the queries Linkerd's metrics API sends for each flag;
//! [`prom`] reads Prometheus' query answers; [`stat`], [`routes`] and [`edges`] turn samples into
//! rows; [`table`] prints them as Linkerd's CLI does (`table`, `wide`, `json`); [`api`] is the
//! metrics API's requests (validated here, once) and JSON answers. [`tap`] is what a tap client
//! asks the tap server and the events it gets back, printed as Linkerd's tap lines; [`top`]
//! aggregates those events into `viz top`'s table. Talking to the cluster and to Prometheus is the
//! metrics API server's business (`oxlink-web`), talking to the proxies the tap server's
//! (`oxlink-tap`).

pub mod api;
pub mod edges;
pub mod prom;
pub mod promql;
pub mod resource;
pub mod routes;
pub mod stat;
pub mod table;
pub mod tap;
pub mod top;

pub use resource::{Kind, Resource, ResourceError};

/// How a command prints its rows: `-o table|wide|json`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Output {
    #[default]
    Table,
    Wide,
    Json,
}

impl std::str::FromStr for Output {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "table" => Ok(Self::Table),
            "wide" => Ok(Self::Wide),
            "json" => Ok(Self::Json),
            other => Err(format!(
                "--output currently only supports table, wide and json, not {other:?}"
            )),
        }
    }
}

/// A Prometheus range (`-t/--time-window`): `1m`, `30s`, `10m`, `1h`; Linkerd's default is `1m`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    text: String,
    seconds: u64,
}

impl Window {
    /// The range as written in PromQL.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Its length, to turn counts into rates.
    pub fn seconds(&self) -> u64 {
        self.seconds
    }
}

impl Default for Window {
    fn default() -> Self {
        Self {
            text: "1m".into(),
            seconds: 60,
        }
    }
}

impl std::str::FromStr for Window {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("invalid time window {s:?}: expected a duration like 30s, 1m or 1h");
        let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (n, unit) = s.split_at(split);
        let n: u64 = n.parse().map_err(|_| bad())?;
        let per = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86400,
            _ => return Err(bad()),
        };
        if n == 0 {
            return Err(format!(
                "invalid time window {s:?}: it must be longer than zero"
            ));
        }
        Ok(Self {
            text: s.to_string(),
            seconds: n * per,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_prometheus_durations() {
        let w: Window = "30s".parse().unwrap();
        assert_eq!((w.as_str(), w.seconds()), ("30s", 30));
        assert_eq!("10m".parse::<Window>().unwrap().seconds(), 600);
        assert_eq!("1h".parse::<Window>().unwrap().seconds(), 3600);
        assert_eq!(Window::default().as_str(), "1m");
        for bad in ["", "m", "10", "1x", "-1m", "0s", "1m30s"] {
            assert!(bad.parse::<Window>().is_err(), "{bad}");
        }
    }

    #[test]
    fn outputs_are_linkerds() {
        assert_eq!("wide".parse::<Output>(), Ok(Output::Wide));
        assert_eq!("json".parse::<Output>(), Ok(Output::Json));
        assert!(
            "yaml"
                .parse::<Output>()
                .unwrap_err()
                .contains("table, wide and json")
        );
    }
}
