//! `routes` rows: every route of the ServiceProfiles of the target's services, then
//! `[DEFAULT]` for requests that matched none, with the per-route metrics.

use crate::{Window, prom::Sample};
use serde::{Deserialize, Serialize};

/// The name of the row of requests that matched no route, as Linkerd prints it.
pub const DEFAULT_ROUTE: &str = "[DEFAULT]";

/// A ServiceProfile's route: the Service it belongs to, and the route's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileRoute {
    pub service: String,
    pub route: String,
}

/// The answers to a [`crate::promql::RouteQueries`].
#[derive(Clone, Debug, Default)]
pub struct Answers {
    pub requests: Vec<Sample>,
    pub latency: [Vec<Sample>; 3],
}

/// The metrics of one route; `None` where nothing was measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RouteStats {
    pub success: Option<f64>,
    pub rps: f64,
    pub latency_ms: [Option<f64>; 3],
}

/// One row of `routes`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub route: String,
    pub service: String,
    pub stats: Option<RouteStats>,
}

/// The Service named by a route metric's `dst` authority: `web.ns.svc.cluster.local:80` → `web`.
pub fn service_of(dst: &str) -> &str {
    let host = dst.rsplit_once(':').map_or(dst, |(h, _)| h);
    if host.parse::<std::net::IpAddr>().is_ok() {
        return host;
    }
    host.split('.').next().unwrap_or(host)
}

fn route_of(s: &Sample) -> &str {
    match s.label("rt_route") {
        "" => DEFAULT_ROUTE,
        r => r,
    }
}

/// The rows: the profiles' routes and `[DEFAULT]` for each of their Services (and for any other
/// Service the answers name), sorted by Service then route, `[DEFAULT]` last.
pub fn rows(profile: &[ProfileRoute], a: &Answers, window: &Window) -> Vec<Row> {
    let mut keys: Vec<(String, String)> = profile
        .iter()
        .map(|p| (p.service.clone(), p.route.clone()))
        .collect();
    for s in &a.requests {
        keys.push((
            service_of(s.label("dst")).to_string(),
            route_of(s).to_string(),
        ));
    }
    let services: Vec<String> = keys.iter().map(|(s, _)| s.clone()).collect();
    for s in services {
        keys.push((s, DEFAULT_ROUTE.to_string()));
    }
    keys.sort_by(|(s1, r1), (s2, r2)| {
        (s1, r1 == DEFAULT_ROUTE, r1).cmp(&(s2, r2 == DEFAULT_ROUTE, r2))
    });
    keys.dedup();
    let secs = window.seconds() as f64;
    keys.into_iter()
        .map(|(service, route)| {
            let mine = |s: &&Sample| route_of(s) == route && service_of(s.label("dst")) == service;
            let (mut ok, mut failed, mut any) = (0.0, 0.0, false);
            for s in a.requests.iter().filter(mine) {
                any = true;
                match s.label("classification") {
                    "success" => ok += s.value,
                    _ => failed += s.value,
                }
            }
            let latency = [0, 1, 2].map(|i| {
                a.latency[i]
                    .iter()
                    .filter(mine)
                    .map(|s| s.value)
                    .reduce(f64::max)
            });
            let stats = any.then(|| RouteStats {
                success: (ok + failed > 0.0).then(|| ok / (ok + failed)),
                rps: (ok + failed) / secs,
                latency_ms: latency,
            });
            Row {
                route,
                service,
                stats,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(route: &str, class: &str, value: f64) -> Sample {
        let mut labels: std::collections::BTreeMap<String, String> = [
            ("dst", "todoui.todo.svc.cluster.local:8090"),
            ("classification", class),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        if !route.is_empty() {
            labels.insert("rt_route".into(), route.into());
        }
        Sample { labels, value }
    }

    #[test]
    fn profile_routes_then_default_with_timeouts_as_failures() {
        let profile = vec![
            ProfileRoute {
                service: "todoui".into(),
                route: "GET /stress".into(),
            },
            ProfileRoute {
                service: "todoui".into(),
                route: "GET /api".into(),
            },
        ];
        let a = Answers {
            requests: vec![
                sample("GET /stress", "failure", 30.0),
                sample("", "success", 570.0),
                sample("", "failure", 30.0),
            ],
            latency: [vec![sample("GET /stress", "", 100.0)], vec![], vec![]],
        };
        let rows = rows(&profile, &a, &Window::default());
        let names: Vec<&str> = rows.iter().map(|r| r.route.as_str()).collect();
        assert_eq!(names, ["GET /api", "GET /stress", "[DEFAULT]"]);
        assert_eq!(rows[0].stats, None);
        let stress = rows[1].stats.clone().unwrap();
        assert_eq!((stress.success, stress.rps), (Some(0.0), 0.5));
        assert_eq!(stress.latency_ms[0], Some(100.0));
        let default = rows[2].stats.clone().unwrap();
        assert_eq!((default.success, default.rps), (Some(0.95), 10.0));
        assert!(rows.iter().all(|r| r.service == "todoui"));
    }

    #[test]
    fn services_come_from_the_authority() {
        assert_eq!(service_of("web.ns.svc.cluster.local:8080"), "web");
        assert_eq!(service_of("web.ns.svc.cluster.local"), "web");
        assert_eq!(service_of("10.244.0.5:8080"), "10.244.0.5");
    }
}
