#!/usr/bin/env bash
# Measures verdict latency: how long chaperone's supervisor takes to carry out a verdict.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
    cat <<USAGE
Usage: scripts/bench.sh [--json]

Runs profiler/benches/verdict.rs (release build). The supervisor runs in detect mode
with a model learned on getppid only, so getpid deviates on every call; it reports
p50 and p99 in milliseconds of:
  deny      a denied getpid (EPERM), timed in the traced child from syscall entry to
            return; 5,010 calls over fresh children.
  continue  the learned getppid (no deviation, answered "continue") by the same
            supervisors in the same children, interleaved with the denied calls: the
            baseline of deny_vs_continue (deny p50 / continue p50).
  kill      Verdict::KillProcess (pidfd SIGKILL): from the supervisor receiving the
            notification to this process reaping the child; 500 fresh children. The
            table also shows the same through a responder's kill_container (kill_pid).

  --json   print one JSON object instead of the table:
           {"deny_p50_ms","deny_p99_ms","continue_p50_ms","continue_p99_ms",
            "deny_vs_continue","kill_p50_ms","kill_p99_ms"}
  --help   this text.

Targets: deny p99 <= 1 ms, kill p99 <= 50 ms (the table says whether they are met;
they do not change the exit status).

No root needed (the child sets no_new_privs). Takes a few seconds after the build.

Exit status: 0 the benchmark ran, 1 it failed (build, run or a sanity check),
2 bad arguments.
USAGE
}

json=()
for arg in "$@"; do
    case "$arg" in
        --help | -h) usage; exit 0 ;;
        --json) json=(--json) ;;
        *) usage >&2; printf 'error: unknown argument: %s\n' "$arg" >&2; exit 2 ;;
    esac
done

require_cargo
cd "$CHAPERONE_ROOT"
log "building and running the verdict benchmark"
cargo bench -q -p chaperone-profiler --bench verdict -- "${json[@]}" || die "the verdict benchmark failed"
