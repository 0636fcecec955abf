//! `simulated-proxy`: what a meshed pod's proxy does first, from the command line. It certifies
//! its identity with identity, resolves a Service through destination and fetches a
//! ServiceProfile, prints what it got, and fails when an expectation is not met. `cargo xtask
//! demo` runs it against the control plane it starts.

use anyhow::{Context, Result, bail};
use clap::Parser;
use linkerd2_proxy_api::destination::{
    self as pb, destination_client::DestinationClient, update::Update,
};
use oxlink_e2e::proxy::SimulatedProxy;
use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, time::Duration};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

#[derive(Debug, Parser)]
#[command(name = "simulated-proxy")]
struct Args {
    /// This proxy's identity (`<sa>.<ns>.serviceaccount.identity.<control-ns>.<trust-domain>`).
    #[arg(long)]
    name: String,
    /// The ServiceAccount token to present (audience `identity.l5d.io`).
    #[arg(long)]
    token_file: PathBuf,
    /// The trust anchors (PEM).
    #[arg(long)]
    trust_anchors: PathBuf,
    /// identity's gRPC address.
    #[arg(long)]
    identity_addr: SocketAddr,
    /// identity's own identity, verified as its TLS server name.
    #[arg(
        long,
        default_value = "linkerd-identity.linkerd.serviceaccount.identity.linkerd.cluster.local"
    )]
    identity_name: String,
    /// destination's gRPC address.
    #[arg(long)]
    destination_addr: SocketAddr,
    /// destination's identity, verified as its TLS server name; plaintext when absent.
    #[arg(long)]
    destination_name: Option<String>,
    /// The namespace this proxy's pod runs in (the context token's `ns`).
    #[arg(long)]
    namespace: String,
    /// An authority to resolve with Get, e.g. `todobackend.todo.svc.cluster.local:8080`.
    #[arg(long)]
    resolve: Option<String>,
    /// Wait until Get holds this many endpoints.
    #[arg(long, requires = "resolve")]
    expect_endpoints: Option<usize>,
    /// An authority whose ServiceProfile to fetch with GetProfile.
    #[arg(long)]
    profile: Option<String>,
    /// A route name the profile must hold (repeatable).
    #[arg(long, requires = "profile")]
    expect_route: Vec<String>,
    /// How long to wait for an expectation to hold.
    #[arg(long, default_value_t = 30)]
    timeout_secs: u64,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("simulated-proxy: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<()> {
    let timeout = Duration::from_secs(args.timeout_secs);
    let anchors = read(&args.trust_anchors)?;
    let token = read(&args.token_file)?;
    let proxy = SimulatedProxy::new(&args.name, &anchors)?;
    let channel = proxy
        .connect(args.identity_addr, &args.identity_name)
        .await?;
    let certified = proxy
        .certify(channel, token.trim())
        .await?
        .map_err(|status| anyhow::anyhow!("identity refused the CSR: {status}"))?;
    println!(
        "certified as {} (valid until {}, {} intermediate(s))",
        args.name,
        oxlink_tls::utc_rfc3339(certified.valid_until),
        certified.intermediates.len()
    );

    let channel = destination_channel(&args, &anchors).await?;
    let mut client = DestinationClient::new(channel);
    let context_token = serde_json::json!({"ns": args.namespace}).to_string();
    if let Some(authority) = &args.resolve {
        let want = args.expect_endpoints;
        let endpoints = resolve(&mut client, authority, &context_token, want, timeout).await?;
        println!("{authority}: {} endpoint(s)", endpoints.len());
        for (addr, identity) in &endpoints {
            let identity = identity.as_deref().unwrap_or("(no identity: not meshed)");
            println!("  {addr:<22} {identity}");
        }
    }
    if let Some(authority) = &args.profile {
        let profile = client
            .get_profile(pb::GetDestination {
                path: authority.clone(),
                context_token: context_token.clone(),
                ..Default::default()
            })
            .await
            .with_context(|| format!("GetProfile {authority}"))?
            .into_inner()
            .message()
            .await?
            .context("the GetProfile stream ended before its first update")?;
        println!(
            "{authority}: profile {:?} with {} route(s)",
            profile.fully_qualified_name,
            profile.routes.len()
        );
        for route in &profile.routes {
            let name = route.metrics_labels.get("route").map_or("", String::as_str);
            let timeout = route
                .timeout
                .and_then(|t| Duration::try_from(t).ok())
                .map_or_else(|| "no timeout".to_string(), |t| format!("timeout {t:?}"));
            println!("  {name:<22} {timeout}");
        }
        for want in &args.expect_route {
            if !profile
                .routes
                .iter()
                .any(|r| r.metrics_labels.get("route") == Some(want))
            {
                bail!("the profile of {authority} has no route {want:?}");
            }
        }
    }
    Ok(())
}

fn read(path: &PathBuf) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// A channel to destination: TLS verifying its identity when one is given, else plaintext.
async fn destination_channel(args: &Args, anchors: &str) -> Result<Channel> {
    let addr = args.destination_addr;
    let endpoint = match &args.destination_name {
        Some(name) => Endpoint::from_shared(format!("https://{addr}"))?.tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(anchors))
                .domain_name(name),
        )?,
        None => Endpoint::from_shared(format!("http://{addr}"))?,
    };
    endpoint
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .with_context(|| format!("connecting to destination at {addr}"))
}

/// Follows Get on `authority` until it holds `want` endpoints (or just its first update), and
/// returns each endpoint's address and TLS identity.
async fn resolve(
    client: &mut DestinationClient<Channel>,
    authority: &str,
    context_token: &str,
    want: Option<usize>,
    timeout: Duration,
) -> Result<BTreeMap<SocketAddr, Option<String>>> {
    let mut stream = client
        .get(pb::GetDestination {
            path: authority.to_string(),
            context_token: context_token.to_string(),
            ..Default::default()
        })
        .await
        .with_context(|| format!("Get {authority}"))?
        .into_inner();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut endpoints = BTreeMap::new();
    loop {
        let update = match tokio::time::timeout_at(deadline, stream.message()).await {
            Ok(update) => update?.context("the Get stream ended")?,
            Err(_) => bail!(
                "{authority} did not reach {} endpoint(s) within {timeout:?}; holding {endpoints:?}",
                want.unwrap_or(1)
            ),
        };
        match update.update.context("an update without a body")? {
            Update::Add(set) => {
                for wa in set.addrs {
                    let addr = SocketAddr::try_from(wa.addr.context("an address")?)?;
                    let identity = wa.tls_identity.and_then(|t| t.server_name).map(|n| n.name);
                    endpoints.insert(addr, identity);
                }
            }
            Update::Remove(set) => {
                for addr in set.addrs {
                    endpoints.remove(&SocketAddr::try_from(addr)?);
                }
            }
            Update::NoEndpoints(_) => endpoints.clear(),
        }
        match want {
            Some(n) if endpoints.len() != n => continue,
            _ => return Ok(endpoints),
        }
    }
}
