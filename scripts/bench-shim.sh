#!/usr/bin/env bash
# Measures chaperone's shim against containerd's stock runc shim: container start latency
# through ctr and the resident memory of the shim processes.
set -euo pipefail
# shellcheck source=lib/common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
    cat <<USAGE
Usage: scripts/bench-shim.sh [--runs N] [--json] [--smaps DIR]

Builds containerd-shim-chaperone-v2 (release, linked statically as scripts/install.sh
does), starts a private containerd (config, root, state and sockets in a temp dir, the shim
first on its PATH, chaperone's profile store and alert log in the temp dir), imports a
locally built busybox image and measures:

  start    'ctr run --rm IMAGE ID /bin/true', timed from before ctr starts to after it
           exits (monotonic clock), N runs per configuration, interleaved round by round
           (the order rotates each round) after one untimed warm-up run each:
             runc-v2  io.containerd.runc.v2 (containerd's Go shim)
             off      io.containerd.chaperone.v2, chaperone.io/mode=off
             learn    io.containerd.chaperone.v2, chaperone.io/mode=learn,
                      chaperone.io/profile=bench
           p50 and p95 (nearest rank) in ms.
  memory   Rss and Pss (kB, /proc/PID/smaps_rollup) of the shim process serving a
           detached 'sleep 1000' container, for runc-v2 and chaperone in learn mode: with
           1 container, then with 10 (one shim each: the sum over the 10 shims and the
           mean per shim).

  --runs N  timed runs per configuration (default 50).
  --json    print one JSON object instead of the table:
            {"runc_v2_p50_ms","runc_v2_p95_ms","off_p50_ms","off_p95_ms",
             "learn_p50_ms","learn_p95_ms",
             "runc_v2_rss_kb","chaperone_rss_kb","runc_v2_pss_kb","chaperone_pss_kb",
             "runc_v2_rss_kb_10","chaperone_rss_kb_10","runc_v2_pss_kb_10",
             "chaperone_pss_kb_10",
             "runc_v2_rss_kb_10_mean","chaperone_rss_kb_10_mean",
             "runc_v2_pss_kb_10_mean","chaperone_pss_kb_10_mean",
             "off_minus_runc_v2_p50_ms","learn_minus_runc_v2_p50_ms",
             "off_vs_runc_v2_p50","learn_vs_runc_v2_p50",
             "rss_ratio","pss_ratio","rss_ratio_10","pss_ratio_10","runs"}
            (the *_kb figures without a suffix are the 1-container shim; *_10 are sums
            over 10 shims; *_vs_runc_v2_p50 and *_ratio* are chaperone / runc-v2, measured
            in this run).
  --smaps DIR  also copy /proc/PID/smaps of each 1-container shim measured to
            DIR/runc_v2.smaps and DIR/chaperone.smaps (where the memory is, per mapping).
  --help    this text.

Targets (the table says whether they are met; they do not change the exit status):
  off p50 <= runc-v2 p50 + 5 ms, learn p50 <= runc-v2 p50 + 25 ms,
  chaperone shim RSS <= 50 % of runc-v2's (1 container).

Needs root, runc, containerd (containerd, ctr, containerd-shim-runc-v2), python3 and a
static busybox at /bin/busybox (as root, missing Debian packages runc, containerd and
busybox-static are installed). Everything it starts is removed on exit. A container start
takes about 0.1 s, so the default N runs in under a minute after the build.

Exit status: 0 the benchmark ran, 1 it failed (prerequisites, build, containerd or a
container run), 2 bad arguments.
USAGE
}

bad_args() {
    usage >&2
    printf 'error: %s\n' "$*" >&2
    exit 2
}

runs=50
json=false
smaps_dir=
while [ $# -gt 0 ]; do
    case "$1" in
        --help | -h) usage; exit 0 ;;
        --json) json=true ;;
        --runs)
            [ $# -ge 2 ] || bad_args "--runs needs a value"
            runs="$2"
            shift
            ;;
        --runs=*) runs="${1#--runs=}" ;;
        --smaps)
            [ $# -ge 2 ] || bad_args "--smaps needs a directory"
            smaps_dir="$2"
            shift
            ;;
        *) bad_args "unknown argument: $1" ;;
    esac
    shift
done
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || bad_args "--runs must be a positive integer, got '$runs'"
[ -z "$smaps_dir" ] || [ -d "$smaps_dir" ] || bad_args "--smaps: no directory $smaps_dir"

