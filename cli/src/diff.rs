//! `chaperone diff OLD NEW`: what changed between two learned profiles, with a CI gate.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use chaperone_seccomp_gen::diff::{diff, Change, ChangeKind, FailOn};

use crate::export::read_profile;
use crate::out::outln;

/// The exit status when a change matches `--fail-on`.
pub const POLICY_FAILURE: u8 = 3;

/// Arguments of `chaperone diff`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Changes: new-syscall, removed-syscall, new-transition (a bigram a -> b only NEW has) and shifted \
(a syscall whose share of all calls moved by 2x or more, at a share of at least 0.1 %). Risk: \
high for execve/execveat, ptrace, process_vm_*, mounts, set*id, capset, kernel modules, bpf, \
kexec, keyrings, file handles..., and for a syscall this build does not know (shown as ?, \
learned by a newer chaperone); medium for sockets, connect/bind/listen/accept, clone, \
unshare, setns...; low otherwise. A transition has the higher risk of its two syscalls.

--fail-on new-syscalls: any new syscall; risky: a new syscall or transition of high risk; any: \
any change. Can be given more than once.

Exit status: 0 ok (no change matches --fail-on); 1 error (an unreadable profile); 2 bad usage; \
3 policy failure (a change matches --fail-on).")]
pub struct DiffArgs {
    /// The old profile (model codec format).
    old: PathBuf,
    /// The new profile.
    new: PathBuf,
    /// Exit with status 3 when a change of this kind is found.
    #[arg(long, value_name = "POLICY")]
    fail_on: Vec<FailOn>,
    /// Print one JSON object: {"changes": [...], "failed": bool}.
    #[arg(long)]
    json: bool,
}

fn describe(c: &Change) -> String {
    let pct = |x: f64| format!("{:.3}%", x * 100.0);
    match c.kind {
        ChangeKind::NewSyscall => format!("new syscall     {:<6} {}", c.risk, c.syscalls[0]),
        ChangeKind::RemovedSyscall => format!("removed syscall {:<6} {}", c.risk, c.syscalls[0]),
        ChangeKind::NewTransition => format!(
            "new transition  {:<6} {} ({})",
            c.risk,
            c.syscalls.join(" -> "),
            pct(c.new_share)
        ),
        ChangeKind::Shifted => format!(
            "shifted         {:<6} {} {} -> {}",
            c.risk,
            c.syscalls[0],
            pct(c.old_share),
            pct(c.new_share)
        ),
    }
}

/// Runs `chaperone diff`; the exit code tells whether the policy failed.
pub fn run(args: &DiffArgs) -> Result<ExitCode> {
    let old = read_profile(&args.old)?;
    let new = read_profile(&args.new)?;
    let changes = diff(&old, &new);
    let failing: Vec<&Change> = changes
        .iter()
        .filter(|c| args.fail_on.iter().any(|p| p.matches(c)))
        .collect();
    if args.json {
        let out = serde_json::json!({ "changes": changes, "failed": !failing.is_empty() });
        outln!("{out}")?;
    } else {
        if changes.is_empty() {
            outln!("no changes")?;
        }
        for c in &changes {
            outln!("{}", describe(c))?;
        }
        if !failing.is_empty() {
            eprintln!(
                "chaperone: {} change(s) match --fail-on, first: {}",
                failing.len(),
                describe(failing[0])
            );
        }
    }
    Ok(if failing.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(POLICY_FAILURE)
    })
}
