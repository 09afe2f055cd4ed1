//! One test's containers on its own Docker network.
//!
//! Containers are named `<prefix>-<role>` (the prefix has the process id and a timestamp, so
//! concurrent test processes never collide) and reach each other by those names on the
//! network `<prefix>`. Only the ports a test asks for are published, on 127.0.0.1 with a free
//! host port. Every container carries the label `cdc-integration-tests=<prefix>`.
//!
//! Clean-up is testcontainers' drop: each container is removed (with its anonymous volumes)
//! when the [`Topology`] is dropped, on success and on failure alike, and the network with
//! the last of them. When the test fails (a panic, or [`Topology::finish`] with an error), the
//! last lines of every container's log are printed first.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use testcontainers::bollard::models::PortBinding;
use testcontainers::core::logs::LogFrame;
use testcontainers::core::{ContainerPort, IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, ContainerRequest, GenericImage, Image, ImageExt};

use crate::images::ImageRef;
use crate::{docker, DEADLINE};

/// Label on every container of the suite (value: the topology's prefix), for
/// `docker rm -f $(docker ps -aq --filter label=cdc-integration-tests)` after a test process
/// was killed before it could clean up.
pub const LABEL: &str = "cdc-integration-tests";

/// How many log lines of each container a failure prints.
const LOG_TAIL: usize = 40;
/// Bytes of start-up log kept per container, for the error when it never becomes ready.
const START_LOG_BYTES: usize = 16 * 1024;

/// A started container and what the test knows about it.
pub struct Service {
    pub role: String,
    /// Container name: the host name other containers use.
    pub name: String,
    container: ContainerAsync<GenericImage>,
    /// How often it was (re)started, for counting start-up log lines.
    pub starts: usize,
}

impl Service {
    pub fn id(&self) -> &str {
        self.container.id()
    }

    /// The 127.0.0.1 port `port` of the container is published on.
    pub async fn host_port(&self, port: u16) -> anyhow::Result<u16> {
        self.container.get_host_port_ipv4(port.tcp()).await.with_context(|| format!("the host port of {}:{port}", self.role))
    }

    /// stdout and stderr so far, of every run of the container.
    pub async fn logs(&self) -> anyhow::Result<String> {
        let out = self.container.stdout_to_vec().await.with_context(|| format!("reading the stdout of {}", self.role))?;
        let err = self.container.stderr_to_vec().await.with_context(|| format!("reading the stderr of {}", self.role))?;
        Ok(format!("{}{}", String::from_utf8_lossy(&out), String::from_utf8_lossy(&err)))
    }

    pub async fn is_running(&self) -> anyhow::Result<bool> {
        self.container.is_running().await.with_context(|| format!("inspecting {}", self.role))
    }
}

/// A test's network and containers.
pub struct Topology {
    prefix: String,
    services: Vec<Service>,
    failed: bool,
}

impl Topology {
    /// A new, empty topology for the test `test` (the network is created with the first
    /// container).
    pub fn new(test: &str) -> Topology {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().subsec_nanos();
        Topology { prefix: format!("cdc-it-{test}-{}-{nanos:08x}", std::process::id()), services: Vec::new(), failed: false }
    }

    pub fn network(&self) -> &str {
        &self.prefix
    }

