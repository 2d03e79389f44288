//! The Kubernetes path as the kubelet drives it: a private containerd with its CRI plugin, a
//! `runc` runtime handler and the `chaperone` one from `deploy/containerd-runtime.toml`
//! (verbatim but for the config path), a locally built pause image under the configured
//! `sandbox_image` name, and a CRI client over containerd's socket.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::security_profile::ProfileType;
use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, ContainerState, ContainerStatusRequest,
    CreateContainerRequest, ExecSyncRequest, ImageSpec, ImageStatusRequest, LinuxContainerConfig,
    LinuxContainerSecurityContext, LinuxPodSandboxConfig, LinuxSandboxSecurityContext,
    NamespaceMode, NamespaceOption, PodSandboxConfig, PodSandboxMetadata, RemovePodSandboxRequest,
    RunPodSandboxRequest, SecurityProfile, StartContainerRequest, StopContainerRequest,
    StopPodSandboxRequest,
};
use tonic::transport::Channel;

use crate::containerd::{Containerd, CRI_NAMESPACE, CTR_DEADLINE};

/// The runtime handler (`RuntimeClass.handler`) of chaperone in the shipped config fragment.
pub const HANDLER: &str = "chaperone";
/// The stock runc handler, the baseline.
pub const RUNC_HANDLER: &str = "runc";
/// The pause image the CRI plugin is configured with, built locally.
pub const PAUSE_IMAGE: &str = "registry.local/chaperone/pause:itest";
/// The config path in the shipped fragment, replaced by the test's own.
const SHIPPED_CONFIG_PATH: &str = "/etc/chaperone/config.toml";

/// The shipped containerd config fragment (`deploy/containerd-runtime.toml`).
pub fn fragment_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/containerd-runtime.toml")
}

/// The CRI plugin's config for a containerd whose files are under `base`: host-network pods
/// only (no CNI), the pause image, the `runc` handler and chaperone's from the fragment with
/// `chaperone_config` as its config path.
fn cri_config(base: &Path, fragment: &str, chaperone_config: &Path) -> String {
    format!(
        r#"[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # Sandboxes get oom_score_adj -998 otherwise, which a node that is itself a container (as
  # CI's is) may not lower to: keep it no lower than containerd's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni}/bin"
    conf_dir = "{cni}/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "{RUNC_HANDLER}"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{RUNC_HANDLER}]
    runtime_type = "io.containerd.runc.v2"
{fragment}
"#,
        cni = base.join("cni").display(),
        fragment = fragment.replace(SHIPPED_CONFIG_PATH, &chaperone_config.display().to_string()),
    )
}

/// A private containerd with the CRI plugin, the pause and busybox images imported into
/// CRI's namespace, and a CRI client.
#[derive(Debug)]
pub struct CriContainerd {
    /// The containerd (dropped last: it kills what is left).
    pub containerd: Containerd,
    /// Containers get containerd's default seccomp profile (`RuntimeDefault`, as the Pod
    /// Security Standards' `restricted` level requires) instead of none (`Unconfined`, the
    /// kubelet's default).
    pub runtime_default_seccomp: bool,
    runtime: tokio::runtime::Runtime,
    channel: Channel,
    logs: tempfile::TempDir,
}

