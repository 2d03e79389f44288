#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer, through cargo-fuzz) of what chaperone reads from users
# and files: trace files, profile files, the node's config, base seccomp profiles, the
# profile store, runc's message on the seccomp listener socket and a container's own seccomp
# profile, which the shim rewrites. Not part of
# scripts/test.sh: it runs for minutes and needs nightly-only compiler flags (see
# fuzz/README.md).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

TARGETS=(trace_readers model_codec node_config base_profile profile_store listener_message
    container_filter)
CARGO_FUZZ_VERSION=0.13.2

usage() {
    cat <<USAGE
Usage: scripts/fuzz.sh [--seconds N] [--help] [TARGET...]

Fuzzes each TARGET (default: all) for N seconds (default 60), starting from a seed corpus
built from the repository's own fixtures and documentation (fuzz/corpus/TARGET, kept between
runs, not committed), with the target's dictionary (fuzz/dict/TARGET.dict) where it has one.
Installs cargo-fuzz $CARGO_FUZZ_VERSION from crates.io if missing.
Prints one line per target: its runs, its corpus, and whether it found a crash.

Targets: ${TARGETS[*]}

  --seconds N   time per target
  --help        show this help

A crash leaves its input under fuzz/artifacts/TARGET/; reproduce it with
  RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz TARGET fuzz/artifacts/TARGET/<file>

Exit codes: 0 no target crashed, 1 a target crashed or could not be built, 2 bad arguments.
USAGE
}

seconds=60
chosen=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds)
            [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || { printf '%s\n' "--seconds needs a positive whole number" >&2; exit 2; }
            seconds="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        -*) printf 'unknown option: %s\n' "$1" >&2; usage >&2; exit 2 ;;
        *)
            [[ " ${TARGETS[*]} " == *" $1 "* ]] || { printf 'unknown target: %s (targets: %s)\n' "$1" "${TARGETS[*]}" >&2; exit 2; }
            chosen+=("$1"); shift ;;
    esac
done
[ ${#chosen[@]} -gt 0 ] || chosen=("${TARGETS[@]}")

ensure_packages "${BUILD_PACKAGES[@]}" "${FUZZ_PACKAGES[@]}"
require_cargo
cd "$CHAPERONE_ROOT"
if ! cargo fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi
# cargo-fuzz passes -Zsanitizer and other unstable flags; this lets the pinned stable
# toolchain accept them instead of needing a nightly one.
export RUSTC_BOOTSTRAP=1

corpus=fuzz/corpus
seed() { mkdir -p "$corpus/$1"; }

log "seed corpora"
seed trace_readers
n=0
while IFS= read -r f; do
    n=$((n + 1)); cp "$f" "$corpus/trace_readers/fixture-$n"
done < <(find profiler/tests/fixtures seccomp-gen/tests/fixtures -type f -size -64k ! -name '*.json' | sort)

seed node_config
awk '/^```toml/ { on = 1; next } /^```/ { on = 0 } on' config/README.md > "$corpus/node_config/readme.toml"
printf 'mode = "enforce"\n' > "$corpus/node_config/mode.toml"

seed base_profile
cp seccomp-gen/tests/fixtures/*.json "$corpus/base_profile/"
printf '{"linux":{"seccomp":{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}}}\n' \
    > "$corpus/base_profile/config.json"

# What runc sends on the listener socket; the first byte picks the chunks and whether an fd
# goes with them (see the target).
seed listener_message
printf '\001{"ociVersion":"1.0.2","fds":["seccompFd"],"pid":4242,"metadata":"","state":{"ociVersion":"1.0.2","id":"c1","status":"creating","pid":4242,"bundle":"/run/c1","annotations":{"chaperone.io/mode":"learn"}}}' \
    > "$corpus/listener_message/runc.bin"

# A container's own seccomp profile; the first byte picks learn mode or a runtime filter and
# its unseen handling (see the target).
seed container_filter
printf '\000{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],"syscalls":[{"names":["read","write","openat","execve"],"action":"SCMP_ACT_ALLOW"},{"names":["socket"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"}]}]}' \
    > "$corpus/container_filter/errno-default.bin"
printf '\003{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mount","kexec_load"],"action":"SCMP_ACT_ERRNO","errnoRet":1},{"names":["ptrace"],"action":"SCMP_ACT_KILL_PROCESS"}]}' \
    > "$corpus/container_filter/allow-default.bin"
{ printf '\005'; cat seccomp-gen/tests/fixtures/docker-base.json; } > "$corpus/container_filter/docker-base.bin"
# runc's seccomp-agent example, without its listener.
printf '\000{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86","SCMP_ARCH_X32"],"syscalls":[{"names":["fchmod","chmod","mkdir"],"action":"SCMP_ACT_NOTIFY"}]}' \
    > "$corpus/container_filter/notify-rules.bin"

# Profiles and a store learned from the strace fixtures, by chaperone itself.
seed model_codec
seed profile_store
cargo build --locked --release -p chaperone
chaperone="$(cargo_target_dir)/release/chaperone"
"$chaperone" learn --from profiler/tests/fixtures/traces/strace/ok --format strace \
    -o "$corpus/model_codec/strace.profile" >/dev/null
"$chaperone" learn --from profiler/tests/fixtures/traces/sysdig/ok --format sysdig \
    -o "$corpus/model_codec/sysdig.profile" >/dev/null
rm -f "$corpus/profile_store/store.db"
"$chaperone" learn --from seccomp-gen/tests/fixtures/webserver-v1.strace --format strace \
    --image fuzz --db "$corpus/profile_store/store.db" >/dev/null
rm -f "$corpus/profile_store/store.db-wal" "$corpus/profile_store/store.db-shm"

failed=0
summary=()
for target in "${chosen[@]}"; do
    log "fuzzing $target for ${seconds}s"
    out="$(mktemp)"
    # -rss_limit_mb: a forged length that makes a reader allocate gigabytes is a finding too.
    # A target's dictionary (fuzz/dict/TARGET.dict), where it has one: the words of its format.
    dict=()
    [[ -f "fuzz/dict/$target.dict" ]] && dict=(-dict="fuzz/dict/$target.dict")
    if cargo fuzz run --fuzz-dir fuzz "$target" "$corpus/$target" -- "${dict[@]}" \
        -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 2>&1 | tee "$out" >&2; then
        result="no crash"
    else
        result="CRASH or build failure (see above; inputs in fuzz/artifacts/$target/)"
        failed=1
    fi
    runs="$(awk '/stat::number_of_executed_units:/ { print $2 }' "$out" | tail -n 1)"
    files="$(find "$corpus/$target" -type f | wc -l)"
    summary+=("$(printf '%-14s %10s runs in %ss, corpus %s files: %s' "$target" "${runs:-?}" "$seconds" "$files" "$result")")
    rm -f "$out"
done
printf '%s\n' "${summary[@]}"
exit "$failed"
