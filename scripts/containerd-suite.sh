#!/usr/bin/env bash
# Reruns containerd v1.6.20's own integration/client Go test suite against chaperone's shim
# (runtime io.containerd.runc.v2-chaperone) and against the stock runc-v2 shim
# (io.containerd.runc.v2) on Debian 12, offline, as shim/README.md's section
# "containerd's own client suite" describes.
#
# Usage: scripts/containerd-suite.sh COMMAND (as root)
#
#   all [N]          setup, N rounds (default 3) under each runtime, then teardown (also on failure)
#   setup            deps, source, build-test, build-shim, registry-up
#   deps             Debian packages: Go 1.19, containerd's build deps, the registry, skopeo,
#                    busybox-static, runc, containerd (adds a deb-src list)
#   source           apt-get source containerd, copied into a GOPATH tree
#   build-test       go test -c of integration/client (GOPATH mode, offline)
#   build-shim       git archive of $CHAPERONE_REPO's HEAD, built in release as scripts/install.sh
#                    builds it, installed into $SUITE/bin
#   registry-up      CA, TLS certificate, /etc/hosts, trust store, docker-registry on
#                    127.0.0.1:443, the stand-in images pushed with skopeo
#   run [N]          N interleaved rounds: $RUNS/<runtime>-<n>/test.log, $RUNS/summary.txt
#   alone TEST [N]   TEST (a -test.run name, subtests as A/B) alone N times (default 10) under
#                    each runtime, interleaved: $RUNS/alone/<TEST>/<runtime>-<i>/test.log
#                    (LOAD=K: with K busy loops running)
#   summary          per-run counts and the tests whose results differ between runs
#   teardown         stop the registry; remove the /etc/hosts block, the CA (system and Java
#                    trust stores), the deb-src list, the registry data and the suite's temp
#                    files; leaves the packages, $SUITE and $RUNS
#
# Exit codes: 0 done (a run's test failures are in its summary, not the exit code); 1 a step
# failed; 2 an unknown command.
#
# Environment: CHAPERONE_REPO (default: this repository, read only: only `git archive HEAD`
# reads it), SUITE (default target/containerd-suite: Go tree, caches, builds), RUNS (default
# $SUITE/runs), TEST_TIMEOUT (go test timeout per run, default 20m), RUNTIMES (default
# "runc-v2 chaperone").
#
# Not part of scripts/test.sh or CI: it changes the machine while it runs (/etc/hosts, the
# system's trust store, a registry on 127.0.0.1:443) and takes 20 to 30 minutes the first time.
#
# Each step can be run again: a step redoes its work from scratch (registry-up tears the registry
# down first; build-* rebuild). Must run as root (the suite itself requires root).
set -euo pipefail

SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CHAPERONE_REPO="${CHAPERONE_REPO:-$(dirname "$SCRIPTS")}"
SUITE="${SUITE:-$CHAPERONE_REPO/target/containerd-suite}"
RUNS="${RUNS:-$SUITE/runs}"
# Absolute: chaperone's config takes only absolute store and alert paths, written from these.
SUITE="$(realpath -m -- "$SUITE")"
RUNS="$(realpath -m -- "$RUNS")"
TEST_TIMEOUT="${TEST_TIMEOUT:-20m}"
RUNTIMES="${RUNTIMES:-runc-v2 chaperone}"

# Everything the registry and the runs need at run time, removed by teardown.
STATE=/tmp/chaperone-suite          # CA, certs, registry config/data/log/pid, image layouts
TEST_TMP=/tmp/chs-tmp               # TMPDIR of the test binary, containerd and the shims
CHP_RUN_DIR=/run/chaperone-suite    # CHAPERONE_RUN_DIR: the shims' state directories
CA_NAME=chaperone-suite-ca
CA_SYSTEM="/usr/local/share/ca-certificates/$CA_NAME.crt"
DEBSRC=/etc/apt/sources.list.d/chaperone-suite-deb-src.sources
HOSTS_BEGIN='# BEGIN chaperone client-suite stand-in registry'
HOSTS_END='# END chaperone client-suite stand-in registry'
REGISTRY_HOSTS=(ghcr.io k8s.gcr.io registry.k8s.io)

