//! Exec: an additional process in a running container. Exec records it, Start runs it with
//! `runc exec --detach` (its stdio containerd's FIFOs); the shim reaps it like init, and Kill,
//! Wait, State and Delete address it by exec id.
//!
//! Under chaperone the container's seccomp filter applies to the exec'd process too: runc
//! hands its notify fd to the shim's listener like init's, and it is learned or scored under
//! the container's plan.

use std::sync::Arc;

use containerd_shim::api::{Empty, ExecProcessRequest, Status};
use containerd_shim::protos::events::task::{TaskExecAdded, TaskExecStarted};
use runc::options::ExecOpts;
use tracing::info;

use super::create::{attach, console_socket, io_of};
use super::{init_ready, json_payload, not_found, TaskService};
use crate::console::ConsoleSocket;
use crate::container::{status_name, Process, Stdio};
use crate::error::{Result, ShimError};
use crate::runc::failure;

impl TaskService {
    pub(super) async fn exec_process(&self, req: ExecProcessRequest) -> Result<Empty> {
        valid_exec_id(&req.exec_id)?;
        let spec = exec_spec(&req)?;
        let mut containers = self.containers.lock().await;
        let container = init_ready(&mut containers, &req.id, &[Status::RUNNING], "exec in")?;
        if container.execs.contains_key(&req.exec_id) {
            return Err(ShimError::AlreadyExists {
                what: "exec process",
                id: req.exec_id.clone(),
            });
        }
        let mut process = Process::new(
            &req.exec_id,
            Stdio {
                stdin: req.stdin.clone(),
                stdout: req.stdout.clone(),
                stderr: req.stderr.clone(),
                terminal: req.terminal,
            },
        );
        process.spec = Some(Box::new(spec));
        container.execs.insert(req.exec_id.clone(), process);
        drop(containers);
        self.publish(TaskExecAdded {
            container_id: req.id.clone(),
            exec_id: req.exec_id.clone(),
            ..Default::default()
        })
        .await;
        Ok(Empty::new())
    }

    /// Start of an exec process: `runc exec --detach`; returns its pid.
    pub(super) async fn start_exec(&self, id: &str, exec_id: &str) -> Result<u32> {
        // Held across `runc exec`, as for init: the reaper then sees the pid recorded before it
        // can match a fast process's exit.
        let mut containers = self.containers.lock().await;
        let container = containers.get_mut(id).ok_or_else(|| not_found(id))?;
        let bundle = container.bundle.clone();
        let process =
            container
                .execs
                .get_mut(exec_id)
                .ok_or_else(|| ShimError::ProcessNotFound {
                    id: id.to_owned(),
                    exec_id: exec_id.to_owned(),
                })?;
        let status = process.status();
        let Some(spec) = process.spec.take().filter(|_| status == Status::CREATED) else {
            return Err(ShimError::FailedPrecondition {
                op: "start",
                id: exec_id.to_owned(),
                state: status_name(status),
            });
        };
        let pid_file = bundle.join(format!("exec-{exec_id}.pid"));
        let console = console_socket(&process.stdio)?;
        let io = io_of(&process.stdio, &bundle, (exec_id, &self.namespace)).await?;
        let opts = ExecOpts {
            io: Some(Arc::clone(&io.io)),
            pid_file: Some(pid_file.clone()),
            console_socket: console.as_ref().map(ConsoleSocket::path),
            detach: true,
        };
        let started = container.runc.exec(id, &spec, Some(&opts)).await;
        let process = container
            .execs
            .get_mut(exec_id)
            .ok_or_else(|| not_found(exec_id))?;
        if let Err(e) = started {
            process.set_exited(EXEC_FAILED);
            return Err(failure(&bundle, "exec", id, &e));
        }
        io.started(process);
        if let Err(e) = attach(console, process).await {
            // Without its terminal the process is cut off: end it (the reaper records it).
            if let Ok(text) = tokio::fs::read_to_string(&pid_file).await {
                if let Ok(pid @ 1..) = text.trim().parse::<i32>() {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
            let _ = tokio::fs::remove_file(&pid_file).await;
            process.set_exited(EXEC_FAILED);
            return Err(e);
        }
        let text = tokio::fs::read_to_string(&pid_file).await;
        let _ = tokio::fs::remove_file(&pid_file).await;
        let pid: i32 =
            text.ok()
                .and_then(|t| t.trim().parse().ok())
                .ok_or(ShimError::InvalidRequest {
                    reason: "runc wrote no valid exec pid",
                })?;
        process.pid = pid;
        process.set_running();
        let pid = process.pid_u32();
        info!(container = %id, exec = %exec_id, pid, "exec process started");
        // Queued under the lock: the reaper records an exit under it too, so a process that
        // exits at once has its TaskExit queued after this, as runc-v2 orders them.
        self.publish(TaskExecStarted {
            container_id: id.to_owned(),
            exec_id: exec_id.to_owned(),
            pid,
            ..Default::default()
        })
        .await;
        drop(containers);
        Ok(pid)
    }
}

/// The exit status recorded for an exec process runc could not start (a shell's "command not
/// found"), so that its waiters return.
const EXEC_FAILED: u32 = 127;

/// An exec id is a file-name component here (the pid file): no separators, not `.` or `..`.
fn valid_exec_id(exec_id: &str) -> Result<()> {
    if exec_id.is_empty()
        || exec_id == "."
        || exec_id == ".."
        || exec_id.len() > 128
        || !exec_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(ShimError::InvalidRequest {
            reason: "an exec id must be 1 to 128 of [A-Za-z0-9._-]",
        });
    }
    Ok(())
}

/// The process spec of an exec request. The request decides whether the process gets a
/// terminal, as under runc-v2: clients reuse the container's process spec (terminal false) for
/// an exec with a terminal, and runc refuses a console socket for a spec without one.
fn exec_spec(req: &ExecProcessRequest) -> Result<oci_spec::runtime::Process> {
    let mut spec: oci_spec::runtime::Process = json_payload(
        req.spec.as_ref(),
        "exec without a process spec",
        "OCI process spec",
    )?;
    spec.set_terminal(Some(req.terminal));
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use containerd_shim::protos::protobuf::well_known_types::any::Any;

    use super::*;

    fn request(spec: &str, terminal: bool) -> ExecProcessRequest {
        ExecProcessRequest {
            terminal,
            spec: Some(Any {
                type_url: "types.containerd.io/opencontainers/runtime-spec/1/Process".into(),
                value: spec.as_bytes().to_vec(),
                ..Default::default()
            })
            .into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_request_decides_the_terminal() {
        let spec = r#"{"terminal":false,"user":{"uid":0,"gid":0},"cwd":"/","args":["sh"]}"#;
        assert_eq!(
            exec_spec(&request(spec, true)).unwrap().terminal(),
            Some(true)
        );
        let spec = r#"{"terminal":true,"user":{"uid":0,"gid":0},"cwd":"/","args":["sh"]}"#;
        assert_eq!(
            exec_spec(&request(spec, false)).unwrap().terminal(),
            Some(false)
        );
        exec_spec(&request("{not json", true)).unwrap_err();
    }

    #[test]
    fn exec_ids_are_plain_names() {
        for ok in ["exec-1", "a.b_c", "0123456789abcdef"] {
            valid_exec_id(ok).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "a b", &"x".repeat(129)] {
            valid_exec_id(bad).unwrap_err();
        }
    }
}