    /// The container name a role gets (usable before it is started, for other containers'
    /// settings).
    pub fn host(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    /// Starts `request` as `role` on the network, publishing `publish` on 127.0.0.1, and waits
    /// for its ready conditions. An error carries the container's start-up log.
    pub async fn start(&mut self, role: &str, request: impl Into<ContainerRequest<GenericImage>>, publish: &[u16]) -> anyhow::Result<&Service> {
        let name = self.host(role);
        let log = Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = log.clone();
        let bindings: HashMap<String, Option<Vec<PortBinding>>> = publish
            .iter()
            .map(|port| (format!("{port}/tcp"), Some(vec![PortBinding { host_ip: Some("127.0.0.1".into()), host_port: Some(String::new()) }])))
            .collect();
        let exposed: Vec<ContainerPort> = publish.iter().map(|p| p.tcp()).collect();
        let mut request: ContainerRequest<GenericImage> = request.into();
        for port in exposed {
            // Exposed but bound by the modifier below (127.0.0.1, any free port).
            request = request.with_mapped_port(0, port);
        }
        let request = request
            .with_network(self.prefix.clone())
            .with_container_name(name.clone())
            .with_label(LABEL, self.prefix.clone())
            .with_startup_timeout(DEADLINE)
            .with_host_config_modifier(move |config| {
                config.publish_all_ports = Some(false);
                config.port_bindings = Some(bindings.clone());
            })
            .with_log_consumer(move |frame: &LogFrame| {
                let bytes = match frame {
                    LogFrame::StdOut(b) | LogFrame::StdErr(b) => b,
                };
                let mut kept = sink.lock().unwrap_or_else(|e| e.into_inner());
                kept.extend_from_slice(bytes);
                let excess = kept.len().saturating_sub(START_LOG_BYTES);
                kept.drain(..excess);
            });
        let image = format!("{}:{}", request.image().name(), request.image().tag());
        match request.start().await {
            Ok(container) => {
                self.services.push(Service { role: role.to_owned(), name, container, starts: 1 });
                Ok(self.services.last().expect("just pushed"))
            }
            Err(e) => {
                // Give the log consumer a moment to receive the last frames.
                tokio::time::sleep(Duration::from_millis(200)).await;
                let log = String::from_utf8_lossy(&log.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
                bail!("starting {role} ({image}) failed: {e}\n--- its log ---\n{}", tail(&log, LOG_TAIL))
            }
        }
    }

    pub fn service(&self, role: &str) -> &Service {
        self.services.iter().find(|s| s.role == role).unwrap_or_else(|| panic!("no service {role} in this topology"))
    }

    fn service_mut(&mut self, role: &str) -> &mut Service {
        self.services.iter_mut().find(|s| s.role == role).unwrap_or_else(|| panic!("no service {role} in this topology"))
    }

    /// The gateway address of the network on the host: where containers reach a server the
    /// test runs (bind it to this address).
    pub fn gateway(&self) -> anyhow::Result<std::net::IpAddr> {
        let text = docker(&["network", "inspect", "--format", "{{range .IPAM.Config}}{{.Gateway}} {{end}}", &self.prefix])?;
        text.split_whitespace()
            .filter_map(|ip| ip.parse().ok())
            .find(std::net::IpAddr::is_ipv4)
            .with_context(|| format!("network {} has no IPv4 gateway ({text:?})", self.prefix))
    }

    /// SIGKILL (a crash: no shutdown path runs), then start the same container again (same
    /// file system, same settings).
    pub async fn kill_and_restart(&mut self, role: &str) -> anyhow::Result<()> {
        let id = self.service(role).id().to_owned();
        docker(&["kill", "--signal", "KILL", &id]).with_context(|| format!("killing {role}"))?;
        self.restart_stopped(role).await
    }

    /// `docker stop` (SIGTERM, a graceful stop, SIGKILL after 30 s), then start again.
    pub async fn stop_and_restart(&mut self, role: &str) -> anyhow::Result<()> {
        let service = self.service(role);
        service.container.stop_with_timeout(Some(30)).await.with_context(|| format!("stopping {role}"))?;
        self.restart_stopped(role).await
    }

    /// Stops `role` gracefully (SIGTERM; SIGKILL after 30 s) and returns its exit code.
    pub async fn stop(&self, role: &str) -> anyhow::Result<i64> {
        let service = self.service(role);
        service.container.stop_with_timeout(Some(30)).await.with_context(|| format!("stopping {role}"))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(code) = service.container.exit_code().await.with_context(|| format!("inspecting {role}"))? {
                return Ok(code);
            }
            if Instant::now() > deadline {
                bail!("{role} still runs 30 s after it was stopped");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn restart_stopped(&mut self, role: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.service(role).is_running().await? {
            if Instant::now() > deadline {
                bail!("{role} still runs 30 s after it was stopped");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let service = self.service_mut(role);
        service.container.start().await.with_context(|| format!("starting {role} again"))?;
        service.starts += 1;
        Ok(())
    }

    /// Waits until `role` has logged `needle` in its current run: at least as many times as it
    /// was started (for a line every start logs once). Fails early when it stopped running.
    pub async fn wait_for_start_log(&self, role: &str, needle: &str) -> anyhow::Result<()> {
        let service = self.service(role);
        let wanted = service.starts;
        let deadline = Instant::now() + DEADLINE;
        loop {
            let logs = service.logs().await?;
            if logs.matches(needle).count() >= wanted {
                return Ok(());
            }
            if !service.is_running().await? {
                bail!("{role} exited before logging {needle:?} (start {wanted}); its log:\n{}", tail(&logs, LOG_TAIL));
            }
            if Instant::now() > deadline {
                bail!("{role} did not log {needle:?} (start {wanted}) within {} s", DEADLINE.as_secs());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Fails when a service that should run has stopped (a crash the test did not cause).
    pub async fn check_running(&self) -> anyhow::Result<()> {
        for service in &self.services {
            if !service.is_running().await? {
                bail!("{} ({}) is not running", service.role, service.name);
            }
        }
        Ok(())
    }

    /// Prints the last lines of every container's log (stdout and stderr, all runs).
    pub fn print_logs(&self) {
        for service in &self.services {
            let logs = match std::process::Command::new("docker").args(["logs", "--tail", &LOG_TAIL.to_string(), service.id()]).output() {
                Ok(out) => format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
                Err(e) => format!("(docker logs failed: {e})"),
            };
            eprintln!("----- last {LOG_TAIL} log lines of {} ({}) -----\n{}", service.role, service.name, logs.trim_end());
        }
    }

    /// Ends the test: on an error, prints every container's log and panics with the error
    /// (the containers are removed as the topology drops during unwinding).
    pub fn finish(mut self, result: anyhow::Result<()>) {
        if let Err(error) = result {
            self.failed = true;
            self.print_logs();
            panic!("{error:#}");
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        // A panic inside the test (an assertion) rather than an error given to `finish`.
        if std::thread::panicking() && !self.failed {
            self.print_logs();
        }
    }
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// An image of ours (`cdc/<function>:<tag>`), ready when its stderr has `ready_line`.
pub fn function_image(image: &ImageRef, ready_line: &str) -> GenericImage {
    GenericImage::new(image.name.clone(), image.tag.clone()).with_wait_for(WaitFor::message_on_stderr(ready_line))
}
