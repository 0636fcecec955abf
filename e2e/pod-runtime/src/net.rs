//! The pod network: one network namespace per pod, joined to a router namespace by a veth pair;
//! the router joins the host by another. The router has no default route, so nothing a pod
//! sends leaves the machine: it reaches other pods, Service IPs (kube-proxy runs in the router)
//! and the host's side of the link, where CoreDNS and (forwarded to 127.0.0.1) the API server
//! listen.
//!
//! ```text
//! host (10.243.255.1) ── oxl0 ═ oxl0r ── router (10.243.255.2, kube-proxy) ── oxv… ═ eth0 ── pod
//! ```

use anyhow::{Context, Result, bail};
use std::net::Ipv4Addr;
use tokio::process::Command;

/// The host's address on the link to the router: CoreDNS, and the API server for pods.
pub const HOST_IP: Ipv4Addr = Ipv4Addr::new(10, 243, 255, 1);
/// The router's address on the link to the host.
pub const ROUTER_IP: Ipv4Addr = Ipv4Addr::new(10, 243, 255, 2);
/// Every pod's gateway: an address the router holds on each pod's link.
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// The network namespace of the router.
pub const ROUTER_NS: &str = "oxl-router";
/// Pod and Service ranges routed from the host through the router.
pub const POD_CIDR: &str = "10.244.0.0/16";
pub const SERVICE_CIDR: &str = "10.96.0.0/16";
const HOST_LINK: &str = "oxl0";
const ROUTER_LINK: &str = "oxl0r";

