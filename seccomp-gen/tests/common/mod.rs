//! Helpers shared by the integration tests: compiling a profile with libseccomp as runc does,
//! and random profiles for the property tests.

// Each test crate uses a part of it.
#![allow(dead_code)]

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    Arch as OciArch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder,
    LinuxSeccompOperator, LinuxSyscall,
};
use proptest::prelude::*;

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

/// The syscall names random profiles are made of.
pub const NAMES: &[&str] = &[
    "read",
    "write",
    "openat",
    "close",
    "mmap",
    "clone",
    "execve",
    "mount",
    "socket",
    "personality",
    "shmget",
];

/// `AUDIT_ARCH_X86_64` and `AUDIT_ARCH_I386`, as the kernel gives them to a filter.
pub const AUDIT_X86_64: u32 = 0xc000_003e;
/// See [`AUDIT_X86_64`].
pub const AUDIT_I386: u32 = 0x4000_0003;

/// Runs the classic BPF program `bpf` (as libseccomp exports it) on the `seccomp_data` of a
/// call `nr` with `args` on `arch` (instruction pointer 0), as the kernel does; the filter's
/// return value. Panics on an instruction libseccomp does not emit for seccomp.
pub fn run_bpf(bpf: &[u8], arch: u32, nr: i32, args: [u64; 6]) -> u32 {
    let mut data = [0_u8; 64];
    data[0..4].copy_from_slice(&nr.to_ne_bytes());
    data[4..8].copy_from_slice(&arch.to_ne_bytes());
    for (i, a) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
    }
    let insns: Vec<(u16, u8, u8, u32)> = bpf
        .chunks_exact(8)
        .map(|c| {
            (
                u16::from_ne_bytes([c[0], c[1]]),
                c[2],
                c[3],
                u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            )
        })
        .collect();
    let (mut a, mut x, mut mem) = (0_u32, 0_u32, [0_u32; 16]);
    let mut pc = 0_usize;
    loop {
        let (code, jt, jf, k) = insns[pc];
        pc += 1;
        let src = if code & 0x08 != 0 { x } else { k };
        match code & 0x07 {
            // BPF_LD: word loads of seccomp_data, immediates, scratch memory.
            0x00 => match code & 0xe0 {
                0x20 => {
                    let at = k as usize;
                    a = u32::from_ne_bytes(data[at..at + 4].try_into().unwrap());
                }
                0x00 => a = k,
                0x60 => a = mem[k as usize],
                other => panic!("BPF_LD mode {other:#x}"),
            },
            0x01 => match code & 0xe0 {
                0x00 => x = k,
                0x60 => x = mem[k as usize],
                other => panic!("BPF_LDX mode {other:#x}"),
            },
            0x02 => mem[k as usize] = a,
            0x03 => mem[k as usize] = x,
            0x04 => {
                a = match code & 0xf0 {
                    0x00 => a.wrapping_add(src),
                    0x10 => a.wrapping_sub(src),
                    0x20 => a.wrapping_mul(src),
                    0x40 => a | src,
                    0x50 => a & src,
                    0x60 => a.wrapping_shl(src),
                    0x70 => a.wrapping_shr(src),
                    0x80 => a.wrapping_neg(),
                    0xa0 => a ^ src,
                    other => panic!("BPF_ALU op {other:#x}"),
                }
            }
            0x05 => {
                let taken = match code & 0xf0 {
                    0x00 => {
                        pc += k as usize;
                        continue;
                    }
                    0x10 => a == src,
                    0x20 => a > src,
                    0x30 => a >= src,
                    0x40 => a & src != 0,
                    other => panic!("BPF_JMP op {other:#x}"),
                };
                pc += usize::from(if taken { jt } else { jf });
            }
            0x06 => return if code & 0x18 == 0x10 { a } else { k },
            0x07 => {
                if code & 0xf8 == 0x80 {
                    a = x;
                } else {
                    x = a;
                }
            }
            _ => unreachable!(),
        }
    }
}

/// Whether a filter's return value stops the call (kill, trap, errno) rather than letting it
/// run, at once or after a tracer or a supervisor (notify, trace, log, allow).
pub fn denies(ret: u32) -> bool {
    matches!(
        ret & 0xffff_0000,
        0x8000_0000 | 0x0000_0000 | 0x0003_0000 | 0x0005_0000
    )
}

/// The actions random rules take.
pub const ACTIONS: &[LinuxSeccompAction] = &[
    LinuxSeccompAction::ScmpActAllow,
    LinuxSeccompAction::ScmpActLog,
    LinuxSeccompAction::ScmpActErrno,
    LinuxSeccompAction::ScmpActKillProcess,
    LinuxSeccompAction::ScmpActTrap,
];

/// One to three of [`NAMES`].
pub fn names() -> impl Strategy<Value = Vec<String>> {
    proptest::sample::subsequence(NAMES, 1..=3)
        .prop_map(|v| v.into_iter().map(str::to_owned).collect())
}

/// A random rule: names, action, errno, maybe one argument condition.
pub fn rule() -> impl Strategy<Value = LinuxSyscall> {
    (
        names(),
        proptest::sample::select(ACTIONS),
        proptest::option::of(1_u32..40),
        proptest::option::of((0_u64..4, any::<bool>())),
    )
        .prop_map(|(names, action, errno, arg)| {
            let mut r = LinuxSyscall::default();
            r.set_names(names);
            r.set_action(action);
            if action == LinuxSeccompAction::ScmpActErrno {
                r.set_errno_ret(errno);
            }
            if let Some((value, masked)) = arg {
                let a = LinuxSeccompArgBuilder::default().index(0_usize);
                let a = if masked {
                    a.value(value)
                        .value_two(value & 1)
                        .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
                } else {
                    a.value(value).op(LinuxSeccompOperator::ScmpCmpEq)
                };
                r.set_args(Some(vec![a.build().unwrap()]));
            }
            r
        })
}

/// A random container or base profile libseccomp could take (one action per name and
/// conditions).
pub fn base() -> impl Strategy<Value = LinuxSeccomp> {
    (
        proptest::sample::select(&ACTIONS[..4]),
        proptest::collection::vec(rule(), 0..6),
    )
        // One action per call and condition list, as libseccomp (and so runc) requires of a
        // profile; which of two such rules libseccomp keeps depends on their order.
        .prop_filter("one action per name and conditions", |(_, rules)| {
            rules.iter().enumerate().all(|(i, a)| {
                rules[..i].iter().all(|b| {
                    a.args() != b.args() || a.names().iter().all(|n| !b.names().contains(n))
                })
            })
        })
        .prop_map(|(default, rules)| {
            let mut b = LinuxSeccomp::default();
            b.set_default_action(default);
            b.set_architectures(Some(vec![OciArch::ScmpArchX86_64]));
            b.set_syscalls(Some(rules));
            b
        })
}

/// [`base`], also over 32-bit x86 in half the cases (libseccomp then makes a rule on a socket
/// or IPC call a rule on its multiplexer too).
pub fn base_any_arch() -> impl Strategy<Value = LinuxSeccomp> {
    (base(), any::<bool>()).prop_map(|(mut b, x86)| {
        if x86 {
            b.set_architectures(Some(vec![OciArch::ScmpArchX86_64, OciArch::ScmpArchX86]));
        }
        b
    })
}
