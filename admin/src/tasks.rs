//! The tasks of a running server and how they stop: servers drain, background loops are
//! aborted. A task that ends on its own makes the process not live.

use crate::Liveness;
use futures::FutureExt;
use std::{future::Future, panic::AssertUnwindSafe, time::Duration};
use tokio::{
    sync::watch,
    task::{AbortHandle, JoinHandle},
};

/// The tasks one server process (or one in-process test server) runs. Servers are given a
/// shutdown future and stop by themselves when it completes; background tasks (watches,
/// renewals) are aborted. Each task is named: one that returns or panics before shutdown
/// makes [`Tasks::liveness`] fail with its name. Dropping `Tasks` aborts everything.
#[derive(Debug)]
pub struct Tasks {
    shutdown: watch::Sender<bool>,
    servers: Vec<JoinHandle<()>>,
    background: Vec<AbortHandle>,
    live: Liveness,
}

impl Default for Tasks {
    fn default() -> Self {
        Self {
            shutdown: watch::Sender::new(false),
            servers: Vec::new(),
            background: Vec::new(),
            live: Liveness::default(),
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

    /// Whether every task is still running; the admin server's `/live`.
    pub fn liveness(&self) -> Liveness {
        self.live.clone()
    }

    /// Runs the server `name` (e.g. "the gRPC server"), which stops by itself once
    /// [`Tasks::signal`] fires.
    pub fn server(
        &mut self,
        name: &'static str,
        server: impl Future<Output = ()> + Send + 'static,
    ) {
        let monitored = self.monitored(name, server);
        self.servers.push(tokio::spawn(monitored));
    }

    /// Runs the background loop `name` (e.g. "the Pod watch"), aborted at shutdown. It must
    /// not end before.
    pub fn background(
        &mut self,
        name: &'static str,
        task: impl Future<Output = ()> + Send + 'static,
    ) {
        let monitored = self.monitored(name, task);
        self.background.push(tokio::spawn(monitored).abort_handle());
    }

    /// A task that is meant to finish (a one-time sync), aborted at shutdown if it has not.
    pub fn once(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.background.push(tokio::spawn(task).abort_handle());
    }

    /// Takes over the background loop `name`, already running.
    pub fn adopt(&mut self, name: &'static str, task: JoinHandle<()>) {
        self.background.push(task.abort_handle());
        let (live, stopping) = (self.live.clone(), self.shutdown.subscribe());
        tokio::spawn(async move {
            let why = match task.await {
                Ok(()) => format!("{name} ended"),
                Err(error) if error.is_panic() => {
                    format!("{name} panicked: {}", panic_message(error.into_panic()))
                }
                Err(_) => return,
            };
            if !*stopping.borrow() {
                live.died(why);
            }
        });
    }

    fn monitored(
        &self,
        name: &'static str,
        task: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = ()> + Send + 'static {
        let (live, stopping) = (self.live.clone(), self.shutdown.subscribe());
        async move {
            let why = match AssertUnwindSafe(task).catch_unwind().await {
                Ok(()) => format!("{name} ended"),
                Err(panic) => format!("{name} panicked: {}", panic_message(panic)),
            };
            if !*stopping.borrow() {
                live.died(why);
            }
        }
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

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

impl Drop for Tasks {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        for task in &self.servers {
            task.abort();
        }
        for task in &self.background {
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
        let live = tasks.liveness();
        let drained = Arc::new(AtomicBool::new(false));
        let (signal, flag) = (tasks.signal(), drained.clone());
        tasks.server("the server", async move {
            signal.await;
            flag.store(true, Ordering::Release);
        });
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        tasks.background("the loop", async move {
            let _keep = tx;
            std::future::pending::<()>().await
        });
        tasks.shutdown(Duration::from_secs(5)).await;
        assert!(
            drained.load(Ordering::Acquire),
            "the server saw the signal and finished"
        );
        assert!(rx.recv().await.is_none(), "the background task was aborted");
        assert_eq!(live.dead(), None, "stopping at shutdown is not dying");
    }

    #[tokio::test]
    async fn a_server_that_ignores_the_signal_is_aborted_after_the_grace() {
        let mut tasks = Tasks::default();
        tasks.server("the server", std::future::pending());
        let started = tokio::time::Instant::now();
        tasks.shutdown(Duration::from_millis(50)).await;
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    async fn dead(live: &Liveness) -> String {
        for _ in 0..500 {
            if let Some(why) = live.dead() {
                return why;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the process stayed live");
    }

    #[tokio::test]
    async fn a_task_that_ends_or_panics_makes_the_process_not_live() {
        let mut tasks = Tasks::default();
        let live = tasks.liveness();
        tasks.once(async {});
        tasks.background("the idle loop", std::future::pending());
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(live.is_live(), "a one-time task may finish");
        tasks.background("the Pod watch", async {});
        assert_eq!(dead(&live).await, "the Pod watch ended");

        let mut tasks = Tasks::default();
        let live = tasks.liveness();
        tasks.adopt(
            "the certificate renewal",
            tokio::spawn(async { panic!("no key") }),
        );
        assert_eq!(
            dead(&live).await,
            "the certificate renewal panicked: no key"
        );

        let mut tasks = Tasks::default();
        let live = tasks.liveness();
        tasks.server("the gRPC server", async {
            panic!("{}", String::from("bind"))
        });
        assert_eq!(dead(&live).await, "the gRPC server panicked: bind");
    }
}
