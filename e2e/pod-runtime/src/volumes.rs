//! A pod's volumes as directories on the host, filled as kubelet fills them: emptyDir,
//! configMap, secret, downwardAPI and projected (ServiceAccount tokens from the TokenRequest
//! API, refreshed before they expire).

use crate::env;
use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::{
    authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec},
    core::v1::{
        ConfigMap, DownwardAPIVolumeFile, KeyToPath, Pod, Secret, ServiceAccount,
        ServiceAccountTokenProjection, Volume,
    },
};
use kube::{Api, Client, api::PostParams};
use std::{
    collections::BTreeMap,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    time::Duration,
};

/// A token to keep fresh: where it is written and what to ask for.
#[derive(Clone, Debug)]
pub struct TokenFile {
    pub path: PathBuf,
    pub audience: Option<String>,
    pub expiration_seconds: i64,
}

/// Fills `root/<volume name>` for every volume of the pod; returns the tokens to refresh.
pub async fn prepare(client: &Client, pod: &Pod, root: &Path) -> Result<Vec<TokenFile>> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut tokens = Vec::new();
    let volumes: Vec<Volume> = pod
        .spec
        .iter()
        .flat_map(|s| s.volumes.clone())
        .flatten()
        .collect();
    for v in &volumes {
        let dir = root.join(&v.name);
        std::fs::create_dir_all(&dir)?;
        fill(client, pod, ns, v, &dir, &mut tokens)
            .await
            .with_context(|| format!("volume {:?}", v.name))?;
    }
    for t in &tokens {
        write_token(client, pod, t).await?;
    }
    Ok(tokens)
}

async fn fill(
    client: &Client,
    pod: &Pod,
    ns: &str,
    v: &Volume,
    dir: &Path,
    tokens: &mut Vec<TokenFile>,
) -> Result<()> {
    if v.empty_dir.is_some() {
        // Writable by every container user, as kubelet makes it.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))?;
    } else if let Some(cm) = &v.config_map {
        let data = config_map(client, ns, &cm.name).await?;
        match data {
            Some(data) => write_items(dir, &data, cm.items.as_deref())?,
            None if cm.optional == Some(true) => {}
            None => bail!("ConfigMap {:?} does not exist", cm.name),
        }
    } else if let Some(s) = &v.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        match secret(client, ns, &name).await? {
            Some(data) => write_items(dir, &data, s.items.as_deref())?,
            None if s.optional == Some(true) => {}
            None => bail!("Secret {name:?} does not exist"),
        }
    } else if let Some(d) = &v.downward_api {
        write_downward(dir, pod, d.items.as_deref().unwrap_or_default())?;
    } else if let Some(p) = &v.projected {
        for source in p.sources.iter().flatten() {
            if let Some(t) = &source.service_account_token {
                tokens.push(token_file(dir, t));
            } else if let Some(cm) = &source.config_map {
                if let Some(data) = config_map(client, ns, &cm.name).await? {
                    write_items(dir, &data, cm.items.as_deref())?;
                } else if cm.optional != Some(true) {
                    bail!("ConfigMap {:?} does not exist", cm.name);
                }
            } else if let Some(s) = &source.secret {
                if let Some(data) = secret(client, ns, &s.name).await? {
                    write_items(dir, &data, s.items.as_deref())?;
                } else if s.optional != Some(true) {
                    bail!("Secret {:?} does not exist", s.name);
                }
            } else if let Some(d) = &source.downward_api {
                write_downward(dir, pod, d.items.as_deref().unwrap_or_default())?;
            } else {
                bail!("unsupported projected source");
            }
        }
    } else {
        bail!(
            "unsupported volume type (localkube's runtime fills emptyDir, configMap, secret, downwardAPI and projected)"
        );
    }
    Ok(())
}

fn token_file(dir: &Path, t: &ServiceAccountTokenProjection) -> TokenFile {
    TokenFile {
        path: dir.join(&t.path),
        audience: t.audience.clone().filter(|a| !a.is_empty()),
        expiration_seconds: t.expiration_seconds.unwrap_or(3600),
    }
}

/// Asks the TokenRequest API for a token of the pod's ServiceAccount, bound to the pod, and
/// replaces the file atomically.
pub async fn write_token(client: &Client, pod: &Pod, t: &TokenFile) -> Result<()> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: t.audience.iter().cloned().collect(),
            expiration_seconds: Some(t.expiration_seconds),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..Default::default()
    };
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let issued: TokenRequest = api
        .create_subresource("token", &sa, &PostParams::default(), &request)
        .await
        .with_context(|| format!("requesting a token for ServiceAccount {ns}/{sa}"))?;
    let token = issued
        .status
        .ok_or_else(|| anyhow!("the TokenRequest has no status"))?
        .token;
    write_file(&t.path, token.as_bytes(), 0o644)
}

/// When kubelet refreshes a projected token: at 80 % of its lifetime, and at least daily.
pub fn refresh_after(expiration_seconds: i64) -> Duration {
    let secs = (expiration_seconds.max(1) as f64 * 0.8) as u64;
    Duration::from_secs(secs.min(24 * 3600))
}

