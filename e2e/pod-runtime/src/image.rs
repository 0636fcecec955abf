//! What a container's image runs on localkube's nodes: the real proxy and proxy-init, our
//! controllers, the upstream Prometheus server, or our test app in the role of a known
//! application image.

use k8s_openapi::api::core::v1::Container;

/// The program a container runs, chosen by its image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Program {
    /// The proxy image's entrypoint: write the identity key and CSR, then run linkerd2-proxy.
    Proxy,
    /// linkerd2-proxy-init with the container's own args (`linkerd-init`).
    ProxyInit,
    /// One of our controller binaries, named by the container's command.
    Controller(String),
    /// The upstream Prometheus server (built from its Go module) with the container's args.
    Prometheus,
    /// Our test app; the args it is started with.
    TestApp(Vec<String>),
}

/// Image names the runtime knows, beyond the fixed application images.
#[derive(Clone, Debug)]
pub struct Images {
    /// Repositories of the Linkerd proxy image (which also holds linkerd2-proxy-init).
    pub proxy: Vec<String>,
    /// Repositories of the legacy proxy-init image.
    pub proxy_init: Vec<String>,
    /// Repositories of oxlink's controller image.
    pub controller: Vec<String>,
    /// Repositories of Prometheus' image (the viz extension's `prometheus` pod).
    pub prometheus: Vec<String>,
}

/// The controller binaries the controller image holds.
pub const CONTROLLERS: [&str; 5] = [
    "oxlink-identity",
    "oxlink-destination",
    "oxlink-proxy-injector",
    "oxlink-tap",
    "oxlink-web",
];

/// The name of the Prometheus server binary among the programs pods run.
pub const PROMETHEUS: &str = "prometheus";

/// The repository our own test app is published under.
pub const TEST_APP_IMAGE: &str = "oxlink/testapp";

/// The path of linkerd2-proxy-init inside the proxy image.
const PROXY_INIT_PATH: &str = "/usr/lib/linkerd/linkerd2-proxy-init";

/// Application images of the workshop played by a role of the test app.
const ROLES: [(&str, &str); 3] = [
    ("containerexerciseapp-todobackend", "todobackend"),
    ("containerexerciseapp-todoui", "todoui"),
    ("postgres", "postgres"),
];

impl Default for Images {
    fn default() -> Self {
        Self {
            proxy: vec!["cr.l5d.io/linkerd/proxy".into()],
            proxy_init: vec!["cr.l5d.io/linkerd/proxy-init".into()],
            controller: vec!["oxlink".into(), "ghcr.io/oxlink/oxlink".into()],
            prometheus: vec![
                "prom/prometheus".into(),
                "docker.io/prom/prometheus".into(),
                "quay.io/prometheus/prometheus".into(),
            ],
        }
    }
}

impl Images {
    /// The program for a container, or why its image is not run.
    pub fn program(&self, c: &Container) -> Result<Program, String> {
        let image = c.image.as_deref().unwrap_or_default();
        let repo = repository(image);
        let command = c.command.clone().unwrap_or_default();
        let args = c.args.clone().unwrap_or_default();
        if self.proxy.iter().any(|r| r == repo) {
            return Ok(match command.first().map(String::as_str) {
                Some(PROXY_INIT_PATH) => Program::ProxyInit,
                None => Program::Proxy,
                Some(other) => return Err(format!("the proxy image has no program {other}")),
            });
        }
        if self.proxy_init.iter().any(|r| r == repo) {
            return Ok(Program::ProxyInit);
        }
        if self.controller.iter().any(|r| r == repo) {
            let bin = command
                .first()
                .map(|c| c.rsplit('/').next().unwrap_or(c).to_string())
                .unwrap_or_else(|| CONTROLLERS[0].to_string());
            return match CONTROLLERS.contains(&bin.as_str()) {
                true => Ok(Program::Controller(bin)),
                false => Err(format!("the controller image has no program {bin}")),
            };
        }
        if self.prometheus.iter().any(|r| r == repo) {
            return match command.first() {
                None => Ok(Program::Prometheus),
                Some(other) => Err(format!("the Prometheus image has no program {other}")),
            };
        }
        if repo == TEST_APP_IMAGE || repo.ends_with(&format!("/{TEST_APP_IMAGE}")) {
            return Ok(Program::TestApp(command.into_iter().chain(args).collect()));
        }
        let name = repo.rsplit('/').next().unwrap_or(repo);
        for (suffix, role) in ROLES {
            if name == suffix || name.ends_with(&format!("-{suffix}")) {
                return Ok(Program::TestApp(vec![role.to_string()]));
            }
        }
        Err(format!("no program for image {image:?}"))
    }
}