# The suite's own daemon (integration/client/client_unix_test.go): only these are ever stopped.
SUITE_ADDRESS=/run/containerd-test/containerd.sock
SUITE_ROOT=/var/lib/containerd-test
SUITE_STATE=/run/containerd-test

# The namespaces the tests use (testNamespace, TestRegressionIssue4769/6429's, and
# TestShimSockLength's 76 n's).
SUITE_NAMESPACES=(testing testing-TestRegressionIssue4769 testing-TestRegressionIssue6429 "$(printf 'n%.0s' $(seq 76))")

GOPATH_DIR="$SUITE/gopath"
PKG_DIR="$GOPATH_DIR/src/github.com/containerd/containerd/integration/client"
TEST_BIN="$SUITE/client.test"
BIN_DIR="$SUITE/bin"
CARGO_TARGET="$SUITE/cargo-target"
LOGS="$SUITE/logs"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
usage() { awk 'NR > 1 { if (!/^#/) exit; print }' "$0"; } # the whole header comment

[ "$(id -u)" -eq 0 ] || die "run as root"
mkdir -p "$LOGS"

runtime_name() { # short name -> TEST_RUNTIME
    case "$1" in
        runc-v2) echo io.containerd.runc.v2 ;;
        chaperone) echo io.containerd.runc.v2-chaperone ;;
        *) die "unknown runtime $1 (runc-v2 or chaperone)" ;;
    esac
}

# --- deps ------------------------------------------------------------------------------------
# Debian's Go 1.19 and every Go library containerd builds against (apt-get build-dep), the
# registry, skopeo, the static busybox the images are made of, runc and containerd (the suite
# starts /usr/bin/containerd and the stock shims from PATH), openssl for the CA.
step_deps() {
    if [ ! -e "$DEBSRC" ] && ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ &&
        ! grep -qs '^deb-src' /etc/apt/sources.list; then
        log "adding deb-src entries ($DEBSRC)"
        cat >"$DEBSRC" <<'EOF'
# Added by chaperone's scripts/containerd-suite.sh (teardown removes it): apt-get source containerd.
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    fi
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$LOGS/apt-update.log" 2>&1
    log "installing packages"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        golang-go golang-github-containerd-containerd-dev dpkg-dev docker-registry skopeo \
        busybox-static runc containerd openssl ca-certificates python3 \
        >"$LOGS/apt-install.log" 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get build-dep -y -qq containerd >"$LOGS/apt-build-dep.log" 2>&1
    go version
    containerd --version
    runc --version | head -n 1
}

# --- source ----------------------------------------------------------------------------------
# Debian 12's containerd source package (1.6.20~ds1 with Debian's patches; its vendor/ keeps the
# libraries Debian does not package), copied into a GOPATH tree ahead of /usr/share/gocode.
step_source() {
    mkdir -p "$SUITE/src"
    if ! ls -d "$SUITE"/src/containerd-1.6.20* >/dev/null 2>&1; then
        log "apt-get source containerd"
        (cd "$SUITE/src" && apt-get source -qq containerd) >"$LOGS/apt-source.log" 2>&1
    fi
    local src
    src="$(ls -d "$SUITE"/src/containerd-1.6.20*/ | head -n 1)"
    [ -d "$src/integration/client" ] || die "no integration/client in $src"
    log "copying $src into $GOPATH_DIR"
    rm -rf "$GOPATH_DIR/src/github.com/containerd/containerd"
    mkdir -p "$GOPATH_DIR/src/github.com/containerd"
    cp -a "$src" "$GOPATH_DIR/src/github.com/containerd/containerd"
    head -n 1 "$src/debian/changelog"
}