async fn config_map(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<Option<BTreeMap<String, Vec<u8>>>> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    Ok(api.get_opt(name).await?.map(|cm| {
        let mut data: BTreeMap<String, Vec<u8>> = cm
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes()))
            .collect();
        data.extend(
            cm.binary_data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0)),
        );
        data
    }))
}

async fn secret(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<Option<BTreeMap<String, Vec<u8>>>> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    Ok(api.get_opt(name).await?.map(|s| {
        s.data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect()
    }))
}

/// The string data of a namespace's ConfigMaps and Secrets that env vars refer to.
pub async fn env_sources(client: &Client, pod: &Pod) -> Result<env::Sources> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut sources = env::Sources {
        node_cpus: 16,
        node_memory: 64 << 30,
        ..Default::default()
    };
    // Owned lists: no iterator adapter lives across the awaits below.
    let containers: Vec<_> = pod
        .spec
        .iter()
        .flat_map(|s| {
            s.init_containers
                .iter()
                .flatten()
                .chain(s.containers.iter())
        })
        .cloned()
        .collect();
    for c in &containers {
        let refs: Vec<_> = c
            .env
            .iter()
            .flatten()
            .filter_map(|e| e.value_from.clone())
            .collect();
        for r in &refs {
            if let Some(k) = &r.config_map_key_ref {
                load(client, ns, &k.name, false, &mut sources).await?;
            }
            if let Some(k) = &r.secret_key_ref {
                load(client, ns, &k.name, true, &mut sources).await?;
            }
        }
        for from in c.env_from.iter().flatten() {
            if let Some(r) = &from.config_map_ref {
                load(client, ns, &r.name, false, &mut sources).await?;
            }
            if let Some(r) = &from.secret_ref {
                load(client, ns, &r.name, true, &mut sources).await?;
            }
        }
    }
    Ok(sources)
}

async fn load(
    client: &Client,
    ns: &str,
    name: &str,
    is_secret: bool,
    sources: &mut env::Sources,
) -> Result<()> {
    let data = match is_secret {
        true => secret(client, ns, name).await?,
        false => config_map(client, ns, name).await?,
    };
    if let Some(data) = data {
        let data = data
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect();
        match is_secret {
            true => sources.secrets.insert(name.into(), data),
            false => sources.config_maps.insert(name.into(), data),
        };
    }
    Ok(())
}

fn write_items(
    dir: &Path,
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
) -> Result<()> {
    match items {
        None => {
            for (k, v) in data {
                write_file(&dir.join(k), v, 0o644)?;
            }
        }
        Some(items) => {
            for item in items {
                let v = data
                    .get(&item.key)
                    .ok_or_else(|| anyhow!("key {:?} does not exist", item.key))?;
                let mode = item.mode.map_or(0o644, |m| m as u32);
                write_file(&dir.join(&item.path), v, mode)?;
            }
        }
    }
    Ok(())
}

fn write_downward(dir: &Path, pod: &Pod, items: &[DownwardAPIVolumeFile]) -> Result<()> {
    for item in items {
        let value = match &item.field_ref {
            Some(f) => env::field(pod, &f.field_path)
                .map_err(|e| anyhow!(e))?
                .unwrap_or_default(),
            None => bail!(
                "downwardAPI item {:?}: only fieldRef is supported",
                item.path
            ),
        };
        write_file(&dir.join(&item.path), value.as_bytes(), 0o644)?;
    }
    Ok(())
}

/// Writes a file through a temporary one and a rename, so a reader sees the old or the new.
pub fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension("oxlink-tmp");
    std::fs::write(&tmp, data)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_refresh_at_four_fifths_of_their_life_and_at_least_daily() {
        assert_eq!(refresh_after(3600), Duration::from_secs(2880));
        assert_eq!(refresh_after(7 * 86400), Duration::from_secs(86400));
    }

    #[test]
    fn items_select_and_rename_keys() {
        let dir = std::env::temp_dir().join(format!("oxlink-volumes-{}", std::process::id()));
        let data: BTreeMap<String, Vec<u8>> = [
            ("a".to_string(), b"1".to_vec()),
            ("b".to_string(), b"2".to_vec()),
        ]
        .into();
        let items = [KeyToPath {
            key: "b".into(),
            path: "sub/x".into(),
            mode: Some(0o600),
        }];
        write_items(&dir, &data, Some(&items)).unwrap();
        assert_eq!(std::fs::read(dir.join("sub/x")).unwrap(), b"2");
        assert!(!dir.join("a").exists());
        let mode = std::fs::metadata(dir.join("sub/x"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let missing = [KeyToPath {
            key: "c".into(),
            path: "c".into(),
            mode: None,
        }];
        let err = write_items(&dir, &data, Some(&missing)).unwrap_err();
        assert_eq!(err.to_string(), "key \"c\" does not exist");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
