//! A container's own seccomp profile (its OCI config's `linux.seccomp`, which a pod's
//! `seccompProfile` or `ctr --seccomp-profile` sets), rewritten by the shim into the learn-mode
//! filter or a runtime filter: a filter, or a clear `FilterError`; never a panic. A filter
//! keeps every rule of the profile that does not allow or log, keeps its default action (whatever
//! `[filter] unnamed` says: that is for containers without a profile), sends the fd to
//! chaperone's listener, and is one runc accepts and that cannot hang runc init.
#![no_main]

use std::path::Path;

use chaperone_config::{Unnamed, Unseen};
use chaperone_profiler::supervisor::filter::{learn_filter, runc_accepts};
use chaperone_seccomp_gen::oci::allows;
use chaperone_seccomp_gen::tiered::{runtime_filter, Tiers};
use libfuzzer_sys::fuzz_target;
use oci_spec::runtime::LinuxSeccomp;

fuzz_target!(|data: &[u8]| {
    let Some((&how, json)) = data.split_first() else {
        return;
    };
    let Ok(container) = serde_json::from_slice::<LinuxSeccomp>(json) else {
        return;
    };
    let listener = Path::new("/run/chaperone/s/fuzz.sock");
    // The low bit: learn mode, or a runtime filter with the next two bits' unseen handling and
    // the fourth bit's unnamed handling.
    let filter = if how & 1 == 0 {
        learn_filter(Some(&container), listener, Some("fuzz"))
    } else {
        let unseen = match (how >> 1) & 3 {
            0 => Unseen::Notify,
            1 => Unseen::Errno,
            _ => Unseen::Kill,
        };
        let unnamed = if how & 8 == 0 {
            Unnamed::Enosys
        } else {
            Unnamed::Allow
        };
        let tiers = Tiers::from_names(["read", "write", "futex"], ["openat", "socket", "execve"]);
        runtime_filter(
            Some(&container),
            &tiers,
            unseen,
            unnamed,
            listener,
            Some("fuzz"),
        )
    };
    let Ok(filter) = filter else {
        return;
    };
    assert!(
        runc_accepts(&filter),
        "runc would refuse or hang: {filter:?}"
    );
    assert_eq!(filter.listener_path().as_deref(), Some(listener));
    assert_eq!(filter.default_action(), container.default_action());
    let rules = filter.syscalls().clone().unwrap_or_default();
    // Rules that allow or log get tiers; those that deny are kept as they are (but one with
    // the default's own action, which runc leaves out too).
    for kept in container
        .syscalls()
        .iter()
        .flatten()
        .filter(|r| !allows(r.action()))
    {
        assert!(rules.contains(kept), "a denial was dropped: {kept:?}");
    }
    // What the shim writes into config.json.
    serde_json::to_value(&filter).expect("the filter serializes");
});
