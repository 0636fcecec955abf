//! Container probes, run from the host against the pod IP as kubelet runs them.

use k8s_openapi::{
    api::core::v1::{Container, Probe},
    apimachinery::pkg::util::intstr::IntOrString,
};
use std::{net::Ipv4Addr, time::Duration};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// The outcome of one probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure(String),
}

/// Runs a probe once; `exec` and `grpc` probes are not run and count as successes.
pub async fn run(probe: &Probe, container: &Container, ip: Ipv4Addr) -> Outcome {
    let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
    let attempt = async {
        if let Some(get) = &probe.http_get {
            let port = port(&get.port, container)?;
            let path = get.path.as_deref().unwrap_or("/");
            http_get(ip, port, path).await
        } else if let Some(tcp) = &probe.tcp_socket {
            let port = port(&tcp.port, container)?;
            TcpStream::connect((ip, port))
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        } else {
            Ok(())
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(())) => Outcome::Success,
        Ok(Err(e)) => Outcome::Failure(e),
        Err(_) => Outcome::Failure(format!("timed out after {timeout:?}")),
    }
}

fn port(p: &IntOrString, c: &Container) -> Result<u16, String> {
    match p {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("bad port {n}")),
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| format!("the container has no port named {name:?}")),
    }
}

/// An HTTP/1.1 GET; a status from 200 to 399 is a success.
async fn http_get(ip: Ipv4Addr, port: u16, path: &str) -> Result<(), String> {
    let mut conn = TcpStream::connect((ip, port))
        .await
        .map_err(|e| e.to_string())?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {ip}:{port}\r\nUser-Agent: kube-probe/1.34\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 256];
    let mut n = 0;
    while n < 12 {
        match conn.read(&mut buf[n..]).await.map_err(|e| e.to_string())? {
            0 => break,
            m => n += m,
        }
    }
    let head = String::from_utf8_lossy(&buf[..n]);
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an HTTP response: {head:?}"))?;
    match status {
        200..=399 => Ok(()),
        s => Err(format!("HTTP probe failed with statuscode: {s}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn serve(status: &'static str) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut b = [0u8; 512];
                let _ = s.read(&mut b).await;
                let _ = s
                    .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        port
    }

    fn probe(port: u16) -> (Probe, Container) {
        let probe: Probe = serde_json::from_value(
            serde_json::json!({"httpGet": {"path": "/ready", "port": "admin"}}),
        )
        .unwrap();
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "c", "ports": [{"name": "admin", "containerPort": port}]
        }))
        .unwrap();
        (probe, c)
    }

    #[tokio::test]
    async fn http_probes_pass_on_2xx_and_fail_otherwise() {
        let ok = serve("200 OK").await;
        let (p, c) = probe(ok);
        assert_eq!(run(&p, &c, Ipv4Addr::LOCALHOST).await, Outcome::Success);
        let bad = serve("503 Service Unavailable").await;
        let (p, c) = probe(bad);
        assert_eq!(
            run(&p, &c, Ipv4Addr::LOCALHOST).await,
            Outcome::Failure("HTTP probe failed with statuscode: 503".into())
        );
    }

    #[tokio::test]
    async fn a_named_port_that_does_not_exist_fails_the_probe() {
        let (p, mut c) = probe(1);
        c.ports = None;
        assert_eq!(
            run(&p, &c, Ipv4Addr::LOCALHOST).await,
            Outcome::Failure("the container has no port named \"admin\"".into())
        );
    }
}