# --- build-test ------------------------------------------------------------------------------
# GOPATH mode, offline (no module downloads): containerd's packages from the copied source, its
# dependencies from its vendor/ and Debian's /usr/share/gocode.
go_env() {
    export GOPATH="$GOPATH_DIR:/usr/share/gocode" GO111MODULE=off GOPROXY=off GOFLAGS= \
        GOCACHE="$SUITE/gocache" GOTOOLCHAIN=local
}
step_build_test() {
    go_env
    log "go test -c integration/client ($(go version))"
    (cd "$PKG_DIR" && go test -c -o "$TEST_BIN" .) 2>&1 | tee "$LOGS/build-test.log"
    [ -x "$TEST_BIN" ] || die "no test binary"
}

# --- build-shim ------------------------------------------------------------------------------
# Exactly the committed HEAD of the repository (git archive: nothing of the work tree, nothing
# written to the repository), built as scripts/install.sh builds it: chaperone in release, the
# shim's two binaries with `cargo rustc -- -C target-feature=+crt-static` (static glibc,
# docs/adr/0014). Installed as $BIN_DIR/containerd-shim-runc-v2-chaperone (runtime
# io.containerd.runc.v2-chaperone), which the runs put first on PATH.
step_build_shim() {
    local commit dir
    commit="$(git -C "$CHAPERONE_REPO" rev-parse --short HEAD)"
    dir="$SUITE/chaperone-src/$commit"
    log "building chaperone at $commit (work tree changes, if any, are not built: $(git -C "$CHAPERONE_REPO" status --short | wc -l) changed paths)"
    rm -rf "$dir"
    mkdir -p "$dir"
    git -C "$CHAPERONE_REPO" archive HEAD | tar -x -m -C "$dir" # -m: mtimes now, so cargo rebuilds the workspace crates
    if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then PATH="$HOME/.cargo/bin:$PATH"; fi
    (
        cd "$dir"
        export CARGO_TARGET_DIR="$CARGO_TARGET"
        cargo build --release --locked -p chaperone
        for b in containerd-shim-chaperone-v2 containerd-shim-runc-v2-chaperone; do
            cargo rustc --release --locked -p containerd-shim-chaperone-v2 --bin "$b" \
                -- -C target-feature=+crt-static
        done
    ) >"$LOGS/build-shim.log" 2>&1 || { tail -n 30 "$LOGS/build-shim.log"; die "shim build failed"; }
    mkdir -p "$BIN_DIR"
    for b in chaperone containerd-shim-chaperone-v2 containerd-shim-runc-v2-chaperone; do
        install -m 0755 "$CARGO_TARGET/release/$b" "$BIN_DIR/$b"
    done
    echo "$commit" >"$BIN_DIR/COMMIT"
    # chaperone's defaults (the config install-node.sh writes: mode learn; action alert and
    # fail_mode closed are the defaults), with the profile store and alert log of the suite's
    # own, under $RUNS, instead of the node's /var/lib/chaperone and /var/log/chaperone.
    cat >"$SUITE/chaperone-config.toml" <<EOF
# chaperone's config for containerd's client suite (scripts/containerd-suite.sh): the defaults, own paths.
mode = "learn"
db_path = "$RUNS/chaperone-state/profiles.db"
alerts_path = "$RUNS/chaperone-state/alerts.jsonl"
EOF
    log "installed $BIN_DIR/containerd-shim-runc-v2-chaperone ($commit)"
}