impl CriContainerd {
    /// Starts containerd with the CRI plugin (`shim_dir` first on its `PATH`), imports the
    /// pause image and `images` (name, files) and connects a CRI client.
    pub fn start(shim_dir: &Path, level: &str, images: &[&str]) -> Result<Self> {
        let fragment = std::fs::read_to_string(fragment_path())
            .with_context(|| format!("reading {}", fragment_path().display()))?;
        let config = |base: &Path| cri_config(base, &fragment, &base.join("chaperone.toml"));
        let containerd = Containerd::start_with(shim_dir, level, Some(&config))?;
        // The pause container only has to live until it is killed.
        containerd.import_image_in(
            CRI_NAMESPACE,
            PAUSE_IMAGE,
            &[],
            &["/bin/sleep", "2147483647"],
        )?;
        for image in images {
            containerd.import_image_in(CRI_NAMESPACE, image, &[], &["/bin/sh"])?;
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        // CRI is served on containerd's gRPC socket: connect as the shim's image lookup does.
        let channel = runtime
            .block_on(containerd_client::connect(containerd.socket()))
            .context("connecting the CRI client")?;
        let logs = tempfile::Builder::new().prefix("chp-cri-logs").tempdir()?;
        let me = Self {
            containerd,
            runtime_default_seccomp: false,
            runtime,
            channel,
            logs,
        };
        // The CRI plugin learns about imported images from containerd's events: wait until
        // it sees them, as the kubelet would wait for a pull.
        for image in std::iter::once(&PAUSE_IMAGE).chain(images) {
            crate::containerd::wait_for("CRI to see the image", Duration::from_secs(30), || {
                me.image_known(image).ok().filter(|known| *known)
            })?;
        }
        Ok(me)
    }

    fn rt(&self) -> RuntimeServiceClient<Channel> {
        RuntimeServiceClient::new(self.channel.clone())
    }

    /// Runs CRI call `what` to its reply, within `CTR_DEADLINE` (a hung containerd or shim
    /// fails the test rather than stalling the suite); a refusal names the call, its gRPC code
    /// and message.
    fn call<T>(
        &self,
        what: &str,
        call: impl std::future::Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T> {
        self.runtime
            // The timer is made inside the runtime (a `timeout` made outside it panics).
            .block_on(async { tokio::time::timeout(CTR_DEADLINE, call).await })
            .map_err(|_| anyhow::anyhow!("{what}: no reply within {CTR_DEADLINE:?}"))?
            .map(tonic::Response::into_inner)
            .map_err(|s| anyhow::anyhow!("{what}: {}: {}", s.code(), s.message()))
    }

    fn image_known(&self, image: &str) -> Result<bool> {
        let mut client = ImageServiceClient::new(self.channel.clone());
        let status = self
            .runtime
            .block_on(client.image_status(ImageStatusRequest {
                image: Some(ImageSpec {
                    image: image.to_owned(),
                    ..Default::default()
                }),
                verbose: false,
            }))?;
        Ok(status.into_inner().image.is_some())
    }

    /// A host-network pod's sandbox config, named `name` in namespace `namespace`.
    pub fn pod_config(
        &self,
        namespace: &str,
        name: &str,
        annotations: &[(&str, &str)],
    ) -> PodSandboxConfig {
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.to_owned(),
                uid: format!("uid-{namespace}-{name}"),
                namespace: namespace.to_owned(),
                attempt: 0,
            }),
            // Host-network pods share the node's UTS namespace: the kubelet sets no hostname.
            hostname: String::new(),
            log_directory: self.logs.path().join(name).display().to_string(),
            annotations: to_map(annotations),
            linux: Some(LinuxPodSandboxConfig {
                // As the kubelet does, a parent for the pod's cgroups: this containerd's own
                // namespace, whose cgroup its teardown removes (without one, containerd puts
                // them under a host-wide `/k8s.io` that stays).
                cgroup_parent: format!("/{}", self.containerd.namespace()),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        network: NamespaceMode::Node as i32,
                        pid: NamespaceMode::Container as i32,
                        ipc: NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// RunPodSandbox with `handler`; the pod's id.
    pub fn run_pod(&self, config: &PodSandboxConfig, handler: &str) -> Result<String> {
        let reply = self.call(
            &format!("RunPodSandbox ({handler})"),
            self.rt().run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: handler.to_owned(),
            }),
        )?;
        Ok(reply.pod_sandbox_id)
    }

    /// CreateContainer `name` of `image` running `command` in pod `pod`; its id.
    pub fn create_container(
        &self,
        pod: &str,
        pod_config: &PodSandboxConfig,
        name: &str,
        image: &str,
        command: &[&str],
    ) -> Result<String> {
        let config = ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: name.to_owned(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: image.to_owned(),
                ..Default::default()
            }),
            command: command.iter().map(|s| (*s).to_owned()).collect(),
            log_path: format!("{name}.log"),
            linux: self.runtime_default_seccomp.then(|| LinuxContainerConfig {
                security_context: Some(LinuxContainerSecurityContext {
                    seccomp: Some(SecurityProfile {
                        profile_type: ProfileType::RuntimeDefault as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let reply = self.call(
            &format!("CreateContainer {name}"),
            self.rt().create_container(CreateContainerRequest {
                pod_sandbox_id: pod.to_owned(),
                config: Some(config),
                sandbox_config: Some(pod_config.clone()),
            }),
        )?;
        Ok(reply.container_id)
    }

    /// StartContainer.
    pub fn start_container(&self, id: &str) -> Result<()> {
        self.call(
            "StartContainer",
            self.rt().start_container(StartContainerRequest {
                container_id: id.to_owned(),
            }),
        )?;
        Ok(())
    }

    /// ExecSync: (exit code, stdout).
    pub fn exec_sync(&self, id: &str, cmd: &[&str]) -> Result<(i32, String)> {
        let reply = self.call(
            "ExecSync",
            self.rt().exec_sync(ExecSyncRequest {
                container_id: id.to_owned(),
                cmd: cmd.iter().map(|s| (*s).to_owned()).collect(),
                timeout: 30,
            }),
        )?;
        Ok((
            reply.exit_code,
            String::from_utf8_lossy(&reply.stdout).into_owned(),
        ))
    }

    /// ContainerStatus: (state, exit code).
    pub fn container_state(&self, id: &str) -> Result<(ContainerState, i32)> {
        let status = self
            .call(
                "ContainerStatus",
                self.rt().container_status(ContainerStatusRequest {
                    container_id: id.to_owned(),
                    verbose: false,
                }),
            )?
            .status
            .context("ContainerStatus without a status")?;
        let state = ContainerState::try_from(status.state).context("unknown container state")?;
        Ok((state, status.exit_code))
    }

    /// Waits until container `id` reaches `state`; its exit code.
    pub fn wait_state(&self, id: &str, state: ContainerState, timeout: Duration) -> Result<i32> {
        crate::containerd::wait_for("the container's state", timeout, || {
            self.container_state(id)
                .ok()
                .filter(|(s, _)| *s == state)
                .map(|(_, code)| code)
        })
    }

    /// StopContainer (SIGTERM, then SIGKILL after `grace` seconds).
    pub fn stop_container(&self, id: &str, grace: i64) -> Result<()> {
        self.call(
            "StopContainer",
            self.rt().stop_container(StopContainerRequest {
                container_id: id.to_owned(),
                timeout: grace,
            }),
        )?;
        Ok(())
    }

    /// StopPodSandbox then RemovePodSandbox (which removes its containers too).
    pub fn remove_pod(&self, pod: &str) -> Result<()> {
        self.call(
            "StopPodSandbox",
            self.rt().stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: pod.to_owned(),
            }),
        )?;
        self.call(
            "RemovePodSandbox",
            self.rt().remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: pod.to_owned(),
            }),
        )?;
        Ok(())
    }

    /// Starts a pod of `handler` with `containers` (name, command) of `image`, as the kubelet
    /// does: RunPodSandbox, then CreateContainer and StartContainer for each in turn. The pod's
    /// and containers' ids, and how long each step took.
    pub fn start_pod(
        &self,
        handler: &str,
        config: &PodSandboxConfig,
        image: &str,
        containers: &[(&str, &[&str])],
    ) -> Result<(Pod, Steps)> {
        let mut steps = Steps::default();
        let mut clock = Instant::now();
        let mut lap = |into: &mut Duration| {
            *into += clock.elapsed();
            clock = Instant::now();
        };
        let id = self.run_pod(config, handler)?;
        lap(&mut steps.sandbox);
        let mut pod = Pod {
            id,
            containers: Vec::new(),
        };
        for (name, command) in containers {
            let started = self
                .create_container(&pod.id, config, name, image, command)
                .inspect(|_| lap(&mut steps.create))
                .and_then(|c| {
                    pod.containers.push(c.clone());
                    self.start_container(&c)
                });
            if let Err(e) = started {
                let _ = self.remove_pod(&pod.id);
                return Err(e);
            }
            lap(&mut steps.start);
        }
        Ok((pod, steps))
    }
}

/// How long the steps of a pod start took.
#[derive(Debug, Clone, Copy, Default)]
pub struct Steps {
    /// RunPodSandbox (the shim's start and the sandbox container's).
    pub sandbox: Duration,
    /// The CreateContainer calls together.
    pub create: Duration,
    /// The StartContainer calls together.
    pub start: Duration,
}

impl Steps {
    /// The whole start, first request to last reply.
    pub fn total(&self) -> Duration {
        self.sandbox + self.create + self.start
    }
}

/// A pod's ids.
#[derive(Debug, Clone)]
pub struct Pod {
    /// The sandbox id.
    pub id: String,
    /// Its containers' ids, in the order they were created.
    pub containers: Vec<String>,
}

/// Removes a pod through CRI even when the test fails.
#[derive(Debug)]
pub struct PodGuard<'a>(pub &'a CriContainerd, pub String);

impl Drop for PodGuard<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.0.remove_pod(&self.1) {
            // Already removed by the test is fine; anything else is reported.
            if !e.to_string().contains("not found") {
                eprintln!("removing pod {}: {e:#}", self.1);
            }
        }
    }
}

