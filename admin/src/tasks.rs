//! The tasks of a running server and how they stop: servers drain, background loops are
//! aborted.

use std::{future::Future, time::Duration};
use tokio::{sync::watch, task::JoinHandle};

/// The tasks one server process (or one in-process test server) runs. Servers are given a
/// shutdown future and stop by themselves when it completes; background tasks (watches,
/// renewals) are aborted. Dropping `Tasks` aborts everything.
#[derive(Debug)]
pub struct Tasks {
    shutdown: watch::Sender<bool>,
    servers: Vec<JoinHandle<()>>,
    background: Vec<JoinHandle<()>>,
}

impl Default for Tasks {
    fn default() -> Self {
        Self {
            shutdown: watch::Sender::new(false),
            servers: Vec::new(),
            background: Vec::new(),
        }
    }
}

impl Tasks {
    /// A future that completes when [`Tasks::shutdown`] begins; give one to each server.
    pub fn signal(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.shutdown.subscribe();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }

    /// The shutdown flag itself, for code that selects on it in many places (long-lived
    /// streams); it turns `true` when [`Tasks::shutdown`] begins.
    pub fn flag(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Runs a server that stops by itself once [`Tasks::signal`] fires.
    pub fn server(&mut self, server: impl Future<Output = ()> + Send + 'static) {
        self.servers.push(tokio::spawn(server));
    }

    /// Runs a background loop, aborted at shutdown.
    pub fn background(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.background.push(tokio::spawn(task));
    }

    /// Takes over a background task that is already running.
    pub fn adopt(&mut self, task: JoinHandle<()>) {
        self.background.push(task);
    }

    /// Tells the servers to stop, gives them `grace` to finish what is in flight, then aborts
    /// them and every background task.
    pub async fn shutdown(mut self, grace: Duration) {
        let _ = self.shutdown.send(true);
        for server in self.servers.drain(..) {
            let abort = server.abort_handle();
            if tokio::time::timeout(grace, server).await.is_err() {
                abort.abort();
            }
        }
        for task in self.background.drain(..) {
            task.abort();
        }
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        for task in self.servers.iter().chain(&self.background) {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    };

    #[tokio::test]
    async fn servers_drain_and_background_tasks_are_aborted() {
        let mut tasks = Tasks::default();
        let drained = Arc::new(AtomicBool::new(false));
        let (signal, flag) = (tasks.signal(), drained.clone());
        tasks.server(async move {
            signal.await;
            flag.store(true, Ordering::Release);
        });
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        tasks.background(async move {
            let _keep = tx;
            std::future::pending::<()>().await
        });
        tasks.shutdown(Duration::from_secs(5)).await;
        assert!(
            drained.load(Ordering::Acquire),
            "the server saw the signal and finished"
        );
        assert!(rx.recv().await.is_none(), "the background task was aborted");
    }

    #[tokio::test]
    async fn a_server_that_ignores_the_signal_is_aborted_after_the_grace() {
        let mut tasks = Tasks::default();
        tasks.server(std::future::pending());
        let started = tokio::time::Instant::now();
        tasks.shutdown(Duration::from_millis(50)).await;
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
