#!/usr/bin/env bash
# Runs every check and test of the workspace: the command CI runs (.ci/run).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
    cat <<USAGE
Usage: scripts/test.sh [--no-lint] [--help]

Installs the build packages if missing (root), then runs, in order:
  1. cargo fmt --all --check
  2. cargo clippy --workspace --all-targets -- -D warnings
  3. scripts/check-crate-graph.sh (the one-way crate graph of DESIGN.md), and
     cargo fmt --check and cargo clippy -D warnings of the fuzz targets (fuzz/,
     a workspace of its own, built into target/fuzz; they are not run here:
     scripts/fuzz.sh runs them)
  4. cargo test --workspace --no-fail-fast -- --nocapture: unit, property and
     dataset tests, and (as root, with runc and a static busybox, installed
     here) the integration tests that run real containers; every test binary
     runs even when one fails
  5. a closing line: "summary: N passed, N failed, N skipped"
  6. the host-wide paths the integration tests write to, compared with
     before step 4: containerd's shim sockets and ctr's FIFOs under
     /run/containerd, runc roots, cgroups and private containerds' temp
     directories (/tmp) named chp-*, the tests' own cgroups (chaperone-test-*,
     chaperone-itest-*), and failure logs
     /tmp/chaperone-itest-*.log; what is new is listed ("left behind by the
     tests: ...")

Tests whose prerequisites are missing print "SKIPPED: ..."; with CI=true (or 1) they fail,
and so does a run that leaves something behind.
The build packages: ${BUILD_PACKAGES[*]}; the test packages: ${TEST_PACKAGES[*]};
for step 3, ${FUZZ_PACKAGES[*]}.

  --no-lint   skip steps 1-3
  --help      show this help

Exit codes: 0 all passed, 1 a step failed, 2 bad arguments.
USAGE
}

lint=1
while [ $# -gt 0 ]; do
    case "$1" in
        --no-lint) lint=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) printf 'unknown argument: %s\n' "$1" >&2; usage >&2; exit 2 ;;
    esac
done

packages=("${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}")
if [ "$lint" -eq 1 ]; then packages+=("${FUZZ_PACKAGES[@]}"); fi
ensure_packages "${packages[@]}"
require_cargo
cd "$CHAPERONE_ROOT"

if [ "$lint" -eq 1 ]; then
    log "cargo fmt --check"
    cargo fmt --all --check || die "cargo fmt --check: the code is not formatted (run cargo fmt)"
    log "cargo clippy"
    cargo clippy --locked --workspace --all-targets -- -D warnings || die "cargo clippy failed"
    log "crate graph"
    scripts/check-crate-graph.sh || die "the crate graph check failed"
    # Not members of the workspace (cargo-fuzz builds them with unstable flags), so the two
    # commands above do not see them; checked here so that an API change cannot leave them
    # broken until the next fuzzing run.
    log "fuzz targets: cargo fmt --check, cargo clippy"
    cargo fmt --manifest-path fuzz/Cargo.toml --all --check \
        || die "cargo fmt --check: the fuzz targets are not formatted (run cargo fmt --manifest-path fuzz/Cargo.toml)"
    cargo clippy --locked --manifest-path fuzz/Cargo.toml --target-dir target/fuzz --all-targets \
        -- -D warnings || die "cargo clippy of the fuzz targets failed"
fi

# What of the host-wide paths the integration tests use exists now, one path a line. A host
# containerd running containers adds to the first two too: only CI (a machine of its own) fails.
host_paths() {
    local p
    for p in /run/containerd/fifo/* /run/containerd/s/* /run/containerd/runc/chp-* \
        /sys/fs/cgroup/chp-* /sys/fs/cgroup/*/chp-* /sys/fs/cgroup/chaperone-*test-* \
        /sys/fs/cgroup/*/chaperone-*test-* /tmp/chp-* /tmp/chaperone-itest-*.log; do
        if [ -e "$p" ]; then printf '%s\n' "$p"; fi
    done | sort
}

log "cargo test"
results="$(mktemp)"
before="$(mktemp)"
trap 'rm -f "$results" "$before"' EXIT
host_paths >"$before"
# --nocapture: a test that skips says so on stderr, and that must be seen.
tested=0
cargo test --locked --workspace --no-fail-fast -- --nocapture 2>&1 | tee "$results" || tested=$?

# One closing line for the whole run (cargo prints one per test binary, the last often a doc-test
# binary with nothing in it).
awk '
    /^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
    /SKIPPED: / { s++ }
    END { printf "summary: %d passed, %d failed, %d skipped\n", p, f, s }
' "$results"
if [ "$tested" -ne 0 ]; then
    die "cargo test failed (exit status $tested)"
fi

left="$(host_paths | comm -13 "$before" -)"
if [ -n "$left" ]; then
    printf 'left behind by the tests:\n%s\n' "$left" >&2
    if [ "${CI:-}" = "true" ] || [ "${CI:-}" = "1" ]; then
        die "the tests left host-wide paths behind (listed above)"
    fi
fi