/// Runs a command to completion; its stderr becomes the error. The arguments are copied, so
/// the future borrows nothing.
pub fn run(program: &str, args: &[&str]) -> impl Future<Output = Result<String>> + Send + use<> {
    let program = program.to_string();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    async move {
        let out = Command::new(&program)
            .args(&args)
            .output()
            .await
            .with_context(|| format!("running {program}"))?;
        if !out.status.success() {
            bail!(
                "{program} {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

fn ip(args: &[&str]) -> impl Future<Output = Result<()>> + Send + use<> {
    let run = run("ip", args);
    async move { run.await.map(drop) }
}

/// The rule that forwards the API server's port on the host's link address to 127.0.0.1.
fn api_rule(port: u16) -> Vec<String> {
    [
        "PREROUTING",
        "-i",
        HOST_LINK,
        "-d",
        &HOST_IP.to_string(),
        "-p",
        "tcp",
        "--dport",
        &port.to_string(),
        "-j",
        "DNAT",
        "--to-destination",
        &format!("127.0.0.1:{port}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Creates the router and the host's link to it; an earlier run's leftovers are removed first.
pub async fn setup(api_port: u16) -> Result<()> {
    teardown(api_port).await;
    ip(&["netns", "add", ROUTER_NS]).await?;
    ip(&[
        "link",
        "add",
        HOST_LINK,
        "type",
        "veth",
        "peer",
        "name",
        ROUTER_LINK,
        "netns",
        ROUTER_NS,
    ])
    .await?;
    ip(&["addr", "add", &format!("{HOST_IP}/24"), "dev", HOST_LINK]).await?;
    ip(&["link", "set", HOST_LINK, "up"]).await?;
    let r = |args: &[&str]| {
        let mut v = vec!["-n", ROUTER_NS];
        v.extend_from_slice(args);
        v.into_iter().map(String::from).collect::<Vec<_>>()
    };
    for args in [
        r(&["link", "set", "lo", "up"]),
        r(&[
            "addr",
            "add",
            &format!("{ROUTER_IP}/24"),
            "dev",
            ROUTER_LINK,
        ]),
        r(&["link", "set", ROUTER_LINK, "up"]),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ip(&args).await?;
    }
    run(
        "ip",
        &[
            "netns",
            "exec",
            ROUTER_NS,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ],
    )
    .await?;
    for cidr in [POD_CIDR, SERVICE_CIDR] {
        ip(&["route", "replace", cidr, "via", &ROUTER_IP.to_string()]).await?;
    }
    run(
        "sysctl",
        &[
            "-qw",
            &format!("net.ipv4.conf.{HOST_LINK}.route_localnet=1"),
        ],
    )
    .await?;
    let mut add = vec!["-t", "nat", "-I"];
    let rule = api_rule(api_port);
    add.extend(rule.iter().map(String::as_str));
    run("iptables", &add).await?;
    Ok(())
}

/// Removes the router, the host's link and routes, and the forwarding rule; errors are ignored
/// (there may be nothing to remove).
pub async fn teardown(api_port: u16) {
    let rule = api_rule(api_port);
    let mut del = vec!["-t", "nat", "-D"];
    del.extend(rule.iter().map(String::as_str));
    while run("iptables", &del).await.is_ok() {}
    for cidr in [POD_CIDR, SERVICE_CIDR] {
        let _ = ip(&["route", "del", cidr]).await;
    }
    let _ = ip(&["link", "del", HOST_LINK]).await;
    let _ = ip(&["netns", "del", ROUTER_NS]).await;
    if let Ok(list) = run("ip", &["netns", "list"]).await {
        for ns in list.lines().filter_map(|l| l.split_whitespace().next()) {
            if ns.starts_with(POD_NS_PREFIX) {
                let _ = ip(&["netns", "del", ns]).await;
                let _ = std::fs::remove_dir_all(format!("/etc/netns/{ns}"));
            }
        }
    }
}

const POD_NS_PREFIX: &str = "oxlp-";

fn short_id(uid: &str) -> String {
    uid.chars().filter(|c| *c != '-').take(11).collect()
}

/// The network namespace of the pod with this UID (`ip netns exec NAME …` enters it).
pub fn netns_name(uid: &str) -> String {
    format!("{POD_NS_PREFIX}{}", short_id(uid))
}

/// A pod's network: its namespace and the router's end of its link.
#[derive(Clone, Debug)]
pub struct PodNet {
    pub ns: String,
    link: String,
    pub ip: Ipv4Addr,
}

impl PodNet {
    /// Names for the pod with this UID.
    pub fn new(uid: &str, ip: Ipv4Addr) -> Self {
        Self {
            ns: netns_name(uid),
            link: format!("oxv{}", short_id(uid)),
            ip,
        }
    }

    /// Creates the namespace with the pod IP on `eth0`, its route through the router, and the
    /// resolver configuration kubelet would write (`ip netns exec` mounts it on /etc/resolv.conf).
    pub fn up(&self, resolv_conf: &str) -> impl Future<Output = Result<()>> + Send + use<> {
        let down = self.down();
        let dir = format!("/etc/netns/{}", self.ns);
        let files = [
            (format!("{dir}/resolv.conf"), resolv_conf.to_string()),
            (
                format!("{dir}/hosts"),
                format!("127.0.0.1 localhost\n{} {}\n", self.ip, self.ns),
            ),
        ];
        let (ns, link, ip) = (self.ns.as_str(), self.link.as_str(), self.ip.to_string());
        let gw = GATEWAY.to_string();
        let cmds: Vec<_> = {
            let list: &[&[&str]] = &[
                &["netns", "add", ns],
                &[
                    "-n", ROUTER_NS, "link", "add", link, "type", "veth", "peer", "name", "eth0",
                    "netns", ns,
                ],
                &[
                    "-n",
                    ROUTER_NS,
                    "addr",
                    "add",
                    &format!("{gw}/32"),
                    "dev",
                    link,
                ],
                &["-n", ROUTER_NS, "link", "set", link, "up"],
                &[
                    "-n",
                    ROUTER_NS,
                    "route",
                    "add",
                    &format!("{ip}/32"),
                    "dev",
                    link,
                ],
                &["-n", ns, "link", "set", "lo", "up"],
                &["-n", ns, "addr", "add", &format!("{ip}/32"), "dev", "eth0"],
                &["-n", ns, "link", "set", "eth0", "up"],
                &[
                    "-n", ns, "route", "add", &gw, "dev", "eth0", "scope", "link",
                ],
                &[
                    "-n", ns, "route", "add", "default", "via", &gw, "dev", "eth0",
                ],
            ];
            list.iter().map(|args| self::ip(args)).collect()
        };
        async move {
            down.await;
            std::fs::create_dir_all(&dir)?;
            for (path, text) in files {
                std::fs::write(path, text)?;
            }
            for cmd in cmds {
                cmd.await
                    .with_context(|| format!("creating the network of pod IP {ip}"))?;
            }
            Ok(())
        }
    }

    /// Removes the namespace and its link; nothing to remove is fine.
    pub fn down(&self) -> impl Future<Output = ()> + Send + use<> {
        let link = ip(&["-n", ROUTER_NS, "link", "del", &self.link]);
        let ns = ip(&["netns", "del", &self.ns]);
        let dir = format!("/etc/netns/{}", self.ns);
        async move {
            let _ = link.await;
            let _ = ns.await;
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// What kubelet writes into a pod's /etc/resolv.conf with `dnsPolicy: ClusterFirst`.
pub fn resolv_conf(namespace: &str, cluster_domain: &str) -> String {
    format!(
        "nameserver {HOST_IP}\nsearch {namespace}.svc.{cluster_domain} svc.{cluster_domain} {cluster_domain}\noptions ndots:5\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_the_kernel_limits_and_differ_per_pod() {
        let a = PodNet::new(
            "0f3c2a9e-1111-2222-3333-444455556666",
            Ipv4Addr::new(10, 244, 0, 2),
        );
        let b = PodNet::new(
            "0f3d2a9e-1111-2222-3333-444455556666",
            Ipv4Addr::new(10, 244, 0, 3),
        );
        assert!(a.link.len() <= 15, "{}", a.link);
        assert_ne!(a.ns, b.ns);
        assert_ne!(a.link, b.link);
    }

    #[test]
    fn resolv_conf_searches_like_kubelet() {
        assert_eq!(
            resolv_conf("todo", "cluster.local"),
            "nameserver 10.243.255.1\nsearch todo.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
        );
    }
}
