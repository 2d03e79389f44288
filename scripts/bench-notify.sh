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

  --json   print one JSON object instead of the table:
           {"untraced_ns","floor_ns","floor_poll_ns","learn_ns","detect_ns",
            "learn_ratio","detect_ratio","notifs_per_s","sync_wake_up"}
           (ratios are against floor_ns). Targets: ratios <= 1.2.
  --help   this text.

No root needed (the child sets no_new_privs). Takes about a minute.
USAGE
}

json=()
for arg in "$@"; do
    case "$arg" in
        --help | -h) usage; exit 0 ;;
        --json) json=(--json) ;;
        *) usage >&2; die "unknown argument: $arg" ;;
    esac
done

require_cargo
cd "$CHAPERONE_ROOT"
log "building and running the notify benchmark"
cargo bench -q -p chaperone-profiler --bench notify -- "${json[@]}"