# --- registry-up -----------------------------------------------------------------------------
hosts_remove() {
    grep -qF "$HOSTS_BEGIN" /etc/hosts || return 0
    local tmp
    tmp="$(mktemp)"
    awk -v b="$HOSTS_BEGIN" -v e="$HOSTS_END" '$0 == b { skip = 1; next } $0 == e { skip = 0; next } !skip' /etc/hosts >"$tmp"
    cat "$tmp" >/etc/hosts # in place: /etc/hosts may be a bind mount
    rm -f "$tmp"
}
hosts_add() {
    hosts_remove
    printf '%s\n127.0.0.1 %s\n%s\n' "$HOSTS_BEGIN" "${REGISTRY_HOSTS[*]}" "$HOSTS_END" >>/etc/hosts
}
registry_stop() {
    if [ -f "$STATE/registry.pid" ]; then
        local pid
        pid="$(cat "$STATE/registry.pid")"
        if [ -n "$pid" ] && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = docker-registry ]; then
            log "stopping the registry (pid $pid)"
            kill "$pid" || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
        rm -f "$STATE/registry.pid"
    fi
}
ca_remove() {
    log "removing the CA from the trust stores"
    if [ -e "$CA_SYSTEM" ]; then
        rm -f "$CA_SYSTEM"
    fi
    # update-ca-certificates without --fresh does not notice a removed local CA: it leaves the
    # CA's symlink and its hash link in /etc/ssl/certs (dangling) and tells no hook. With
    # --fresh it rebuilds the Java keystore from the whole system store, adding certificates
    # that were not in it before (22 here). So: the two links by hand, then a plain run, which
    # rebuilds ca-certificates.crt without the CA, then the Java keystore's entry with keytool.
    local l
    for l in /etc/ssl/certs/*; do
        [ -L "$l" ] || continue
        case "$(readlink "$l")" in
            "$CA_SYSTEM" | "$CA_NAME.pem") rm -f "$l" ;;
        esac
    done
    update-ca-certificates >"$LOGS/update-ca-remove.log" 2>&1
    # The Java keystore that update-ca-certificates' jks-keystore hook fills.
    if [ -f /etc/ssl/certs/java/cacerts ] && command -v keytool >/dev/null 2>&1 &&
        keytool -list -keystore /etc/ssl/certs/java/cacerts -storepass changeit 2>/dev/null | grep -qi "$CA_NAME"; then
        keytool -delete -alias "debian:$CA_NAME.pem" -keystore /etc/ssl/certs/java/cacerts -storepass changeit >/dev/null 2>&1
    fi
}
step_registry_up() {
    registry_stop
    rm -rf "$STATE"
    mkdir -p "$STATE/pki" "$STATE/registry-data"
    local pki="$STATE/pki"
    log "making the CA and the registry's certificate (${REGISTRY_HOSTS[*]})"
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=chaperone client-suite stand-in CA" \
        -keyout "$pki/ca.key" -out "$pki/ca.crt" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    local san="DNS:localhost,IP:127.0.0.1"
    local h
    for h in "${REGISTRY_HOSTS[@]}"; do san="$san,DNS:$h"; done
    openssl req -newkey rsa:2048 -nodes -subj "/CN=stand-in registry" \
        -keyout "$pki/registry.key" -out "$pki/registry.csr" 2>/dev/null
    printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$san" >"$pki/ext.cnf"
    openssl x509 -req -in "$pki/registry.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
        -days 30 -extfile "$pki/ext.cnf" -out "$pki/registry.crt" 2>/dev/null
    log "trusting the CA ($CA_SYSTEM, update-ca-certificates)"
    cp "$pki/ca.crt" "$CA_SYSTEM"
    update-ca-certificates >"$LOGS/update-ca-add.log" 2>&1
    log "adding /etc/hosts entries"
    hosts_add
    cat >"$STATE/registry.yml" <<EOF
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $STATE/registry-data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:443
  tls:
    certificate: $pki/registry.crt
    key: $pki/registry.key
EOF
    log "starting docker-registry on 127.0.0.1:443"
    setsid docker-registry serve "$STATE/registry.yml" >"$STATE/registry.log" 2>&1 </dev/null &
    echo $! >"$STATE/registry.pid"
    local ok=0
    for _ in $(seq 100); do
        if curl -fsS https://ghcr.io/v2/ >/dev/null 2>&1; then ok=1; break; fi
        sleep 0.1
    done
    [ "$ok" -eq 1 ] || { tail "$STATE/registry.log"; die "the registry does not answer on https://ghcr.io/v2/"; }
    log "building the images from $(dpkg-query -W -f='busybox-static ${Version}' busybox-static)"
    python3 "$SCRIPTS/containerd-suite-images.py" "$STATE/images" /bin/busybox
    local name tag refs ref
    while read -r name tag refs; do
        for ref in $refs; do
            log "pushing $ref"
            skopeo copy --all --quiet "oci:$STATE/images/$name:$tag" "docker://$ref"
        done
    done <"$STATE/images/images.txt"
    skopeo inspect --raw docker://ghcr.io/containerd/busybox:1.32 | python3 -c 'import json,sys; print("busybox index:", [m["platform"] for m in json.load(sys.stdin)["manifests"]])'
}

# --- runs ------------------------------------------------------------------------------------
# Processes started by the suite's own daemon (their command line names its address), left over
# after a run: shims and the daemon itself. Nothing else is ever killed.
suite_leftovers() {
    local p
    for p in /proc/[0-9]*; do
        # stderr first: a process gone meanwhile fails the input redirection, said nowhere.
        tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -qE -- "-address $SUITE_ADDRESS( |$)|--root $SUITE_ROOT( |$)" &&
            echo "${p#/proc/}"
    done
    return 0
}
clean_leftovers() {
    local pids
    pids="$(suite_leftovers | tr '\n' ' ')"
    if [ -n "${pids// /}" ]; then
        log "killing processes the suite's daemon left: $pids"
        ps -o pid,args -p "${pids// /,}" >&2 || true
        # shellcheck disable=SC2086
        kill -9 $pids 2>/dev/null || true
        sleep 1
    fi
}

# run_once RUNTIME DIR [go test args...]: the test binary under RUNTIME, output in DIR/test.log.
run_once() {
    local rt="$1" dir="$2"
    shift 2
    local test_runtime
    test_runtime="$(runtime_name "$rt")"
    [ -x "$TEST_BIN" ] || die "no test binary: run build-test"
    [ -x "$BIN_DIR/containerd-shim-runc-v2-chaperone" ] || die "no shim: run build-shim"
    curl -fsS https://ghcr.io/v2/ >/dev/null 2>&1 || die "the stand-in registry is not up: run registry-up"
    clean_leftovers
    rm -rf "$dir"
    mkdir -p "$dir" "$TEST_TMP" "$CHP_RUN_DIR" "$RUNS/chaperone-state"
    local start end rc=0
    start="$(date +%s.%N)"
    # The same environment for both runtimes but TEST_RUNTIME; the shim under test comes from
    # $BIN_DIR (first on PATH), containerd and runc-v2's shim from Debian's /usr/bin.
    (cd "$PKG_DIR" && env PATH="$BIN_DIR:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        TMPDIR="$TEST_TMP" TEST_RUNTIME="$test_runtime" \
        CHAPERONE_CONFIG="$SUITE/chaperone-config.toml" CHAPERONE_RUN_DIR="$CHP_RUN_DIR" \
        "$TEST_BIN" -test.root -test.v -test.timeout "$TEST_TIMEOUT" -no-criu "$@") >"$dir/test.log" 2>&1 || rc=$?
    end="$(date +%s.%N)"
    echo "$rc" >"$dir/rc"
    awk -v s="$start" -v e="$end" 'BEGIN { printf "%.1f\n", e - s }' >"$dir/seconds"
    {
        echo "runtime=$test_runtime"
        echo "shim_commit=$(cat "$BIN_DIR/COMMIT")"
        echo "started=$(date -u -d "@${start%.*}" +%FT%TZ)"
        echo "load_before=$(cut -d' ' -f1-3 /proc/loadavg)"
        echo "args=$*"
    } >"$dir/info"
    summarize_log "$dir" >"$dir/summary.txt"
    clean_leftovers
    rm -rf "${TEST_TMP:?}"/*
    log "$(basename "$dir"): $(head -n 1 "$dir/summary.txt")"
}

# summarize_log DIR: counts from go test -v's result lines. Top level: lines at column 0; with
# subtests: every level.
summarize_log() {
    local f="$1/test.log"
    local tp tf ts ap af as
    tp=$(grep -cE '^--- PASS: ' "$f" || true); tf=$(grep -cE '^--- FAIL: ' "$f" || true)
    ts=$(grep -cE '^--- SKIP: ' "$f" || true)
    ap=$(grep -cE '^ *--- PASS: ' "$f" || true); af=$(grep -cE '^ *--- FAIL: ' "$f" || true)
    as=$(grep -cE '^ *--- SKIP: ' "$f" || true)
    echo "pass $tp ($ap with subtests) / fail $tf ($af) / skip $ts ($as) / ${SECONDS_OVERRIDE:-$(cat "$1/seconds" 2>/dev/null)} s / rc $(cat "$1/rc" 2>/dev/null)"
    echo "failed:"; grep -E '^ *--- FAIL: ' "$f" | sed -E 's/^ *--- FAIL: ([^ ]+).*/  \1/' || true
    echo "skipped:"; grep -E '^ *--- SKIP: ' "$f" | sed -E 's/^ *--- SKIP: ([^ ]+).*/  \1/' || true
}