readonly CHAPERONE_RT=io.containerd.chaperone.v2
readonly RUNC_RT=io.containerd.runc.v2
readonly SHIM_BINARY=containerd-shim-chaperone-v2
readonly IMAGE=docker.io/library/chaperone-bench:1
readonly BUSYBOX=/bin/busybox
readonly APPLETS=(sh echo cat sleep true false ls id ps kill)
readonly MEM_CONTAINERS=10

# --- prerequisites ----------------------------------------------------------------------

require_cargo
[ "$(id -u)" -eq 0 ] || die "must run as root (containerd and runc need it)"
ensure_packages runc containerd busybox-static
for bin in containerd ctr runc containerd-shim-runc-v2 python3 tar; do
    command -v "$bin" >/dev/null 2>&1 || die "$bin not found on PATH (apt-get install runc containerd python3)"
done
[ -f "$BUSYBOX" ] || die "no busybox at $BUSYBOX (apt-get install busybox-static)"
# A 64-bit ELF without a PT_INTERP program header runs in a rootfs without a dynamic loader.
python3 - "$BUSYBOX" <<'PY' || die "$BUSYBOX is not a static 64-bit ELF (apt-get install busybox-static)"
import struct, sys
elf = open(sys.argv[1], "rb").read()
if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
    sys.exit(1)
phoff, = struct.unpack_from("<Q", elf, 32)
phentsize, phnum = struct.unpack_from("<HH", elf, 54)
sys.exit(any(struct.unpack_from("<I", elf, phoff + i * phentsize)[0] == 3 for i in range(phnum)))
PY

cd "$CHAPERONE_ROOT"
log "building $SHIM_BINARY (release)"
build_shim_release >&2 || die "building the shim failed"
shim_dir="$(cargo_target_dir)/release"
[ -x "$shim_dir/$SHIM_BINARY" ] || die "the build left no $shim_dir/$SHIM_BINARY"
shim_dir="$(cd "$shim_dir" && pwd)"

# --- private containerd -----------------------------------------------------------------

tmp="$(mktemp -d /tmp/chp-bench.XXXXXX)"
sock="$tmp/c.sock"
# Container ids start with this (unique to this run: shims and runc state are host-wide).
tag="chpb-$$-$(date +%s)"
# A namespace of this run's own: runc's state (/run/containerd/runc/NAMESPACE) and the
# containers' cgroups (/NAMESPACE/ID) are host-wide, and the clean-up removes what is left of
# them even when containerd is gone.
ns="$tag"
containerd_pid=

# ctr on this containerd. An array, not a function: redirections on a function call apply
# in this shell, so the cleanup trap, which runs after the command, would inherit them.
CTR=(ctr -a "$sock" -n "$ns")

# Polls "$@" every 50 ms until it succeeds; fails after $1 seconds.
poll() {
    local timeout="$1"
    shift
    local deadline=$(($(date +%s%N) + timeout * 1000000000))
    until "$@"; do
        [ "$(date +%s%N)" -lt "$deadline" ] || return 1
        sleep 0.05
    done
}

# The status column of task $1 in 'ctr tasks ls' (empty when not listed).
task_status() { "${CTR[@]}" tasks ls 2>/dev/null | awk -v id="$1" '$1 == id { print $3 }'; }
task_not_running() { [ "$(task_status "$1")" != RUNNING ]; }
task_stopped() { [ "$(task_status "$1")" = STOPPED ]; }

# Best-effort removal of container $1 and its task.
remove_container() {
    "${CTR[@]}" tasks kill -s SIGKILL "$1" >/dev/null 2>&1 || true
    poll 5 task_not_running "$1" || true
    "${CTR[@]}" tasks delete -f "$1" >/dev/null 2>&1 || true
    "${CTR[@]}" containers delete "$1" >/dev/null 2>&1 || true
}

containerd_gone() { ! kill -0 "$containerd_pid" 2>/dev/null; }

