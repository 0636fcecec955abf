//! Names of the control plane's own objects: namespace, ServiceAccounts, Services, Secrets,
//! ConfigMaps, their keys, ports and identity audiences.