step_run() {
    local n="${1:-3}" i rt order
    for i in $(seq 1 "$n"); do
        # Interleaved, the first runtime alternating from round to round.
        if [ $((i % 2)) -eq 1 ]; then order="$RUNTIMES"; else order="$(echo "$RUNTIMES" | awk '{ for (j = NF; j > 0; j--) printf "%s ", $j }')"; fi
        for rt in $order; do
            # Run i of a runtime: $RUNS/<runtime>-<i> (a rerun replaces it).
            log "round $i: $rt"
            run_once "$rt" "$RUNS/$rt-$i"
        done
    done
    step_summary
}

step_alone() {
    local test="${1:?test name}" n="${2:-10}" i rt
    local safe="${test//\//_}"
    local pattern
    # -test.run takes one regexp per level: TestA/Sub -> ^TestA$/^Sub$
    pattern="$(echo "$test" | awk -F/ '{ for (j = 1; j <= NF; j++) printf "%s^%s$", (j > 1 ? "/" : ""), $j }')"
    # LOAD=K: K busy loops (sh -c 'while :; do :; done') run meanwhile, as the cores are busy
    # in a full run; stopped by their pids afterwards.
    local load_pids=() j
    for j in $(seq 1 "${LOAD:-0}"); do
        sh -c 'while :; do :; done' &
        load_pids+=($!)
    done
    [ "${#load_pids[@]}" -eq 0 ] || log "busy loops: ${load_pids[*]}"
    for i in $(seq 1 "$n"); do
        for rt in $RUNTIMES; do
            run_once "$rt" "$RUNS/alone/$safe/$rt-$i" -test.run "$pattern"
        done
    done
    [ "${#load_pids[@]}" -eq 0 ] || kill "${load_pids[@]}"
    for rt in $RUNTIMES; do
        local pass=0 fail=0
        for i in $(seq 1 "$n"); do
            if grep -qE "^ *--- PASS: $test " "$RUNS/alone/$safe/$rt-$i/test.log"; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
        done
        echo "$test alone under $rt: passed $pass of $n, failed $fail" | tee -a "$RUNS/alone/$safe/summary.txt"
    done
}