fn to_map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Fails unless `result` is a CRI error whose message contains `needle`.
pub fn expect_refused<T: std::fmt::Debug>(result: Result<T>, needle: &str) -> Result<String> {
    match result {
        Ok(v) => bail!("expected a refusal mentioning {needle:?}, got {v:?}"),
        Err(e) if e.to_string().contains(needle) => Ok(e.to_string()),
        Err(e) => bail!("expected a refusal mentioning {needle:?}, got: {e:#}"),
    }
}

/// Pod start latencies of one handler.
#[derive(Debug, Clone, Default)]
pub struct PodStarts {
    /// The steps of each start, one per round.
    pub steps: Vec<Steps>,
}

impl PodStarts {
    /// Median milliseconds of the whole start and of its steps (sandbox, create, start).
    pub fn medians_ms(&self) -> [f64; 4] {
        use crate::throughput::median;
        let of = |f: fn(&Steps) -> Duration| {
            median(
                &self
                    .steps
                    .iter()
                    .map(|s| f(s).as_secs_f64())
                    .collect::<Vec<_>>(),
            ) * 1e3
        };
        [
            of(Steps::total),
            of(|s| s.sandbox),
            of(|s| s.create),
            of(|s| s.start),
        ]
    }
}

/// What [`bench_pod_start`] measured.
#[derive(Debug, Clone)]
pub struct PodStartReport {
    /// The runc handler's starts (the baseline).
    pub runc: PodStarts,
    /// chaperone's.
    pub chaperone: PodStarts,
}

