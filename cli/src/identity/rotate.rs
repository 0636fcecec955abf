//! `oxlink identity rotate-anchor`: replaces the mesh's trust anchor with no failed request.
//!
//! Linkerd's manual procedure, as a state machine whose progress lives on the trust-roots
//! ConfigMap (annotation `oxlink.io/anchor-rotation`), so that a crash or Ctrl-C resumes where
//! it stopped: add the new anchor to the bundle → restart the control plane and the meshed
//! workloads (every proxy trusts both) → switch the issuer to one signed by the new anchor →
//! restart the workloads (every proxy gets a certificate from the new issuer) → check each
//! proxy's certificate → remove the old anchors → restart again. Every step is idempotent: a
//! restart step remembers its `restartedAt` token, so a resumed run only waits for the workloads
//! it already restarted.
//!
//! The control plane reads the bundle when it starts (identity checks the issuer against it,
//! destination and identity verify mesh TLS with it, the injector copies it into new pods), so
//! each bundle change restarts the control plane before the workloads.
//!
//! A restarted injector is Ready before the API server can reach it through its Service (the
//! Service routing catches up with the new endpoint a moment later), and the webhook fails open
//! (`failurePolicy: Ignore`), so a pod created in that moment would start without a proxy and
//! drop out of the mesh. A batch of meshed workloads therefore starts only once a dry-run pod of
//! each comes back injected, and a pod that started without a proxy all the same is replaced.

mod cluster;
mod input;
mod state;

use self::{
    cluster::Workload,
    input::Files,
    state::{Rotation, Step, batches, issued_after},
};
use anyhow::{Context, Result, bail};
use clap::Args;
use kube::Client;
use oxlink_crds::{
    duration::parse_duration,
    names::control_plane::{
        self as cp, ISSUER_CRT_KEY, ISSUER_KEY_KEY, ISSUER_SCHEME_KUBERNETES, NAMESPACE,
        TLS_CRT_KEY,
    },
};
use oxlink_tls::{ChainSummary, TrustBundle, pem, utc_rfc3339};
use std::{
    io::Write,
    path::PathBuf,
    time::{Duration, Instant, SystemTime},
};

/// What `oxlink check` says of the rotation state annotation: fine when absent or complete, a
/// warning naming the step when a rotation was left unfinished.
pub(crate) fn check_rotation(annotation: Option<&str>) -> Result<(), String> {
    match annotation.map(Rotation::parse) {
        None => Ok(()),
        Some(Err(e)) => Err(format!(
            "annotation {} of ConfigMap {}: {e}",
            oxlink_crds::names::annotations::ANCHOR_ROTATION,
            cp::TRUST_ROOTS_CONFIGMAP
        )),
        Some(Ok(r)) if r.in_progress() => Err(format!(
            "{}; run `oxlink identity rotate-anchor` to resume it",
            r.summary()
        )),
        Some(Ok(_)) => Ok(()),
    }
}

/// The proxy metric that carries the expiry of the proxy's own certificate: the current proxy
/// (v2.366) names it under its `control_` registry; older proxies without the prefix.
const CERT_EXPIRY_METRICS: [&str; 2] = [
    "control_identity_cert_expiration_timestamp_seconds",
    "identity_cert_expiration_timestamp_seconds",
];

#[derive(Debug, Args)]
pub(crate) struct RotateArgs {
    /// The new trust anchor (PEM). Without it and an issuer, both are generated into --dir.
    #[arg(long, value_name = "FILE")]
    new_anchor_file: Option<PathBuf>,
    /// The new issuer's certificate (PEM), signed by the new trust anchor.
    #[arg(long, value_name = "FILE")]
    identity_issuer_certificate_file: Option<PathBuf>,
    /// The new issuer's private key (PEM).
    #[arg(long, value_name = "FILE")]
    identity_issuer_key_file: Option<PathBuf>,
    /// Where a generated anchor and issuer are written (ca.crt, ca.key, issuer.crt, issuer.key).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// How many workloads restart at once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    batch: u64,
    /// How long to wait between batches (Go duration).
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pause: Duration,
    /// How long to wait for each rollout, for an external issuer, and for the proxies'
    /// certificates (Go duration).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    timeout: Duration,
    /// Print the plan and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Namespace in which the control plane is installed.
    #[arg(short = 'L', long, default_value = NAMESPACE)]
    linkerd_namespace: String,
    /// Stop, as an interruption would, right after asking this many batches to restart.
    #[arg(long, hide = true)]
    stop_after_batches: Option<u64>,
}