step_summary() {
    local d
    {
        for d in "$RUNS"/*-[0-9]*/; do
            [ -f "$d/test.log" ] || continue
            printf '%s (%s): %s\n' "$(basename "$d")" "$(grep started= "$d/info" | cut -d= -f2)" "$(summarize_log "$d" | head -n 1)"
        done
        echo
        echo "Tests (subtests included) whose result is not the same in every run of both runtimes;"
        echo "per runtime: passed / runs."
        python3 - "$RUNS" <<'PY'
import glob, os, re, sys
runs = sys.argv[1]
res = {}  # runtime -> list of {test: result}
for d in sorted(glob.glob(os.path.join(runs, "*-[0-9]*"))):
    m = re.match(r"(.*)-(\d+)$", os.path.basename(d))
    if not m or not os.path.isfile(os.path.join(d, "test.log")):
        continue
    r = {}
    for line in open(os.path.join(d, "test.log"), errors="replace"):
        mm = re.match(r"^ *--- (PASS|FAIL|SKIP): (\S+)", line)
        if mm:
            r[mm.group(2)] = mm.group(1)
    res.setdefault(m.group(1), []).append(r)
tests = sorted({t for rs in res.values() for r in rs for t in r})
for t in tests:
    cells = []
    seen = set()
    for rt, rs in sorted(res.items()):
        p = sum(1 for r in rs if r.get(t) == "PASS")
        s = sum(1 for r in rs if r.get(t) == "SKIP")
        seen.update(r.get(t, "NONE") for r in rs)
        cells.append("%s %d/%d%s" % (rt, p, len(rs), " (skipped %d)" % s if s else ""))
    if len(seen) > 1:
        print("  %-60s %s" % (t, "  ".join(cells)))
PY
    } | tee "$RUNS/summary.txt"
}

