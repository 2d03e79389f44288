#!/usr/bin/env bash
# Measures how often a syscall that waits for a seccomp user-notification supervisor fails
# with EINTR when a signal whose handler lacks SA_RESTART arrives, with and without the
# kernel's SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (the measurement behind docs/adr/0021).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
    cat <<USAGE
Usage: scripts/probe-eintr.sh [--runs N] [--help]

Builds scripts/probes/eintr.c with gcc and runs it N times (default 5) in each of four
configurations: the supervisor answering at once on the caller's CPU with SYNC_WAKE_UP
(chaperone's placement), and the supervisor holding each call 200 us (no SYNC_WAKE_UP), each
with the filter flag off and on. Prints, per configuration, the median number of EINTR
failures per 1,000 signals handled. Needs Linux 6.6 or newer (SYNC_WAKE_UP); no root.

  --runs N   runs per configuration
  --help     show this help

Exit codes: 0 measured, 1 the probe could not be built or the kernel refused a call,
2 bad arguments.
USAGE
}

runs=5
while [ $# -gt 0 ]; do
    case "$1" in
        --runs)
            [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || { printf '%s\n' "--runs needs a positive whole number" >&2; exit 2; }
            runs="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) printf 'unknown argument: %s\n' "$1" >&2; usage >&2; exit 2 ;;
    esac
done

ensure_packages gcc libc6-dev linux-libc-dev
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
gcc -O2 -pthread -Wall -o "$work/eintr" "$CHAPERONE_ROOT/scripts/probes/eintr.c"

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

printf '%-52s %-9s %s\n' "supervisor" "flag" "EINTR per 1,000 signals (median of $runs)"
# calls hold_us sync_wake label: the held configuration makes fewer calls (each takes 200 us).
for config in "300000 0 1 answers at once, caller's CPU, SYNC_WAKE_UP" "5000 200 0 holds each call 200 us, no SYNC_WAKE_UP"; do
    read -r calls hold sync label <<<"$config"
    for killable in 0 1; do
        values=()
        for _ in $(seq "$runs"); do
            line="$("$work/eintr" "$calls" "$killable" "$sync" "$hold")"
            values+=("${line##*per_1000=}")
        done
        flag=$([ "$killable" -eq 1 ] && echo on || echo off)
        printf '%-52s %-9s %s (runs: %s)\n' "$label" "$flag" "$(printf '%s\n' "${values[@]}" | median)" "${values[*]}"
    done
done