cleanup() {
    local status=$?
    set +e
    trap - EXIT INT TERM
    if [ -n "$containerd_pid" ] && kill -0 "$containerd_pid" 2>/dev/null; then
        local id
        for id in $("${CTR[@]}" containers ls -q 2>/dev/null); do
            remove_container "$id"
        done
        kill -TERM "$containerd_pid" 2>/dev/null
        if ! poll 10 containerd_gone; then
            kill -KILL "$containerd_pid" 2>/dev/null
        fi
        wait "$containerd_pid" 2>/dev/null
    fi
    # Shims of this run that outlived their containers (only after a failure).
    local pid
    for pid in $(pgrep -f -- "containerd-shim-[a-z0-9-]+ .*-id $tag-" 2>/dev/null); do
        kill -KILL "$pid" 2>/dev/null
    done
    # Containers the removal through containerd missed (containerd died, or a run was
    # interrupted while it started one): runc's state of this run's namespace, their
    # processes, and then the namespace's cgroups, children first.
    local runc_root="/run/containerd/runc/$ns" id
    if [ -d "$runc_root" ]; then
        for id in $(runc --root "$runc_root" list -q 2>/dev/null); do
            runc --root "$runc_root" delete --force "$id" >/dev/null 2>&1
        done
        rmdir "$runc_root" 2>/dev/null
    fi
    local cgroup
    for cgroup in /sys/fs/cgroup/"$ns" /sys/fs/cgroup/*/"$ns"; do
        [ -d "$cgroup" ] && find "$cgroup" -depth -type d -exec rmdir {} + 2>/dev/null
    done
    # Whatever is still mounted under the temp dir (snapshots, rootfs) goes before it does.
    local target
    awk '{ print $5 }' /proc/self/mountinfo | grep -F "$tmp" | tac | while read -r target; do
        umount -l "$target" 2>/dev/null
    done
    if [ "$status" -ne 0 ] && [ -f "$tmp/containerd.log" ]; then
        printf '%s\n' '--- last lines of the containerd log ---' >&2
        tail -n 40 "$tmp/containerd.log" >&2
    fi
    rm -rf --one-file-system "$tmp"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cat >"$tmp/chaperone.toml" <<EOF
db_path = "$tmp/profiles.db"
alerts_path = "$tmp/alerts.jsonl"
EOF
# As integration/src/containerd.rs, but at the info log level: at debug containerd also
# passes -debug to the shims, and their logging would be part of what is measured.
cat >"$tmp/config.toml" <<EOF
version = 2
root = "$tmp/root"
state = "$tmp/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[debug]
  level = "info"
EOF
mkdir -p "$tmp/run"

log "starting containerd in $tmp"
# In a session of its own: Ctrl-C goes to the terminal's process group, and containerd
# handles SIGINT (Go undoes the ignoring a background job gets) by exiting, which would leave
# the clean-up no containerd to remove the containers through. setsid runs it without a fork
# here (this shell's background job is no process group leader), so $! is containerd's pid.
PATH="$shim_dir:$PATH" CHAPERONE_RUN_DIR="$tmp/run" CHAPERONE_CONFIG="$tmp/chaperone.toml" \
    setsid containerd --config "$tmp/config.toml" </dev/null >"$tmp/containerd.log" 2>&1 &
containerd_pid=$!
containerd_ready() {
    kill -0 "$containerd_pid" 2>/dev/null || die "containerd exited"
    "${CTR[@]}" version >/dev/null 2>&1
}
poll 30 containerd_ready || die "containerd did not answer on $sock within 30 s"

# --- busybox image ----------------------------------------------------------------------

# An OCI image layout as integration/src/containerd.rs build_image: one layer with static
# busybox, its applet links and /etc/passwd, /etc/group; config, manifest and index blobs
# named by their sha256; index.json names the image (io.containerd.image.name).
build_image() {
    local dir="$1"
    local rootfs="$dir/rootfs"
    local sub applet
    for sub in bin proc dev sys tmp etc root; do
        mkdir -p "$rootfs/$sub"
    done
    cp "$BUSYBOX" "$rootfs/bin/busybox"
    for applet in "${APPLETS[@]}"; do
        ln -s busybox "$rootfs/bin/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\n' >"$rootfs/etc/passwd"
    printf 'root:x:0:\n' >"$rootfs/etc/group"
    mkdir -p "$dir/layout/blobs/sha256"
    tar -C "$rootfs" --owner=0 --group=0 --numeric-owner -cf "$dir/layer.tar" .
    python3 - "$dir" "$IMAGE" <<'PY'
import hashlib, json, os, platform, sys

dir, name = sys.argv[1], sys.argv[2]
layout = os.path.join(dir, "layout")
arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())

def add_blob(data):
    hexd = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", hexd), "wb") as f:
        f.write(data)
    return "sha256:" + hexd, len(data)

def dump(obj):
    return json.dumps(obj, separators=(",", ":")).encode()

with open(os.path.join(dir, "layer.tar"), "rb") as f:
    layer_digest, layer_size = add_blob(f.read())
os.remove(os.path.join(dir, "layer.tar"))
config_digest, config_size = add_blob(dump({
    "architecture": arch,
    "os": "linux",
    "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"], "WorkingDir": "/"},
    "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
}))
manifest_digest, manifest_size = add_blob(dump({
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {
        "mediaType": "application/vnd.oci.image.config.v1+json",
        "digest": config_digest,
        "size": config_size,
    },
    "layers": [{
        "mediaType": "application/vnd.oci.image.layer.v1.tar",
        "digest": layer_digest,
        "size": layer_size,
    }],
}))
with open(os.path.join(layout, "index.json"), "wb") as f:
    f.write(dump({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
            "platform": {"architecture": arch, "os": "linux"},
            "annotations": {
                "io.containerd.image.name": name,
                "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1],
            },
        }],
    }))
with open(os.path.join(layout, "oci-layout"), "wb") as f:
    f.write(dump({"imageLayoutVersion": "1.0.0"}))
PY
    tar -C "$dir/layout" --owner=0 --group=0 --numeric-owner -cf "$dir/image.tar" .
}

log "building and importing $IMAGE"
build_image "$tmp/image" || die "building the busybox image failed"
"${CTR[@]}" images import "$tmp/image/image.tar" >&2 || die "ctr images import failed"
"${CTR[@]}" images ls -q | grep -qxF "$IMAGE" || die "$IMAGE not listed after the import"

# --- start latency ----------------------------------------------------------------------

configs=(runc_v2 off learn)
# The ctr run arguments of configuration $1 into the array cfg_args.
set_cfg_args() {
    case "$1" in
        runc_v2) cfg_args=(--runtime "$RUNC_RT") ;;
        off) cfg_args=(--runtime "$CHAPERONE_RT" --annotation chaperone.io/mode=off) ;;
        learn)
            cfg_args=(--runtime "$CHAPERONE_RT" --annotation chaperone.io/mode=learn
                --annotation chaperone.io/profile=bench)
            ;;
    esac
}

# Runs one container of configuration $1 with id $2 to completion; prints its ms.
timed_run() {
    local cfg_args
    set_cfg_args "$1"
    local t0 t1
    t0=$(date +%s%N)
    if ! "${CTR[@]}" run --rm "${cfg_args[@]}" "$IMAGE" "$2" /bin/true \
        </dev/null >"$tmp/run.out" 2>&1; then
        cat "$tmp/run.out" >&2
        die "ctr run of $2 ($1) failed"
    fi
    t1=$(date +%s%N)
    awk -v ns=$((t1 - t0)) 'BEGIN { printf "%.3f\n", ns / 1e6 }'
}

log "warm-up: one untimed run per configuration"
for cfg in "${configs[@]}"; do
    timed_run "$cfg" "$tag-warm-$cfg" >/dev/null
done
log "start latency: $runs runs x ${#configs[@]} configurations, interleaved"
for cfg in "${configs[@]}"; do
    : >"$tmp/lat-$cfg"
done
for ((round = 0; round < runs; round++)); do
    for ((k = 0; k < ${#configs[@]}; k++)); do
        cfg="${configs[$(((round + k) % ${#configs[@]}))]}"
        timed_run "$cfg" "$tag-$cfg-$round" >>"$tmp/lat-$cfg"
    done
    if [ $(((round + 1) % 10)) -eq 0 ] || [ $((round + 1)) -eq "$runs" ]; then
        log "  round $((round + 1))/$runs"
    fi
done

# --- memory -----------------------------------------------------------------------------

# The pid of the one shim process serving container $1 (whatever its runtime).
shim_pids() { pgrep -f -- "containerd-shim-[a-z0-9-]+ .*-id $1( |\$)" || true; }
one_shim() { [ "$(shim_pids "$1" | wc -l)" -eq 1 ]; }
shim_pid() {
    poll 10 one_shim "$1" || die "not exactly one shim process for $1: $(shim_pids "$1" | tr '\n' ' ')"
    shim_pids "$1"
}

# "RSS PSS" in kB of process $1.
rss_pss() {
    awk '/^Rss:/ { r = $2 } /^Pss:/ { p = $2 } END { if (r == "" || p == "") exit 1; print r, p }' \
        "/proc/$1/smaps_rollup" || die "cannot read /proc/$1/smaps_rollup"
}

# Shim memory in kB by <name>_{rss,pss}{,_10}.
declare -A mem=()

# Measures configuration $1 (runc_v2 or learn) as <name> $2 into mem.
measure_memory() {
    local cfg="$1" name="$2"
    local cfg_args ids=() id i pid line rss pss sum_rss=0 sum_pss=0
    set_cfg_args "$cfg"
    for ((i = 0; i < MEM_CONTAINERS; i++)); do
        id="$tag-mem-$cfg-$i"
        "${CTR[@]}" run -d "${cfg_args[@]}" "$IMAGE" "$id" sleep 1000 </dev/null >"$tmp/run.out" 2>&1 \
            || { cat "$tmp/run.out" >&2; die "ctr run -d of $id ($cfg) failed"; }
        ids+=("$id")
        if [ "$i" -eq 0 ]; then
            pid="$(shim_pid "$id")"
            line="$(rss_pss "$pid")"
            read -r rss pss <<<"$line"
            mem[${name}_rss]=$rss
            mem[${name}_pss]=$pss
            log "  $name, 1 container: shim pid $pid, Rss $rss kB, Pss $pss kB"
            if [ -n "$smaps_dir" ]; then
                cp "/proc/$pid/smaps" "$smaps_dir/$name.smaps" || die "cannot copy /proc/$pid/smaps"
            fi
        fi
    done
    for id in "${ids[@]}"; do
        pid="$(shim_pid "$id")"
        line="$(rss_pss "$pid")"
        read -r rss pss <<<"$line"
        sum_rss=$((sum_rss + rss))
        sum_pss=$((sum_pss + pss))
    done
    mem[${name}_rss_10]=$sum_rss
    mem[${name}_pss_10]=$sum_pss
    log "  $name, $MEM_CONTAINERS containers: Rss $sum_rss kB, Pss $sum_pss kB in all"
    for id in "${ids[@]}"; do
        "${CTR[@]}" tasks kill -s SIGKILL "$id" >/dev/null || die "ctr tasks kill $id failed"
    done
    for id in "${ids[@]}"; do
        poll 10 task_stopped "$id" || die "task $id did not stop"
        # (its stderr would warn of each exit code 137: the SIGKILL)
        "${CTR[@]}" tasks delete "$id" >"$tmp/run.out" 2>&1 \
            || { cat "$tmp/run.out" >&2; die "ctr tasks delete $id failed"; }
        "${CTR[@]}" containers delete "$id" >/dev/null || die "ctr containers delete $id failed"
    done
}

log "memory: 1, then $MEM_CONTAINERS detached containers per runtime"
measure_memory runc_v2 runc_v2
measure_memory learn chaperone

# --- report -----------------------------------------------------------------------------

python3 - "$tmp" "$runs" "$json" "$MEM_CONTAINERS" \
    "${mem[runc_v2_rss]}" "${mem[runc_v2_pss]}" "${mem[runc_v2_rss_10]}" "${mem[runc_v2_pss_10]}" \
    "${mem[chaperone_rss]}" "${mem[chaperone_pss]}" "${mem[chaperone_rss_10]}" \
    "${mem[chaperone_pss_10]}" <<'PY'
import json, math, sys

tmp, runs, as_json, n = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "true", int(sys.argv[4])
(rv_rss, rv_pss, rv_rss10, rv_pss10, ch_rss, ch_pss, ch_rss10, ch_pss10) = map(int, sys.argv[5:13])

def pct(xs, p):
    xs = sorted(xs)
    return xs[max(0, math.ceil(p / 100 * len(xs)) - 1)]

lat = {}
for cfg in ("runc_v2", "off", "learn"):
    xs = [float(l) for l in open(f"{tmp}/lat-{cfg}") if l.strip()]
    if len(xs) != runs:
        sys.exit(f"error: {len(xs)} timings for {cfg}, expected {runs}")
    lat[cfg] = (pct(xs, 50), pct(xs, 95))

r2 = lambda x: round(x, 2)
out = {
    "runc_v2_p50_ms": r2(lat["runc_v2"][0]), "runc_v2_p95_ms": r2(lat["runc_v2"][1]),
    "off_p50_ms": r2(lat["off"][0]), "off_p95_ms": r2(lat["off"][1]),
    "learn_p50_ms": r2(lat["learn"][0]), "learn_p95_ms": r2(lat["learn"][1]),
    "runc_v2_rss_kb": rv_rss, "chaperone_rss_kb": ch_rss,
    "runc_v2_pss_kb": rv_pss, "chaperone_pss_kb": ch_pss,
    "runc_v2_rss_kb_10": rv_rss10, "chaperone_rss_kb_10": ch_rss10,
    "runc_v2_pss_kb_10": rv_pss10, "chaperone_pss_kb_10": ch_pss10,
    "runc_v2_rss_kb_10_mean": round(rv_rss10 / n, 1),
    "chaperone_rss_kb_10_mean": round(ch_rss10 / n, 1),
    "runc_v2_pss_kb_10_mean": round(rv_pss10 / n, 1),
    "chaperone_pss_kb_10_mean": round(ch_pss10 / n, 1),
    "off_minus_runc_v2_p50_ms": r2(lat["off"][0] - lat["runc_v2"][0]),
    "learn_minus_runc_v2_p50_ms": r2(lat["learn"][0] - lat["runc_v2"][0]),
    "off_vs_runc_v2_p50": round(lat["off"][0] / lat["runc_v2"][0], 3),
    "learn_vs_runc_v2_p50": round(lat["learn"][0] / lat["runc_v2"][0], 3),
    "rss_ratio": round(ch_rss / rv_rss, 3) if rv_rss else None,
    "pss_ratio": round(ch_pss / rv_pss, 3) if rv_pss else None,
    "rss_ratio_10": round(ch_rss10 / rv_rss10, 3) if rv_rss10 else None,
    "pss_ratio_10": round(ch_pss10 / rv_pss10, 3) if rv_pss10 else None,
    "runs": runs,
}
if as_json:
    print(json.dumps(out))
    sys.exit(0)

met = lambda ok: "met" if ok else "NOT met"
d_off, d_learn = out["off_minus_runc_v2_p50_ms"], out["learn_minus_runc_v2_p50_ms"]
print(f"start latency: ctr run --rm /bin/true, {runs} runs per configuration, interleaved")
print(f"  {'configuration':<24} {'p50 ms':>9} {'p95 ms':>9} {'p50 - runc-v2':>14} {'p50 / runc-v2':>14}  target")
print(f"  {'runc-v2 (stock Go shim)':<24} {out['runc_v2_p50_ms']:>9.2f} {out['runc_v2_p95_ms']:>9.2f} {'':>14} {'':>14}")
print(f"  {'chaperone, mode off':<24} {out['off_p50_ms']:>9.2f} {out['off_p95_ms']:>9.2f} {d_off:>+14.2f}"
      f" {out['off_vs_runc_v2_p50']:>14.3f}  <= +5 ms: {met(d_off <= 5)}")
print(f"  {'chaperone, learn':<24} {out['learn_p50_ms']:>9.2f} {out['learn_p95_ms']:>9.2f} {d_learn:>+14.2f}"
      f" {out['learn_vs_runc_v2_p50']:>14.3f}  <= +25 ms: {met(d_learn <= 25)}")
print()
print(f"shim memory (kB, smaps_rollup): detached sleep containers, one shim each")
print(f"  {'runtime':<24} {'Rss 1':>8} {'Pss 1':>8} {f'Rss {n} sum':>11} {f'Pss {n} sum':>11}"
      f" {f'Rss {n} mean':>12} {f'Pss {n} mean':>12}")
for label, key in (("runc-v2 (stock Go shim)", "runc_v2"), ("chaperone, learn", "chaperone")):
    print(f"  {label:<24} {out[key + '_rss_kb']:>8} {out[key + '_pss_kb']:>8}"
          f" {out[key + '_rss_kb_10']:>11} {out[key + '_pss_kb_10']:>11}"
          f" {out[key + '_rss_kb_10_mean']:>12.1f} {out[key + '_pss_kb_10_mean']:>12.1f}")
ratio = out["rss_ratio"]
if ratio is not None:
    print(f"  Rss chaperone / runc-v2 (1 container): {ratio:.2f}  <= 0.50: {met(ratio <= 0.5)}")
for label, key in (("Pss, 1 container", "pss_ratio"), (f"Rss, {n} shims", "rss_ratio_10"),
                   (f"Pss, {n} shims", "pss_ratio_10")):
    if out[key] is not None:
        print(f"  {label} chaperone / runc-v2: {out[key]:.2f}")
PY
