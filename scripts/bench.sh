#!/usr/bin/env bash
# Measures verdict latency and container throughput under chaperone.
set -euo pipefail
# shellcheck source=lib/common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
    cat <<USAGE
Usage: scripts/bench.sh [--json] [--verdict-only] [--rounds N]

Runs three benchmarks (release builds) and prints their figures:

verdict (profiler/benches/verdict.rs; no root needed): the supervisor runs in detect
mode with a model learned on getppid only, so getpid deviates on every call; p50 and
p99 in milliseconds of:
  deny      a denied getpid (EPERM), timed in the traced child from syscall entry to
            return; 5,010 calls over fresh children.
  continue  the learned getppid (no deviation, answered "continue") by the same
            supervisors in the same children, interleaved with the denied calls: the
            baseline of deny_vs_continue (deny p50 / continue p50) and of
            deny_vs_continue_p99 (deny_warm_p99 / continue_warm_p99: each child's first
            timed call of each kind left out, since deny's is the cold first deviation).
  kill      Verdict::KillProcess (pidfd SIGKILL): from the supervisor receiving the
            notification to this process reaping the child; 500 fresh children. The
            same through a responder's kill_container (kill_pid) is kill_container.
  floor     the baseline of kill_vs_floor and kill_container_vs_floor (p99 / p99):
            the same child held in the same call by a bare RECV loop that kill(SIGKILL)s
            it, timed the same way, in the same loop as the two kills.

throughput (chaperone-bench-throughput; root, containerd and runc): a syscall-heavy
shell loop and busybox httpd under a load generator, each in fresh containers under
io.containerd.runc.v2, chaperone learn and chaperone enforce (action alert, the tiered
filter), interleaved round by round on one private containerd; medians over the rounds,
ratios are throughput against runc-v2 (see chaperone-bench-throughput --help).

pod start (chaperone-bench-cri; root, containerd and runc): pods of two containers
started through containerd's CRI plugin as the kubelet does (RunPodSandbox,
CreateContainer, StartContainer), under the runc handler and the chaperone one,
alternating; medians, ratio chaperone / runc (see chaperone-bench-cri --help). Two
configurations: enforce with containerd's RuntimeDefault seccomp profile (the Pod
Security Standards' restricted level) and learn with no profile (the worst case).

  --json          print one JSON object with every figure of the three (needs python3;
                  as root, it is installed when missing):
                  {"deny_p50_ms","deny_p99_ms","continue_p50_ms","continue_p99_ms",
                   "deny_vs_continue","deny_warm_p99_ms","continue_warm_p99_ms",
                   "deny_vs_continue_p99","kill_p50_ms","kill_p99_ms",
                   "kill_container_p50_ms","kill_container_p99_ms","kill_floor_p50_ms",
                   "kill_floor_p99_ms","kill_vs_floor","kill_container_vs_floor",
                   "enforce_vs_runc","enforce_vs_runc_loop","enforce_vs_runc_http",
                   "learn_vs_runc","learn_vs_runc_loop","learn_vs_runc_http",
                   "enforce_alerts",...,
                   "pod_start_enforce_runtime_default":{"pod_start_vs_runc",...},
                   "pod_start_learn_unconfined":{"pod_start_vs_runc",...}}
  --verdict-only  skip the throughput and pod start benchmarks (no root needed)
  --rounds N      throughput rounds (default 5; the pod start benchmark times 4N pods
                  per handler and configuration)
  --help          this text.

Targets: deny p99 <= 1 ms, kill p99 <= 50 ms, enforce throughput >= 0.95x runc-v2 on
both workloads, pod start <= 1.10x the runc handler's (the tables say whether they are
met; they do not change the exit status).

The throughput benchmark needs root; as root, missing Debian packages runc, containerd
and busybox-static are installed. It takes about eight minutes after the build.

Exit status: 0 the benchmarks ran, 1 one failed (prerequisites, build, run or a sanity
check), 2 bad arguments.
USAGE
}