/// What a run needs besides its flags.
struct Ctx {
    client: Client,
    ns: String,
    batch: usize,
    pause: Duration,
    timeout: Duration,
    stop_after_batches: Option<u64>,
    batches_done: u64,
}

pub(crate) fn run(
    args: RotateArgs,
    cluster: &crate::client::ClusterArgs,
    out: &mut impl Write,
) -> Result<()> {
    crate::install::cluster::block_on(rotate(args, cluster, out))
}

async fn rotate(
    args: RotateArgs,
    cluster: &crate::client::ClusterArgs,
    out: &mut impl Write,
) -> Result<()> {
    let RotateArgs {
        new_anchor_file,
        identity_issuer_certificate_file,
        identity_issuer_key_file,
        dir,
        batch,
        pause,
        timeout,
        dry_run,
        linkerd_namespace: ns,
        stop_after_batches,
    } = args;
    let files = Files {
        new_anchor: new_anchor_file,
        issuer_crt: identity_issuer_certificate_file,
        issuer_key: identity_issuer_key_file,
    };
    let client = cluster.client().await?;
    let roots = cluster::trust_roots(&client, &ns).await?;
    let values = cluster::values(&client, &ns).await?;
    let mut ctx = Ctx {
        client,
        ns,
        batch: batch as usize,
        pause,
        timeout,
        stop_after_batches,
        batches_done: 0,
    };
    let now = SystemTime::now();

    let (mut rotation, material) = match roots.rotation.filter(Rotation::in_progress) {
        Some(rotation) => {
            refuse_other_anchor(&files, &rotation)?;
            (rotation, None)
        }
        None => {
            let external =
                values["identity"]["issuer"]["scheme"].as_str() == Some(ISSUER_SCHEME_KUBERNETES);
            let td = crate::install::certs::trust_domain(&values);
            let names = (
                format!("root.{}.{td}", ctx.ns),
                format!("identity.{}.{td}", ctx.ns),
            );
            let material =
                input::material(&files, &roots.bundle, external, (&names.0, &names.1), now)?;
            if material.generated_anchor_key.is_some() && !dry_run {
                super::refuse_overwrite(&dir)?;
            }
            let rotation = Rotation {
                step: Step::AddAnchor,
                new_anchor: material.anchor_id.clone(),
                new_anchor_subject: material.anchor_subject.clone(),
                started_at: utc_rfc3339(now),
                external_issuer: external,
                restart_token: None,
                issuer_switched_at: None,
                restarts: 0,
                completed_at: None,
            };
            (rotation, Some(material))
        }
    };

    if dry_run {
        return plan(&ctx, &rotation, &roots.bundle, material.as_ref(), out).await;
    }
    if let Some(material) = &material {
        writeln!(
            out,
            "Rotating the trust anchor to {:?} (expires {})",
            material.anchor_subject,
            utc_rfc3339(material.anchor_not_after)
        )?;
        if let (Some(key), Some((crt, issuer_key))) =
            (&material.generated_anchor_key, &material.issuer)
        {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            super::write(&dir, "ca.crt", &material.anchor_pem, false)?;
            super::write(&dir, "ca.key", key, true)?;
            super::write(&dir, "issuer.crt", crt, false)?;
            super::write(&dir, "issuer.key", issuer_key, true)?;
            writeln!(
                out,
                "√ generated the new trust anchor and issuer into {} (keep ca.key offline)",
                dir.display()
            )?;
        }
        add_anchor(&ctx, &mut rotation, &roots.bundle, material, out).await?;
    } else {
        writeln!(out, "Resuming: {}", rotation.summary())?;
    }

    let started = Instant::now();
    while rotation.in_progress() {
        let step = rotation.step;
        writeln!(
            out,
            "[{}/{}] {}",
            step.number(),
            Step::ALL.len(),
            step.describe(rotation.external_issuer)
        )?;
        run_step(&mut ctx, &mut rotation, &values, out).await?;
        rotation.step = step.next();
        rotation.restart_token = None;
        if !rotation.in_progress() {
            rotation.completed_at = Some(utc_rfc3339(SystemTime::now()));
        }
        cluster::save(&ctx.client, &ctx.ns, &rotation, None).await?;
    }
    writeln!(
        out,
        "√ trust anchor rotation complete: every proxy trusts only {:?} ({} workload restarts; this run took {:.0}s, the rotation started {})",
        rotation.new_anchor_subject,
        rotation.restarts,
        started.elapsed().as_secs_f64(),
        rotation.started_at
    )?;
    Ok(())
}

