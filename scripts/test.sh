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
  3. scripts/check-crate-graph.sh (the one-way crate graph of DESIGN.md)
  4. cargo test --workspace -- --nocapture: unit, property and dataset tests,
     and (as root, with runc and a static busybox, installed here) the
     integration tests that run real containers
  5. a closing line: "summary: N passed, N failed, N skipped"

Tests whose prerequisites are missing print "SKIPPED: ..."; with CI=true they fail.
The build packages: ${BUILD_PACKAGES[*]}; the test packages: ${TEST_PACKAGES[*]}.

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

ensure_packages "${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}"
require_cargo
cd "$CHAPERONE_ROOT"

if [ "$lint" -eq 1 ]; then
    log "cargo fmt --check"
    cargo fmt --all --check
    log "cargo clippy"
    cargo clippy --locked --workspace --all-targets -- -D warnings
    log "crate graph"
    scripts/check-crate-graph.sh
fi

log "cargo test"
results="$(mktemp)"
trap 'rm -f "$results"' EXIT
# --nocapture: a test that skips says so on stderr, and that must be seen.
cargo test --locked --workspace -- --nocapture 2>&1 | tee "$results"

# One closing line for the whole run (cargo prints one per test binary, the last often a doc-test
# binary with nothing in it).
awk '
    /^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
    /^SKIPPED:/ { s++ }
    END { printf "summary: %d passed, %d failed, %d skipped\n", p, f, s }
' "$results"