bad_args() {
    usage >&2
    printf 'error: %s\n' "$*" >&2
    exit 2
}

json=false
throughput=true
rounds=5
while [ $# -gt 0 ]; do
    case "$1" in
        --help | -h) usage; exit 0 ;;
        --json) json=true ;;
        --verdict-only) throughput=false ;;
        --rounds)
            [ $# -ge 2 ] || bad_args "--rounds needs a value"
            rounds="$2"
            shift
            ;;
        --rounds=*) rounds="${1#--rounds=}" ;;
        *) bad_args "unknown argument: $1" ;;
    esac
    shift
done
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || bad_args "--rounds must be a positive integer, got '$rounds'"

require_cargo
cd "$CHAPERONE_ROOT"
if $throughput; then
    [ "$(id -u)" -eq 0 ] || die "the throughput benchmark needs root (containerd and runc); --verdict-only runs the rest"
    ensure_packages runc containerd busybox-static python3
fi
# --json merges the benchmarks' objects with python3: check for it before they run, not after.
if $json && ! command -v python3 >/dev/null 2>&1; then
    ensure_packages python3
    command -v python3 >/dev/null 2>&1 || die "python3 not found on PATH (--json merges the figures with it)"
fi

tmp="$(mktemp -d /tmp/chp-benchjson.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT

log "building and running the verdict benchmark"
if $json; then
    cargo bench -q -p chaperone-profiler --bench verdict -- --json >"$tmp/verdict.json" \
        || die "the verdict benchmark failed"
else
    cargo bench -q -p chaperone-profiler --bench verdict || die "the verdict benchmark failed"
fi

if $throughput; then
    log "building the shim and chaperone-bench-throughput (release)"
    cargo build --release --locked -p chaperone-integration --bin chaperone-bench-throughput \
        --bin chaperone-bench-cri >&2 \
        || die "building the throughput benchmark failed"
    build_shim_release >&2 || die "building the shim failed"
    bin_dir="$(cd "$(cargo_target_dir)/release" && pwd)"
    log "running the throughput benchmark ($rounds rounds)"
    if $json; then
        "$bin_dir/chaperone-bench-throughput" --bin-dir "$bin_dir" --rounds "$rounds" --json \
            >"$tmp/throughput.json" || die "the throughput benchmark failed"
    else
        "$bin_dir/chaperone-bench-throughput" --bin-dir "$bin_dir" --rounds "$rounds" \
            || die "the throughput benchmark failed"
    fi
    for config in "enforce runtime-default" "learn unconfined"; do
        read -r mode seccomp <<<"$config"
        log "running the pod start benchmark (mode $mode, seccomp $seccomp)"
        args=(--bin-dir "$bin_dir" --rounds "$((rounds * 4))" --mode "$mode" --seccomp "$seccomp")
        if $json; then
            "$bin_dir/chaperone-bench-cri" "${args[@]}" --json \
                >"$tmp/pod_start_${mode}_${seccomp//-/_}.json" \
                || die "the pod start benchmark failed"
        else
            "$bin_dir/chaperone-bench-cri" "${args[@]}" || die "the pod start benchmark failed"
        fi
    done
fi

if $json; then
    # One object with the figures of every benchmark that ran.
    python3 - "$tmp"/*.json <<'PY' || die "a benchmark printed something that is not one JSON object"
import json, sys
import os
merged = {}
for path in sys.argv[1:]:
    with open(path) as f:
        lines = [l for l in f.read().splitlines() if l.strip()]
    if len(lines) != 1:
        sys.exit(f"{path}: expected one JSON line, got {len(lines)}")
    name = os.path.basename(path)[: -len(".json")]
    if name.startswith("pod_start_"):
        # One object per configuration: their keys are the same.
        merged[name] = json.loads(lines[0])
    else:
        merged.update(json.loads(lines[0]))
print(json.dumps(merged))
PY
fi