/// A resumed rotation keeps its anchor: files naming another one are refused.
fn refuse_other_anchor(files: &Files, rotation: &Rotation) -> Result<()> {
    if let Some(path) = &files.new_anchor {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--new-anchor-file {}: cannot read it", path.display()))?;
        let ders = pem::certificates(text.as_bytes())
            .with_context(|| format!("--new-anchor-file {}: not PEM", path.display()))?;
        if ders.len() != 1 || state::anchor_id(&ders[0]) != rotation.new_anchor {
            bail!(
                "{}; --new-anchor-file names another anchor. Run `oxlink identity rotate-anchor` \
                 without files to resume it",
                rotation.summary()
            );
        }
    }
    Ok(())
}

/// Step 1: the next issuer is kept in its own Secret (so a resumed run has it), then the bundle
/// gains the new anchor in the same write that records the state.
async fn add_anchor(
    ctx: &Ctx,
    rotation: &mut Rotation,
    bundle: &str,
    material: &input::Material,
    out: &mut impl Write,
) -> Result<()> {
    writeln!(
        out,
        "[1/{}] {}",
        Step::ALL.len(),
        Step::AddAnchor.describe(rotation.external_issuer)
    )?;
    if let Some((crt, key)) = &material.issuer {
        cluster::write_issuer_secret(&ctx.client, &ctx.ns, cp::NEXT_ISSUER_SECRET, crt, key)
            .await?;
    }
    let both = format!(
        "{}\n{}\n",
        bundle.trim_end(),
        material.anchor_pem.trim_end()
    );
    cluster::update_values(&ctx.client, &ctx.ns, &both, None).await?;
    rotation.step = Step::AddAnchor.next();
    cluster::save(&ctx.client, &ctx.ns, rotation, Some(&both)).await?;
    writeln!(
        out,
        "√ trust bundle now holds {} anchors, the new one last",
        pem::certificates(both.as_bytes())?.len()
    )?;
    Ok(())
}

async fn run_step(
    ctx: &mut Ctx,
    rotation: &mut Rotation,
    values: &serde_json::Value,
    out: &mut impl Write,
) -> Result<()> {
    let step = rotation.step;
    if (step.restarts() || step == Step::SwitchIssuer) && rotation.restart_token.is_none() {
        rotation.restart_token = Some(utc_rfc3339(SystemTime::now()));
        cluster::save(&ctx.client, &ctx.ns, rotation, None).await?;
    }
    let token = rotation.restart_token.clone().unwrap_or_default();
    match step {
        Step::AddAnchor | Step::Complete => Ok(()),
        Step::SwitchIssuer => {
            switch_issuer(ctx, rotation, out).await?;
            restart_control_plane(ctx, rotation, &token, out).await?;
            let at = SystemTime::now();
            rotation.issuer_switched_at = Some(oxlink_tls_unix(at));
            writeln!(
                out,
                "√ identity issues from the new issuer since {}",
                utc_rfc3339(at)
            )?;
            Ok(())
        }
        Step::RestartForBundle | Step::RestartForIssuer | Step::RestartForRemoval => {
            if step.restarts_control_plane() {
                restart_control_plane(ctx, rotation, &token, out).await?;
            }
            restart_workloads(ctx, rotation, &token, out).await
        }
        Step::Verify => verify(ctx, rotation, values, out).await,
        Step::RemoveOldAnchors => remove_old_anchors(ctx, rotation, out).await,
    }
}

