//! A container's cgroup: found from its init pid when it is created (runc made it), kept for
//! Stats after init has exited, and read into containerd's cgroup v1 or v2 metrics.
//!
//! cgroup v1 metrics are read here, file by file, with the meanings runc-v2 gives them (CPU
//! time in nanoseconds, every `memory.stat` counter, the usage, limit, peak and failure count of
//! memory, memsw, kmem and kmem.tcp). A file the kernel does not have reads as 0. Block I/O,
//! hugetlb and RDMA counters are not reported (the kubelet does not read them from CRI).
//! cgroup v2 metrics come from the containerd-shim crate.

use std::collections::HashMap;
use std::path::Path;

use cgroups_rs::fs::{Cgroup, Controller, Subsystem};
use containerd_shim::cgroup::{collect_metrics_v2, get_cgroup};
use containerd_shim::protos::cgroups::metrics::{MemoryEntry, MemoryStat, Metrics};
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::util::convert_to_any;

use crate::error::{Result, ShimError};

/// The cgroup (v1 hierarchies or the v2 group) process `pid` is in.
pub fn of_process(pid: i32) -> Result<Cgroup> {
    let pid = u32::try_from(pid).map_err(|_| ShimError::InvalidRequest {
        reason: "a process without a pid has no cgroup",
    })?;
    get_cgroup(pid).map_err(|source| ShimError::Shim {
        op: "find the container's cgroup",
        source,
    })
}

/// The cgroup's metrics as containerd's Stats answer carries them: an `Any` of
/// `io.containerd.cgroups.v1.Metrics` or `io.containerd.cgroups.v2.Metrics`, as runc-v2 sends.
pub fn metrics(cgroup: &Cgroup) -> Result<Any> {
    let collected = if cgroup.v2() {
        collect_metrics_v2(cgroup).and_then(|m| convert_to_any(Box::new(m)))
    } else {
        convert_to_any(Box::new(metrics_v1(cgroup)))
    };
    collected.map_err(|source| ShimError::Shim {
        op: "read the container's cgroup metrics",
        source,
    })
}

/// A number in a cgroup file (`max` and what is absent or unreadable are 0).
fn number(dir: &Path, file: &str) -> u64 {
    std::fs::read_to_string(dir.join(file))
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0)
}

/// The `key value` lines of a cgroup file.
fn keyed(dir: &Path, file: &str) -> HashMap<String, u64> {
    let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
    parse_keyed(&text)
}

