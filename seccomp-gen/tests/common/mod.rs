//! Helpers shared by the integration tests: compiling a profile with libseccomp as runc does.

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator};

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> ScmpAction {
    let errno = errno.map(|e| i32::try_from(e).unwrap()).or(Some(1));
    ScmpAction::from_str(&a.to_string(), errno).unwrap()
}

fn op(o: LinuxSeccompOperator, mask: u64) -> ScmpCompareOp {
    match o {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(mask),
    }
}

/// Builds `profile` into a libseccomp filter the way runc's `libcontainer/seccomp` does (rules
/// whose action is the default action are skipped, names libseccomp does not know are skipped)
/// and exports its BPF program.
#[allow(dead_code)] // not every test crate uses both
pub fn compile(profile: &LinuxSeccomp) -> Vec<u8> {
    try_compile(profile).unwrap_or_else(|e| panic!("{e}"))
}

/// [`compile`], returning libseccomp's refusal as an error.
pub fn try_compile(profile: &LinuxSeccomp) -> Result<Vec<u8>, String> {
    let default = action(profile.default_action(), profile.default_errno_ret());
    let mut ctx = ScmpFilterContext::new(default).unwrap();
    for arch in profile.architectures().iter().flatten() {
        let name = serde_json::to_value(arch).unwrap();
        let arch: ScmpArch = name.as_str().unwrap().parse().unwrap();
        ctx.add_arch(arch).unwrap();
    }
    for rule in profile.syscalls().iter().flatten() {
        let act = action(rule.action(), rule.errno_ret());
        if act == default {
            continue;
        }
        let conditions: Vec<ScmpArgCompare> = rule
            .args()
            .iter()
            .flatten()
            .map(|a| {
                let (mask, datum) = match a.op() {
                    LinuxSeccompOperator::ScmpCmpMaskedEq => {
                        (a.value(), a.value_two().unwrap_or_default())
                    }
                    _ => (0, a.value()),
                };
                ScmpArgCompare::new(u32::try_from(a.index()).unwrap(), op(a.op(), mask), datum)
            })
            .collect();
        for name in rule.names() {
            let Ok(sys) = ScmpSyscall::from_name(name) else {
                continue;
            };
            if conditions.is_empty() {
                ctx.add_rule(act, sys)
            } else {
                ctx.add_rule_conditional(act, sys, &conditions)
            }
            .map_err(|e| format!("rule {name} {act:?} {conditions:?}: {e}"))?;
        }
    }
    let mut file = tempfile::tempfile().unwrap();
    ctx.export_bpf(&file).unwrap();
    let mut bpf = Vec::new();
    std::io::Seek::rewind(&mut file).unwrap();
    std::io::Read::read_to_end(&mut file, &mut bpf).unwrap();
    assert!(
        !bpf.is_empty() && bpf.len() % 8 == 0,
        "BPF is whole instructions"
    );
    Ok(bpf)
}