fn oxlink_tls_unix(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Writes the next issuer into `linkerd-identity-issuer`, or waits for an external one that
/// the new anchor signed.
async fn switch_issuer(ctx: &Ctx, rotation: &Rotation, out: &mut impl Write) -> Result<()> {
    let anchor = new_anchor(ctx, rotation).await?;
    if rotation.external_issuer {
        writeln!(
            out,
            "waiting up to {}s for Secret {}/{} to hold an issuer signed by the new trust anchor: \
             have your certificate manager sign it with the new anchor (cert-manager: put the new \
             anchor and its key in the CA Secret of the Issuer that signs it, then `cmctl renew -n {} {}`)",
            ctx.timeout.as_secs(),
            ctx.ns,
            cp::IDENTITY_ISSUER_SECRET,
            ctx.ns,
            cp::IDENTITY_ISSUER_SECRET
        )?;
        let deadline = Instant::now() + ctx.timeout;
        loop {
            let secret = cluster::secret(&ctx.client, &ctx.ns, cp::IDENTITY_ISSUER_SECRET).await?;
            let crt = secret.as_ref().and_then(|s| {
                cluster::secret_text(s, TLS_CRT_KEY)
                    .or_else(|| cluster::secret_text(s, ISSUER_CRT_KEY))
            });
            if let Some(crt) = crt
                && let Ok(chain) = pem::certificates(crt.as_bytes())
                && anchor.verify_ca_chain(&chain, SystemTime::now()).is_ok()
            {
                writeln!(
                    out,
                    "√ the external issuer is signed by the new trust anchor"
                )?;
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "Secret {}/{} still holds no issuer signed by the new trust anchor after {}s; \
                     run `oxlink identity rotate-anchor` again once it does",
                    ctx.ns,
                    cp::IDENTITY_ISSUER_SECRET,
                    ctx.timeout.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
    let next = cluster::secret(&ctx.client, &ctx.ns, cp::NEXT_ISSUER_SECRET).await?;
    let current = cluster::secret(&ctx.client, &ctx.ns, cp::IDENTITY_ISSUER_SECRET).await?;
    let pair = |s: &Option<k8s_openapi::api::core::v1::Secret>| {
        s.as_ref().and_then(|s| {
            Some((
                cluster::secret_text(s, ISSUER_CRT_KEY)?,
                cluster::secret_text(s, ISSUER_KEY_KEY)?,
            ))
        })
    };
    let (crt, key) = match (pair(&next), pair(&current)) {
        (Some(next), _) => next,
        // Already switched by an interrupted run that then removed nothing yet.
        (None, Some(cur))
            if pem::certificates(cur.0.as_bytes())
                .is_ok_and(|c| anchor.verify_ca_chain(&c, SystemTime::now()).is_ok()) =>
        {
            cur
        }
        _ => bail!(
            "Secret {}/{} with the next issuer is missing; the rotation cannot switch the issuer. \
             Restore it, or remove annotation {} from ConfigMap {} to start over",
            ctx.ns,
            cp::NEXT_ISSUER_SECRET,
            oxlink_crds::names::annotations::ANCHOR_ROTATION,
            cp::TRUST_ROOTS_CONFIGMAP
        ),
    };
    cluster::write_issuer_secret(&ctx.client, &ctx.ns, cp::IDENTITY_ISSUER_SECRET, &crt, &key)
        .await?;
    let bundle = cluster::trust_roots(&ctx.client, &ctx.ns).await?.bundle;
    cluster::update_values(&ctx.client, &ctx.ns, &bundle, Some(&crt)).await?;
    let subject = ChainSummary::from_pem(crt.as_bytes())?
        .first()
        .map(|c| c.subject.clone())
        .unwrap_or_default();
    writeln!(
        out,
        "√ Secret {}/{} now holds issuer {subject:?}",
        ctx.ns,
        cp::IDENTITY_ISSUER_SECRET
    )?;
    Ok(())
}

/// The new anchor, found in the bundle by its fingerprint.
async fn new_anchor(ctx: &Ctx, rotation: &Rotation) -> Result<TrustBundle> {
    let bundle = cluster::trust_roots(&ctx.client, &ctx.ns).await?.bundle;
    let der = pem::certificates(bundle.as_bytes())?
        .into_iter()
        .find(|d| state::anchor_id(d) == rotation.new_anchor)
        .with_context(|| {
            format!(
                "the new trust anchor {:?} is no longer in ConfigMap {}; the rotation cannot go on",
                rotation.new_anchor_subject,
                cp::TRUST_ROOTS_CONFIGMAP
            )
        })?;
    Ok(TrustBundle::from_der(vec![der])?)
}

async fn restart_control_plane(
    ctx: &mut Ctx,
    rotation: &mut Rotation,
    token: &str,
    out: &mut impl Write,
) -> Result<()> {
    // One at a time, identity first: the others get their certificates from it.
    for w in cluster::control_plane(&ctx.client, &ctx.ns).await? {
        restart_batch(ctx, rotation, std::slice::from_ref(&w), false, token, out).await?;
    }
    Ok(())
}

async fn restart_workloads(
    ctx: &mut Ctx,
    rotation: &mut Rotation,
    token: &str,
    out: &mut impl Write,
) -> Result<()> {
    let pods = cluster::meshed_pods(&ctx.client, &ctx.ns).await?;
    let (workloads, unmanaged) = cluster::owners(&pods);
    for pod in &unmanaged {
        writeln!(
            out,
            "‼ pod {pod} has no Deployment, StatefulSet or DaemonSet to restart it: delete it so that it is recreated"
        )?;
    }
    let all = batches(&workloads, ctx.batch);
    for (i, batch) in all.iter().enumerate() {
        if i > 0 && !ctx.pause.is_zero() {
            tokio::time::sleep(ctx.pause).await;
        }
        writeln!(out, "batch {}/{}:", i + 1, all.len())?;
        restart_batch(ctx, rotation, batch, true, token, out).await?;
    }
    if workloads.is_empty() {
        writeln!(out, "√ no meshed workload to restart")?;
    }
    Ok(())
}

/// Restarts a batch and waits for every rollout of it to complete. The pods of `meshed`
/// workloads are created only once the proxy injector is reached, and a pod that started
/// without a proxy all the same is replaced.
async fn restart_batch(
    ctx: &mut Ctx,
    rotation: &mut Rotation,
    batch: &[Workload],
    meshed: bool,
    token: &str,
    out: &mut impl Write,
) -> Result<()> {
    let mut patched = 0;
    for w in batch {
        if meshed {
            wait_for_injector(ctx, w, out).await?;
        }
        if cluster::restart(&ctx.client, w, token).await? {
            patched += 1;
            writeln!(out, "  {w} restarted")?;
        } else {
            writeln!(out, "  {w} was already restarted")?;
        }
    }
    if patched > 0 {
        rotation.restarts += patched;
        cluster::save(&ctx.client, &ctx.ns, rotation, None).await?;
    }
    ctx.batches_done += 1;
    if ctx.stop_after_batches == Some(ctx.batches_done) {
        bail!(
            "stopped after {} batches (--stop-after-batches); run `oxlink identity rotate-anchor` to resume",
            ctx.batches_done
        );
    }
    for w in batch {
        wait_for_rollout(ctx, w).await?;
        if meshed {
            replace_unmeshed(ctx, w, out).await?;
        }
        writeln!(out, "  √ {w} is Ready")?;
    }
    Ok(())
}

/// Waits until a pod of `w` created now gets its proxy: the webhook fails open, so a pod
/// created while the API server cannot reach a restarted injector would run unmeshed.
async fn wait_for_injector(ctx: &Ctx, w: &Workload, out: &mut impl Write) -> Result<()> {
    let deadline = Instant::now() + ctx.timeout;
    let mut said = false;
    while !cluster::injects(&ctx.client, w).await? {
        if Instant::now() > deadline {
            bail!(
                "after {}s, a pod of {w} is still created without a proxy: the API server does not \
                 reach the proxy injector (see `oxlink check`), or the workload is no longer \
                 injected; fix it and run `oxlink identity rotate-anchor` again to resume",
                ctx.timeout.as_secs()
            );
        }
        if !said {
            writeln!(
                out,
                "  waiting for the proxy injector: a pod of {w} created now would get no proxy"
            )?;
            said = true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

/// Replaces, one at a time, the pods of `w` that started without a proxy (created while the
/// injector was not reached), waiting for the rollout after each.
async fn replace_unmeshed(ctx: &Ctx, w: &Workload, out: &mut impl Write) -> Result<()> {
    while let Some(pod) = cluster::unmeshed_pods(&ctx.client, w)
        .await?
        .into_iter()
        .next()
    {
        writeln!(
            out,
            "  ‼ pod {}/{pod} of {w} started without a proxy (the proxy injector was not reached): replacing it",
            w.namespace
        )?;
        wait_for_injector(ctx, w, out).await?;
        cluster::delete_pod(&ctx.client, &w.namespace, &pod).await?;
        // Until its controller has seen the deletion, the rollout still looks complete.
        tokio::time::sleep(Duration::from_secs(2)).await;
        wait_for_rollout(ctx, w).await?;
    }
    Ok(())
}

async fn wait_for_rollout(ctx: &Ctx, w: &Workload) -> Result<()> {
    let deadline = Instant::now() + ctx.timeout;
    loop {
        let status = match cluster::rollout(&ctx.client, w).await? {
            None => return Ok(()),
            Some(s) => s,
        };
        if status.complete() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{w} did not finish its rollout within {}s ({} of {} pods updated, {} available, {} in all); \
                 fix it and run `oxlink identity rotate-anchor` again to resume",
                ctx.timeout.as_secs(),
                status.updated,
                status.desired,
                status.available,
                status.current
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Step 5: every meshed proxy's certificate expires as only one issued after the switch can.
async fn verify(
    ctx: &Ctx,
    rotation: &Rotation,
    values: &serde_json::Value,
    out: &mut impl Write,
) -> Result<()> {
    let switched_at = rotation
        .issuer_switched_at
        .context("the rotation state has no time of the issuer switch")?;
    let lifetime = values["identity"]["issuer"]["issuanceLifetime"]
        .as_str()
        .map(parse_duration)
        .transpose()
        .map_err(|e| anyhow::anyhow!("identity.issuer.issuanceLifetime: {e}"))?
        .unwrap_or(Duration::from_secs(24 * 3600));
    let issuer_expiry = {
        let secret = cluster::secret(&ctx.client, &ctx.ns, cp::IDENTITY_ISSUER_SECRET)
            .await?
            .context("the issuer Secret is missing")?;
        let crt = cluster::secret_text(&secret, TLS_CRT_KEY)
            .or_else(|| cluster::secret_text(&secret, ISSUER_CRT_KEY))
            .unwrap_or_default();
        ChainSummary::from_pem(crt.as_bytes())?
            .iter()
            .map(|c| oxlink_tls_unix(c.not_after))
            .min()
            .unwrap_or_default()
    };
    let deadline = Instant::now() + ctx.timeout;
    loop {
        // Pods whose containers have all stopped (a finished Job's) hold no live proxy.
        let pods: Vec<_> = cluster::meshed_pods(&ctx.client, &ctx.ns)
            .await?
            .into_iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .collect();
        let mut old = Vec::new();
        for pod in &pods {
            let name = format!(
                "{}/{}",
                pod.metadata.namespace.as_deref().unwrap_or_default(),
                pod.metadata.name.as_deref().unwrap_or_default()
            );
            match cluster::proxy_metrics(&ctx.client, pod).await {
                Ok(text) => match CERT_EXPIRY_METRICS
                    .iter()
                    .find_map(|m| state::gauge(&text, m))
                {
                    Some(expiry) if issued_after(expiry, switched_at, lifetime, issuer_expiry) => {}
                    Some(expiry) => old.push(format!(
                        "{name}: its certificate (expiring {}) predates the new issuer",
                        utc_rfc3339(
                            SystemTime::UNIX_EPOCH + Duration::from_secs_f64(expiry.max(0.0))
                        )
                    )),
                    None => old.push(format!("{name}: its proxy has no certificate yet")),
                },
                Err(e) => old.push(format!("{name}: {e:#}")),
            }
        }
        if old.is_empty() {
            writeln!(
                out,
                "√ all {} meshed proxies hold a certificate from the new issuer",
                pods.len()
            )?;
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "after {}s, {} proxies still do not hold a certificate from the new issuer:\n\t{}\n\
                 restart or delete those pods, then run `oxlink identity rotate-anchor` again to resume",
                ctx.timeout.as_secs(),
                old.len(),
                old.join("\n\t")
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Step 6: the bundle keeps only the new anchor (written last, with the state, so that an
/// interruption before it repeats the step).
async fn remove_old_anchors(ctx: &Ctx, rotation: &Rotation, out: &mut impl Write) -> Result<()> {
    let anchor = new_anchor(ctx, rotation).await?;
    let only = anchor.to_pem();
    let issuer_crt = if rotation.external_issuer {
        None
    } else {
        cluster::secret(&ctx.client, &ctx.ns, cp::IDENTITY_ISSUER_SECRET)
            .await?
            .and_then(|s| cluster::secret_text(&s, ISSUER_CRT_KEY))
    };
    cluster::update_values(&ctx.client, &ctx.ns, &only, issuer_crt.as_deref()).await?;
    cluster::delete_secret(&ctx.client, &ctx.ns, cp::NEXT_ISSUER_SECRET).await?;
    let next = Rotation {
        step: Step::RemoveOldAnchors.next(),
        ..rotation.clone()
    };
    cluster::save(&ctx.client, &ctx.ns, &next, Some(&only)).await?;
    writeln!(
        out,
        "√ trust bundle now holds only {:?}",
        rotation.new_anchor_subject
    )?;
    Ok(())
}

/// `--dry-run`: what would happen, from the step the rotation is at.
async fn plan(
    ctx: &Ctx,
    rotation: &Rotation,
    bundle: &str,
    material: Option<&input::Material>,
    out: &mut impl Write,
) -> Result<()> {
    let pods = cluster::meshed_pods(&ctx.client, &ctx.ns).await?;
    let (workloads, unmanaged) = cluster::owners(&pods);
    let control_plane = cluster::control_plane(&ctx.client, &ctx.ns).await?;
    let anchors = ChainSummary::from_pem(bundle.as_bytes())?;
    out.write_all(
        plan_text(
            rotation,
            &anchors,
            material,
            &control_plane,
            &workloads,
            &unmanaged,
            ctx.batch,
            ctx.pause,
        )
        .as_bytes(),
    )?;
    Ok(())
}

/// The plan as `--dry-run` prints it.
#[allow(clippy::too_many_arguments)]
fn plan_text(
    rotation: &Rotation,
    anchors: &[ChainSummary],
    material: Option<&input::Material>,
    control_plane: &[Workload],
    workloads: &[Workload],
    unmanaged: &[String],
    batch: usize,
    pause: Duration,
) -> String {
    let mut s = String::new();
    let mut line = |l: String| {
        s.push_str(&l);
        s.push('\n');
    };
    line("Trust anchor rotation plan (dry run: nothing is changed)".into());
    if rotation.step != Step::AddAnchor {
        line(format!("resuming: {}", rotation.summary()));
    }
    line(format!("new trust anchor: {}", rotation.new_anchor_subject));
    for a in anchors {
        line(format!(
            "current trust anchor: {} (expires {})",
            a.subject,
            utc_rfc3339(a.not_after)
        ));
    }
    line(format!(
        "issuer: {}",
        match material {
            _ if rotation.external_issuer =>
                "managed externally (oxlink waits for it to be signed by the new anchor)",
            Some(m) if m.generated_anchor_key.is_some() =>
                "generated with the new anchor (written to --dir)",
            Some(_) => "given (--identity-issuer-certificate-file)",
            None => "kept in Secret oxlink-identity-issuer-next until the switch",
        }
    ));
    line(format!(
        "control plane restarted at steps 2, 3 and 7: {}",
        control_plane
            .iter()
            .map(|w| w.name.clone())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let groups = batches(workloads, batch);
    line(format!(
        "meshed workloads restarted at steps 2, 4 and 7: {} in {} batches of up to {batch}{}",
        workloads.len(),
        groups.len(),
        if pause.is_zero() {
            String::new()
        } else {
            format!(", {}s apart", pause.as_secs_f64())
        }
    ));
    for (i, g) in groups.iter().enumerate() {
        line(format!(
            "  batch {}: {}",
            i + 1,
            g.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for p in unmanaged {
        line(format!(
            "  ‼ pod {p} has no workload to restart it: delete it by hand at each restart step"
        ));
    }
    line("steps:".into());
    for step in Step::ALL {
        let mark = if step < rotation.step {
            "√"
        } else if step == rotation.step {
            "→"
        } else {
            " "
        };
        line(format!(
            "  {mark} {}. {}",
            step.number(),
            step.describe(rotation.external_issuer)
        ));
    }
    s
}

#[cfg(test)]
mod tests;
