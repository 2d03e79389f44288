#!/usr/bin/env bash
# Checks the one-way crate graph of DESIGN.md with `cargo metadata`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then
    cat <<USAGE
Usage: scripts/check-crate-graph.sh

Fails (exit 1) when a workspace crate depends on another workspace crate that
DESIGN.md does not allow, naming the edge. Allowed (normal and build deps):
  chaperone-config        -> (none)
  chaperone-profiler      -> config
  chaperone-seccomp-gen   -> config, profiler
  containerd-shim-chaperone-v2 -> config, profiler, seccomp-gen
  chaperone (cli)         -> config, profiler, seccomp-gen
  chaperone-integration   -> anything
USAGE
    exit 0
fi

require_cargo
cd "$CHAPERONE_ROOT"
cargo metadata --format-version 1 --no-deps --locked | python3 -c '
import json, sys
allowed = {
    "chaperone-config": set(),
    "chaperone-profiler": {"chaperone-config"},
    "chaperone-seccomp-gen": {"chaperone-config", "chaperone-profiler"},
    "containerd-shim-chaperone-v2": {"chaperone-config", "chaperone-profiler", "chaperone-seccomp-gen"},
    "chaperone": {"chaperone-config", "chaperone-profiler", "chaperone-seccomp-gen"},
    "chaperone-integration": None,
}
meta = json.load(sys.stdin)
members = {p["name"] for p in meta["packages"]}
bad = []
for p in meta["packages"]:
    name = p["name"]
    if name not in allowed:
        bad.append(f"{name}: not a crate of DESIGN.md; add it to scripts/check-crate-graph.sh with its allowed edges")
        continue
    for d in p["dependencies"]:
        if d["name"] not in members or d.get("kind") == "dev":
            continue
        if allowed[name] is not None and d["name"] not in allowed[name]:
            dep = d["name"]
            bad.append(f"{name} -> {dep}: not allowed by DESIGN.md")
for b in bad:
    print("crate graph:", b, file=sys.stderr)
if bad:
    sys.exit(1)
print(f"crate graph: {len(members)} crates, all edges allowed", file=sys.stderr)
'