/// An image reference without its tag or digest: `cr.l5d.io/linkerd/proxy:v1` → `cr.l5d.io/linkerd/proxy`.
pub fn repository(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or(image);
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].find(':') {
        Some(colon) => &image[..last_slash + colon],
        None => image,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(image: &str, command: &[&str], args: &[&str]) -> Container {
        Container {
            name: "c".into(),
            image: Some(image.into()),
            command: (!command.is_empty()).then(|| command.iter().map(|s| s.to_string()).collect()),
            args: (!args.is_empty()).then(|| args.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn repositories_drop_tags_and_digests_but_keep_registry_ports() {
        assert_eq!(
            repository("cr.l5d.io/linkerd/proxy:edge-26.8.1"),
            "cr.l5d.io/linkerd/proxy"
        );
        assert_eq!(
            repository("localhost:5000/oxlink:0.1.0"),
            "localhost:5000/oxlink"
        );
        assert_eq!(repository("oxlink@sha256:abcd"), "oxlink");
        assert_eq!(repository("postgres"), "postgres");
    }

    #[test]
    fn the_proxy_image_runs_the_proxy_or_proxy_init_by_command() {
        let images = Images::default();
        let proxy = container("cr.l5d.io/linkerd/proxy:edge-26.8.1", &[], &[]);
        assert_eq!(images.program(&proxy), Ok(Program::Proxy));
        let init = container(
            "cr.l5d.io/linkerd/proxy:edge-26.8.1",
            &["/usr/lib/linkerd/linkerd2-proxy-init"],
            &["--ipv6=false"],
        );
        assert_eq!(images.program(&init), Ok(Program::ProxyInit));
        let other = container("cr.l5d.io/linkerd/proxy:x", &["/bin/sh"], &[]);
        assert!(images.program(&other).unwrap_err().contains("/bin/sh"));
    }

    #[test]
    fn controllers_are_named_by_their_command() {
        let images = Images::default();
        let c = container("oxlink:0.1.0", &["/oxlink-destination"], &["--x"]);
        assert_eq!(
            images.program(&c),
            Ok(Program::Controller("oxlink-destination".into()))
        );
        let bad = container("oxlink:0.1.0", &["/bin/bash"], &[]);
        assert!(images.program(&bad).is_err());
    }

    #[test]
    fn prometheus_images_run_the_prometheus_server_with_their_args() {
        let images = Images::default();
        for image in [
            "prom/prometheus:v3.16.0",
            "docker.io/prom/prometheus:v2.55.1",
        ] {
            let c = container(
                image,
                &[],
                &["--config.file=/etc/prometheus/prometheus.yml"],
            );
            assert_eq!(images.program(&c), Ok(Program::Prometheus), "{image}");
        }
        let shell = container("prom/prometheus:v3.16.0", &["/bin/sh"], &[]);
        assert_eq!(
            images.program(&shell),
            Err("the Prometheus image has no program /bin/sh".into())
        );
    }

    #[test]
    fn workshop_images_play_roles_and_our_image_takes_its_args() {
        let images = Images::default();
        let ui = container(
            "docker.io/novatec/technologyconsulting-containerexerciseapp-todoui:v0.1",
            &[],
            &[],
        );
        assert_eq!(
            images.program(&ui),
            Ok(Program::TestApp(vec!["todoui".into()]))
        );
        let pg = container("docker.io/library/postgres:16-alpine", &[], &[]);
        assert_eq!(
            images.program(&pg),
            Ok(Program::TestApp(vec!["postgres".into()]))
        );
        let app = container("oxlink/testapp:latest", &[], &["serve", "--http", "8080"]);
        assert_eq!(
            images.program(&app),
            Ok(Program::TestApp(vec![
                "serve".into(),
                "--http".into(),
                "8080".into()
            ]))
        );
        let nginx = container("nginx:1.27", &[], &[]);
        assert_eq!(
            images.program(&nginx),
            Err("no program for image \"nginx:1.27\"".into())
        );
    }
}