# --- teardown --------------------------------------------------------------------------------
step_teardown() {
    clean_leftovers
    registry_stop
    log "removing /etc/hosts entries"
    hosts_remove
    ca_remove
    log "removing registry data, images, temp files"
    rm -rf "$STATE" "$TEST_TMP" "$CHP_RUN_DIR" "$SUITE_ROOT" "$SUITE_STATE"
    # Files the suite leaves in /tmp when it runs without this script's TMPDIR: its containerd
    # config (os.CreateTemp("", "containerd-config-")) and its daemon's stdio file
    # (os.CreateTemp("", ""), a numbered name). Only those whose content is the suite's.
    local f
    for f in /tmp/containerd-config-*; do
        [ -f "$f" ] && grep -q 'shim_debug = true' "$f" && rm -f "$f"
    done
    for f in /tmp/[0-9]*; do
        [ -f "$f" ] && [[ "$(basename "$f")" =~ ^[0-9]+$ ]] && grep -qF "$SUITE_STATE" "$f" 2>/dev/null && rm -f "$f"
    done
    # What the suite's tests leave outside its root and state dirs, each only when empty (rmdir):
    # the namespaces' runc roots under /run/containerd/runc (the shims' default runc root) and
    # their cgroups (cgroupsPath /<namespace>/<id>; TestShimInCgroup's /containerd/shim and
    # TestShimOOMScore's /containerd/oomshim) in every hierarchy, and TestDaemonRuntimeRoot's
    # runc root /tmp/runc-test.
    local ns h n
    for ns in "${SUITE_NAMESPACES[@]}"; do
        rmdir "/run/containerd/runc/$ns" 2>/dev/null || true
    done
    for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
        for n in "${SUITE_NAMESPACES[@]}" containerd/shim containerd/oomshim containerd; do
            [ -d "$h$n" ] && { rmdir "$h$n" 2>/dev/null || log "cgroup $h$n is not empty: kept"; }
        done
    done
    [ ! -d /tmp/runc-test ] || find /tmp/runc-test -depth -type d -empty -delete
    if [ -e "$DEBSRC" ]; then
        log "removing $DEBSRC"
        rm -f "$DEBSRC"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$LOGS/apt-update-teardown.log" 2>&1 || true
    fi
    # What is left to check by eye.
    grep -F "${REGISTRY_HOSTS[0]}" /etc/hosts || echo "hosts: clean"
    ls /etc/ssl/certs | grep -i "$CA_NAME" || echo "system trust store: clean"
    keytool -list -keystore /etc/ssl/certs/java/cacerts -storepass changeit 2>/dev/null | grep -i "$CA_NAME" || echo "java trust store: clean"
    ss -ltn | grep -q '127.0.0.1:443 ' && echo "warning: something still listens on 127.0.0.1:443" || echo "registry: stopped"
}

cmd="${1:-}"
shift || true
case "$cmd" in
    deps) step_deps ;;
    source) step_source ;;
    build-test) step_build_test ;;
    build-shim) step_build_shim ;;
    registry-up) step_registry_up ;;
    setup) step_deps; step_source; step_build_test; step_build_shim; step_registry_up ;;
    run) step_run "${1:-3}" ;;
    alone) step_alone "$@" ;;
    summary) step_summary ;;
    teardown) step_teardown ;;
    all)
        trap step_teardown EXIT
        step_deps; step_source; step_build_test; step_build_shim; step_registry_up
        step_run "${1:-3}"
        ;;
    -h | --help) usage ;;
    *) usage >&2; exit 2 ;;
esac