impl PodStartReport {
    /// chaperone's median start latency over runc's (1.0: as fast; 1.10: 10 % slower).
    pub fn ratio(&self) -> f64 {
        self.chaperone.medians_ms()[0] / self.runc.medians_ms()[0]
    }

    /// One JSON object with the medians and the ratio.
    pub fn to_json(&self) -> serde_json::Value {
        let [runc, runc_sandbox, runc_create, runc_start] = self.runc.medians_ms();
        let [chp, chp_sandbox, chp_create, chp_start] = self.chaperone.medians_ms();
        serde_json::json!({
            "pod_start_runc_ms": runc,
            "pod_start_chaperone_ms": chp,
            "pod_start_vs_runc": self.ratio(),
            "pod_start_rounds": self.runc.steps.len(),
            "pod_start_steps_ms": {
                "runc": {"sandbox": runc_sandbox, "create": runc_create, "start": runc_start},
                "chaperone": {"sandbox": chp_sandbox, "create": chp_create, "start": chp_start},
            },
        })
    }
}

/// The two long-running containers of the benchmark's pod.
const BENCH_CONTAINERS: &[(&str, &[&str])] = &[
    (
        "app",
        &[
            "/bin/sh",
            "-c",
            "trap 'exit 0' TERM; while :; do sleep 1 & wait; done",
        ],
    ),
    (
        "sidecar",
        &[
            "/bin/sh",
            "-c",
            "trap 'exit 0' TERM; while :; do sleep 1 & wait; done",
        ],
    ),
];

/// Pod start latency through CRI, as the kubelet sees it (RunPodSandbox, then CreateContainer
/// and StartContainer of two containers): `rounds` pods under each handler, the order
/// alternating round by round, each pod removed (untimed) before the next. `warm_up` untimed
/// pods of each handler come first.
pub fn bench_pod_start(
    cri: &CriContainerd,
    image: &str,
    rounds: usize,
    warm_up: usize,
    mut progress: impl FnMut(&str),
) -> Result<PodStartReport> {
    let mut report = PodStartReport {
        runc: PodStarts::default(),
        chaperone: PodStarts::default(),
    };
    for round in 0..warm_up + rounds {
        let order = if round % 2 == 0 {
            [RUNC_HANDLER, HANDLER]
        } else {
            [HANDLER, RUNC_HANDLER]
        };
        for handler in order {
            let config = cri.pod_config("bench", &format!("pod-{handler}-{round}"), &[]);
            let (pod, steps) = cri.start_pod(handler, &config, image, BENCH_CONTAINERS)?;
            let removed = cri.remove_pod(&pod.id);
            removed.with_context(|| format!("removing the {handler} pod"))?;
            if round < warm_up {
                continue;
            }
            progress(&format!(
                "round {}/{rounds}: {handler} pod started in {:.1} ms",
                round - warm_up + 1,
                steps.total().as_secs_f64() * 1e3
            ));
            let starts = if handler == HANDLER {
                &mut report.chaperone
            } else {
                &mut report.runc
            };
            starts.steps.push(steps);
        }
    }
    Ok(report)
}
