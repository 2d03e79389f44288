#!/usr/bin/env bash
# Measures the cost of a seccomp-notify traced syscall under chaperone's supervisor.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
    cat <<USAGE
Usage: scripts/bench-notify.sh [--json]

Runs profiler/benches/notify.rs (release build). A forked child calls getppid in a
tight loop under a seccomp notify filter; the run reports ns per syscall for:
  untraced, the kernel floor (bare RECV + SEND(CONTINUE)), the floor with the
  supervisor's poll, the supervisor in learn and in detect mode (each with and
  without SYNC_WAKE_UP), pinned placements for reference, and the notifications
  per second one supervisor sustains with two busy processes.

The configurations run round-robin in 7 rounds (each round starts one configuration
later); a figure is the median over the rounds, and a ratio the median of the
per-round ratios.

  --json   print one JSON object instead of the table:
           {"untraced_ns","floor_ns","floor_poll_ns","learn_ns","detect_ns",
            "learn_ratio","detect_ratio","floor_vs_untraced","learn_vs_untraced",
            "notifs_per_s","sync_wake_up","rounds","target_met"}
           (learn_ratio and detect_ratio are against floor_ns, the *_vs_untraced
           ratios against untraced_ns).
  --help   this text.

Target: learn_ratio and detect_ratio <= 1.2; the table's last line (or target_met)
says whether it is met. It does not change the exit status.

No root needed (the child sets no_new_privs). Takes about a minute.

Exit status: 0 the benchmark ran, 1 it failed (cargo missing, build, run or a sanity
check), 2 bad arguments.
USAGE
}

bad_args() {
    usage >&2
    printf 'error: %s\n' "$*" >&2
    exit 2
}

json=()
for arg in "$@"; do
    case "$arg" in
        --help | -h) usage; exit 0 ;;
        --json) json=(--json) ;;
        *) bad_args "unknown argument: $arg" ;;
    esac
done

require_cargo
cd "$CHAPERONE_ROOT"
log "building and running the notify benchmark"
cargo bench -q -p chaperone-profiler --bench notify -- "${json[@]}" \
    || die "the notify benchmark failed"