fn parse_keyed(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(' ')?;
            Some((key.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// Nanoseconds per clock tick (`cpuacct.stat` counts ticks).
fn nanos_per_tick() -> u64 {
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|t| u64::try_from(t).ok())
        .filter(|&t| t > 0)
        .unwrap_or(100);
    1_000_000_000 / ticks
}

/// containerd's v1 metrics of `cgroup`.
fn metrics_v1(cgroup: &Cgroup) -> Metrics {
    let mut metrics = Metrics::new();
    for subsystem in cgroup.subsystems() {
        match subsystem {
            Subsystem::Pid(c) => {
                let pids = metrics.pids.mut_or_insert_default();
                pids.current = number(c.path(), "pids.current");
                pids.limit = number(c.path(), "pids.max");
            }
            Subsystem::CpuAcct(c) => {
                let usage = metrics
                    .cpu
                    .mut_or_insert_default()
                    .usage
                    .mut_or_insert_default();
                usage.total = number(c.path(), "cpuacct.usage");
                usage.per_cpu = std::fs::read_to_string(c.path().join("cpuacct.usage_percpu"))
                    .unwrap_or_default()
                    .split_whitespace()
                    .filter_map(|n| n.parse().ok())
                    .collect();
                let stat = keyed(c.path(), "cpuacct.stat");
                let tick = nanos_per_tick();
                usage.user = stat.get("user").copied().unwrap_or(0) * tick;
                usage.kernel = stat.get("system").copied().unwrap_or(0) * tick;
            }
            Subsystem::Cpu(c) => {
                let stat = keyed(c.path(), "cpu.stat");
                let throttling = metrics
                    .cpu
                    .mut_or_insert_default()
                    .throttling
                    .mut_or_insert_default();
                let get = |key: &str| stat.get(key).copied().unwrap_or(0);
                throttling.periods = get("nr_periods");
                throttling.throttled_periods = get("nr_throttled");
                throttling.throttled_time = get("throttled_time");
            }
            Subsystem::Mem(c) => {
                let dir = c.path();
                metrics.memory = Some(memory_v1(dir)).into();
                let oom = keyed(dir, "memory.oom_control");
                let control = metrics.memory_oom_control.mut_or_insert_default();
                let get = |key: &str| oom.get(key).copied().unwrap_or(0);
                control.oom_kill_disable = get("oom_kill_disable");
                control.under_oom = get("under_oom");
                control.oom_kill = get("oom_kill");
            }
            _ => {}
        }
    }
    metrics
}

/// A v1 memory cgroup's `memory.stat` counters and its four usage entries.
fn memory_v1(dir: &Path) -> MemoryStat {
    let stat = keyed(dir, "memory.stat");
    let get = |key: &str| stat.get(key).copied().unwrap_or(0);
    let entry = |prefix: &str| {
        let file = |name: &str| number(dir, &format!("{prefix}.{name}"));
        Some(MemoryEntry {
            limit: file("limit_in_bytes"),
            usage: file("usage_in_bytes"),
            max: file("max_usage_in_bytes"),
            failcnt: file("failcnt"),
            ..Default::default()
        })
        .into()
    };
    MemoryStat {
        cache: get("cache"),
        rss: get("rss"),
        rss_huge: get("rss_huge"),
        mapped_file: get("mapped_file"),
        dirty: get("dirty"),
        writeback: get("writeback"),
        pg_pg_in: get("pgpgin"),
        pg_pg_out: get("pgpgout"),
        pg_fault: get("pgfault"),
        pg_maj_fault: get("pgmajfault"),
        inactive_anon: get("inactive_anon"),
        active_anon: get("active_anon"),
        inactive_file: get("inactive_file"),
        active_file: get("active_file"),
        unevictable: get("unevictable"),
        hierarchical_memory_limit: get("hierarchical_memory_limit"),
        hierarchical_swap_limit: get("hierarchical_memsw_limit"),
        total_cache: get("total_cache"),
        total_rss: get("total_rss"),
        total_rss_huge: get("total_rss_huge"),
        total_mapped_file: get("total_mapped_file"),
        total_dirty: get("total_dirty"),
        total_writeback: get("total_writeback"),
        total_pg_pg_in: get("total_pgpgin"),
        total_pg_pg_out: get("total_pgpgout"),
        total_pg_fault: get("total_pgfault"),
        total_pg_maj_fault: get("total_pgmajfault"),
        total_inactive_anon: get("total_inactive_anon"),
        total_active_anon: get("total_active_anon"),
        total_inactive_file: get("total_inactive_file"),
        total_active_file: get("total_active_file"),
        total_unevictable: get("total_unevictable"),
        usage: entry("memory"),
        swap: entry("memory.memsw"),
        kernel: entry("memory.kmem"),
        kernel_tcp: entry("memory.kmem.tcp"),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shims_own_cgroup_gives_metrics_of_the_hosts_version() {
        let cgroup = of_process(i32::try_from(std::process::id()).unwrap()).unwrap();
        let any = metrics(&cgroup).unwrap();
        let expected = if cgroup.v2() {
            "io.containerd.cgroups.v2.Metrics"
        } else {
            "io.containerd.cgroups.v1.Metrics"
        };
        assert_eq!(any.type_url, expected);
        assert!(!any.value.is_empty());
    }

    #[test]
    fn v1_files_are_read_with_runc_v2s_meanings() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let write = |name: &str, text: &str| std::fs::write(d.join(name), text).unwrap();
        write("memory.stat", "cache 4096\nrss 8192\npgpgin 3\ntotal_inactive_file 12\nhierarchical_memsw_limit 9\nbogus x\n");
        write("memory.usage_in_bytes", "12288\n");
        write("memory.limit_in_bytes", "50331648\n");
        write("memory.max_usage_in_bytes", "16384\n");
        write("memory.memsw.usage_in_bytes", "garbage\n");
        let m = memory_v1(d);
        assert_eq!(
            (m.cache, m.rss, m.pg_pg_in, m.total_inactive_file),
            (4096, 8192, 3, 12)
        );
        assert_eq!(m.hierarchical_swap_limit, 9);
        assert_eq!(
            (m.usage.usage, m.usage.limit, m.usage.max, m.usage.failcnt),
            (12288, 50_331_648, 16384, 0)
        );
        assert_eq!(m.swap.usage, 0, "unparsable reads as 0");
        assert_eq!(m.kernel_tcp.limit, 0, "absent reads as 0");
        assert_eq!(parse_keyed("a 1\nb\nc 2 3\n").len(), 1);
        assert!(nanos_per_tick() > 0);
    }

    #[test]
    fn no_pid_no_cgroup() {
        of_process(-1).unwrap_err();
    }
}
