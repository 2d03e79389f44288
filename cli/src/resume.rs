//! `chaperone resume ID`: thaws a container that the `pause` action froze.
//!
//! containerd records where each task's shim listens in
//! `STATE/io.containerd.runtime.v2.task/NAMESPACE/ID/address`; this asks that shim to resume the
//! task over ttrpc, as containerd itself does for `ctr task resume`. The shim runs `runc resume`,
//! marks the task running and publishes TaskResumed, so containerd's view stays right.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use containerd_shim_protos::api::ResumeRequest;
use containerd_shim_protos::ttrpc::context::with_duration;
use containerd_shim_protos::{Client, TaskClient};

use crate::out::{outln, usage};

/// How long the shim has to answer.
const TIMEOUT: Duration = Duration::from_secs(10);

/// `chaperone resume` arguments.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Exit status: 0 the container runs again; 1 it could not be resumed (no such task in the \
namespace, its shim unreachable, or the shim refused, e.g. because it is not paused); 2 bad usage.")]
pub struct ResumeArgs {
    /// The container id (as in `ctr tasks ls` or `crictl ps`).
    id: String,
    /// containerd namespace of the container (Kubernetes uses k8s.io); an empty
    /// CONTAINERD_NAMESPACE counts as unset, as for ctr.
    #[arg(
        long,
        short = 'n',
        env = "CONTAINERD_NAMESPACE",
        default_value = "default",
        value_parser = namespace_or_default
    )]
    namespace: String,
    /// containerd's state directory (`state` in its config).
    #[arg(long, value_name = "DIR", default_value = "/run/containerd")]
    state: PathBuf,
}

/// `value`, or containerd's `default` namespace when it is empty (`CONTAINERD_NAMESPACE=`, which
/// ctr reads as unset).
fn namespace_or_default(value: &str) -> Result<String, std::convert::Infallible> {
    Ok(if value.is_empty() { "default" } else { value }.to_owned())
}

/// A path component containerd would accept as an id or namespace: no separators, not `.`/`..`.
fn plain(what: &str, value: &str) -> Result<()> {
    if value.is_empty() || value == "." || value == ".." || value.contains(['/', '\0']) {
        usage!("{what} {value:?} is not a valid containerd {what}");
    }
    Ok(())
}

/// Where the shim of task `id` listens, from containerd's state directory.
fn shim_address(args: &ResumeArgs) -> Result<String> {
    plain("id", &args.id)?;
    plain("namespace", &args.namespace)?;
    let file = args
        .state
        .join("io.containerd.runtime.v2.task")
        .join(&args.namespace)
        .join(&args.id)
        .join("address");
    let address = match std::fs::read_to_string(&file) {
        Ok(a) => a.trim().to_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "no task {:?} in namespace {:?} (no {}); check --namespace (Kubernetes uses k8s.io) and --state",
            args.id,
            args.namespace,
            file.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    };
    if !address.starts_with("unix://") {
        bail!(
            "{}: {address:?} is not a unix socket address",
            file.display()
        );
    }
    Ok(address)
}

/// Runs `chaperone resume`.
pub fn run(args: &ResumeArgs) -> Result<()> {
    let address = shim_address(args)?;
    let client = Client::connect(&address)
        .with_context(|| format!("connecting to the shim of {} at {address}", args.id))?;
    let task = TaskClient::new(client);
    let req = ResumeRequest {
        id: args.id.clone(),
        ..Default::default()
    };
    task.resume(with_duration(TIMEOUT), &req)
        .with_context(|| format!("the shim did not resume {}", args.id))?;
    outln!("resumed {}", args.id)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(state: PathBuf, id: &str, namespace: &str) -> ResumeArgs {
        ResumeArgs {
            id: id.to_owned(),
            namespace: namespace.to_owned(),
            state,
        }
    }

    #[test]
    fn the_address_comes_from_containerds_state_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("io.containerd.runtime.v2.task/k8s.io/abc");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("address"), "unix:///run/containerd/s/1234\n").unwrap();
        let a = args(tmp.path().to_owned(), "abc", "k8s.io");
        assert_eq!(shim_address(&a).unwrap(), "unix:///run/containerd/s/1234");

        let missing = shim_address(&args(tmp.path().to_owned(), "abc", "default")).unwrap_err();
        assert!(missing.to_string().contains("k8s.io"), "{missing}");
        for (id, ns) in [("../abc", "k8s.io"), ("abc", ".."), ("", "k8s.io")] {
            let err = shim_address(&args(tmp.path().to_owned(), id, ns)).unwrap_err();
            assert!(err.to_string().contains("not a valid"), "{err}");
            // A usage error: exit 2.
            assert!(err.downcast_ref::<crate::out::Usage>().is_some(), "{err}");
        }
        std::fs::write(dir.join("address"), "tcp://1.2.3.4:5").unwrap();
        let err = shim_address(&a).unwrap_err();
        assert!(err.to_string().contains("not a unix socket"), "{err}");
    }
}
