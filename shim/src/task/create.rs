//! Create: options, bundle rewriting, rootfs mounts, stdio FIFOs, `runc create`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chaperone_config::Mode;
use containerd_shim::api::{CreateTaskRequest, CreateTaskResponse, Options};
use containerd_shim::mount::umount_recursive;
use containerd_shim::protos::events::task::{TaskCreate, TaskIO};
use containerd_shim::protos::protobuf::Message;
use containerd_shim::util::{mount_rootfs, write_options, write_runtime};
use runc::io::{Io, NullIo, FIFO};
use runc::options::CreateOpts;
use tracing::info;

use super::TaskService;
use crate::bundle;
use crate::container::{Container, Process, Stdio};
use crate::error::{Result, ShimError};
use crate::plan::{load_config, Plan};
use crate::runc::{failure, RuncConfig, INIT_PID_FILE};

impl TaskService {
    pub(super) async fn create_task(&self, req: CreateTaskRequest) -> Result<CreateTaskResponse> {
        if req.terminal {
            return Err(ShimError::Unimplemented {
                what: "a terminal (tty) for the container",
            });
        }
        if !req.checkpoint.is_empty() {
            return Err(ShimError::Unimplemented {
                what: "restoring from a checkpoint",
            });
        }
        let mut containers = self.containers.lock().await;
        if containers.contains_key(&req.id) {
            return Err(ShimError::AlreadyExists {
                what: "container",
                id: req.id.clone(),
            });
        }
        let bundle = PathBuf::from(&req.bundle);
        let options = options_of(&req)?;
        write_options(&bundle, &options)
            .await
            .map_err(|source| ShimError::Shim {
                op: "write the runc options into the bundle",
                source,
            })?;
        write_runtime(&bundle, &options.binary_name)
            .await
            .map_err(|source| ShimError::Shim {
                op: "write the runtime name into the bundle",
                source,
            })?;

        let runc_config = RuncConfig::new(&options, &self.namespace);
        let learner = Arc::clone(&self.learner);
        let id = req.id.clone();
        let dir = bundle.clone();
        let plan = tokio::task::spawn_blocking(move || {
            let config = Arc::new(load_config()?);
            bundle::prepare(
                &dir,
                &id,
                |spec| Plan::resolve(spec, &id, config),
                || learner.socket(),
            )
        })
        .await
        .map_err(|_| ShimError::InvalidRequest {
            reason: "bundle preparation panicked",
        })??;
        let mode = plan.mode;
        if mode != Mode::Off {
            self.learner.register(plan.clone());
        }
        let shared_pid_ns = shares_pid_namespace(&bundle::read_config(&bundle)?);

        let mounted_rootfs = match mount_all(&req, &bundle).await {
            Ok(m) => m,
            Err(e) => {
                self.learner.forget(&req.id);
                return Err(e);
            }
        };
        let runc = runc_config.client(&bundle)?;
        let stdio = Stdio {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let mut init = Process::new(&req.id, stdio.clone());
        let created = create_init(&runc, &bundle, &req.id, &stdio, &options).await;
        let pid = match created {
            Ok(pid) => pid,
            Err(e) => {
                if let Some(rootfs) = &mounted_rootfs {
                    let _ = umount_recursive(rootfs.to_str(), 0);
                }
                self.learner.forget(&req.id);
                return Err(e);
            }
        };
        init.pid = pid;
        info!(container = %req.id, pid, %mode, profile = %plan.key, action = %plan.action, "container created");

        let event = TaskCreate {
            container_id: req.id.clone(),
            bundle: req.bundle.clone(),
            rootfs: req.rootfs.clone(),
            io: Some(TaskIO {
                stdin: stdio.stdin.clone(),
                stdout: stdio.stdout.clone(),
                stderr: stdio.stderr.clone(),
                terminal: stdio.terminal,
                ..Default::default()
            })
            .into(),
            checkpoint: req.checkpoint.clone(),
            pid: init.pid_u32(),
            ..Default::default()
        };
        let response = CreateTaskResponse {
            pid: init.pid_u32(),
            ..Default::default()
        };
        containers.insert(
            req.id.clone(),
            Container {
                id: req.id.clone(),
                bundle,
                runc,
                mode,
                shared_pid_ns,
                mounted_rootfs,
                init,
                execs: Default::default(),
            },
        );
        drop(containers);
        self.publish(event).await;
        Ok(response)
    }
}

/// runc's `Options` from the request (containerd sends them for runc-style runtimes, or when
/// the runtime's config has options), defaults otherwise.
/// The protobuf type of runc's `Options` in a create request.
const RUNC_OPTIONS_TYPE: &str = "containerd.runc.v1.Options";

fn options_of(req: &CreateTaskRequest) -> Result<Options> {
    let Some(any) = req.options.as_ref() else {
        return Ok(Options::default());
    };
    if any.value.is_empty() {
        return Ok(Options::default());
    }
    // Runtimes named io.containerd.runc.* get runc's Options from containerd's client; CRI
    // sends others its generic runtimeoptions, which this shim does not use.
    if !any.type_url.is_empty() && !any.type_url.ends_with(RUNC_OPTIONS_TYPE) {
        tracing::warn!(type_url = %any.type_url, "create options of another type are ignored");
        return Ok(Options::default());
    }
    Options::parse_from_bytes(&any.value).map_err(|source| ShimError::Protobuf {
        what: "the runc options of the create request",
        source,
    })
}

/// Mounts the request's rootfs mounts on `bundle/rootfs`; `None` when there are none (the
/// bundle then brings its own rootfs).
async fn mount_all(req: &CreateTaskRequest, bundle: &Path) -> Result<Option<PathBuf>> {
    if req.rootfs.is_empty() {
        return Ok(None);
    }
    let rootfs = bundle.join("rootfs");
    containerd_shim::util::mkdir(&rootfs, 0o711)
        .await
        .map_err(|source| ShimError::Shim {
            op: "create the rootfs directory",
            source,
        })?;
    for m in &req.rootfs {
        if let Err(source) = mount_rootfs(m, &rootfs).await {
            let _ = umount_recursive(rootfs.to_str(), 0);
            return Err(ShimError::Shim {
                op: "mount the rootfs",
                source,
            });
        }
    }
    Ok(Some(rootfs))
}

/// The stdio runc gives a process: containerd's FIFOs, or /dev/null when none is connected.
pub(super) fn io_of(stdio: &Stdio, bundle: &Path) -> Result<Arc<dyn Io>> {
    if stdio.stdin.is_empty() && stdio.stdout.is_empty() && stdio.stderr.is_empty() {
        return Ok(Arc::new(NullIo::new().map_err(|source| ShimError::Io {
            op: "open /dev/null for",
            path: bundle.to_owned(),
            source,
        })?));
    }
    let fifo = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    Ok(Arc::new(FIFO {
        stdin: fifo(&stdio.stdin),
        stdout: fifo(&stdio.stdout),
        stderr: fifo(&stdio.stderr),
    }))
}

/// `runc create` with the FIFOs as the init's stdio; returns the init pid.
async fn create_init(
    runc: &runc::Runc,
    bundle: &Path,
    id: &str,
    stdio: &Stdio,
    options: &Options,
) -> Result<i32> {
    let io = io_of(stdio, bundle)?;
    let pid_file = bundle.join(INIT_PID_FILE);
    let mut opts = CreateOpts::new()
        .pid_file(&pid_file)
        .no_pivot(options.no_pivot_root)
        .no_new_keyring(options.no_new_keyring);
    opts.io = Some(io);
    runc.create(id, bundle, Some(&opts))
        .await
        .map_err(|e| failure(bundle, "create", id, &e))?;
    let text = tokio::fs::read_to_string(&pid_file)
        .await
        .map_err(|source| ShimError::Io {
            op: "read",
            path: pid_file.clone(),
            source,
        })?;
    text.trim().parse().map_err(|_| ShimError::InvalidRequest {
        reason: "runc wrote an invalid init pid",
    })
}

/// Whether the container joins an existing pid namespace or the host's (it then has no pid
/// namespace of its own to take its processes down when init exits).
fn shares_pid_namespace(config: &serde_json::Value) -> bool {
    let Some(namespaces) = config
        .pointer("/linux/namespaces")
        .and_then(|n| n.as_array())
    else {
        return true;
    };
    !namespaces.iter().any(|ns| {
        ns["type"] == "pid"
            && ns
                .get("path")
                .and_then(|p| p.as_str())
                .is_none_or(str::is_empty)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_private_pid_namespace_is_not_shared() {
        assert!(shares_pid_namespace(&json!({})));
        assert!(!shares_pid_namespace(
            &json!({"linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]}})
        ));
        assert!(shares_pid_namespace(
            &json!({"linux": {"namespaces": [{"type": "pid", "path": "/proc/1/ns/pid"}]}})
        ));
        assert!(shares_pid_namespace(
            &json!({"linux": {"namespaces": [{"type": "mount"}]}})
        ));
    }
}
