#!/usr/bin/env bash
# The demo: installs what is needed, builds and installs chaperone, then shows a container
# learned, its profile promoted to enforce, benign traffic passing and an attack stopped.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
    cat <<USAGE
Usage: scripts/demo.sh [--prefix DIR] [DEMO OPTIONS...]

As root on Debian 12: installs ${BUILD_PACKAGES[*]} and runc, containerd,
busybox-static if missing; builds and installs chaperone into PREFIX/bin (scripts/install.sh);
then runs the demo on a private containerd (its own socket and directories under /tmp, removed
at the end; the machine's containerd, if any, is not touched):

  1. builds a web-server image locally: busybox httpd with a CGI script that has a
     command-injection bug;
  2. runs it under chaperone (learn mode) with benign traffic, one fresh container per run,
     until the profile converges and the promotion policy switches it to enforce;
  3. runs benign traffic again under enforce: no alert;
  4. sends the attack (a shell through the CGI reads a secret and calls out): the container
     is killed at the first deviating syscall and the alert is printed with its explanation.

  --prefix DIR   where to install the binaries (default /usr/local)
  --help         show this help
DEMO OPTIONS are passed to chaperone-demo: --port N (default 18080), --benign-runs N,
--attack-runs N, --max-learn-runs N, --variation-runs N (false alarms on 9 benign
traffic variants, detections of 8 injected commands), --hot-coverage F (see
chaperone-demo --help, in cargo's target directory once built).

The options are checked before anything is installed or built.

Exit codes: 0 the story held; 1 it did not, or a step failed; 2 bad arguments; 141 its
standard output was closed (| head); 128 + N ended by signal N (SIGINT, SIGTERM, SIGHUP).
Either way the demo's containerd and containers are removed first.
USAGE
}

bad_argument() { printf '%s (see scripts/demo.sh --help)\n' "$1" >&2; exit 2; }

prefix=/usr/local
demo_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) [ $# -ge 2 ] || { usage >&2; exit 2; }; prefix="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        # chaperone-demo's own options, checked here so that a typo fails before the
        # packages, the build and the install rather than after them.
        --port|--benign-runs|--attack-runs|--max-learn-runs|--variation-runs)
            [ $# -ge 2 ] || bad_argument "$1 needs a value"
            [[ "$2" =~ ^[0-9]{1,9}$ ]] || bad_argument "$1 $2: not a whole number (at most 9 digits)"
            if [ "$1" = --port ] && ! (( 10#$2 >= 1 && 10#$2 <= 65535 )); then
                bad_argument "--port $2: not a port (1 to 65535)"
            fi
            if { [ "$1" = --attack-runs ] || [ "$1" = --max-learn-runs ]; } && (( 10#$2 == 0 )); then
                bad_argument "$1 0: the demo needs at least one"
            fi
            demo_args+=("$1" "$2"); shift 2 ;;
        --hot-coverage)
            [ $# -ge 2 ] || bad_argument "$1 needs a value"
            [[ "$2" =~ ^(0|1|0?\.[0-9]+|1\.0*|0\.)$ ]] || bad_argument "$1 $2: not a number from 0 to 1"
            demo_args+=("$1" "$2"); shift 2 ;;
        *) bad_argument "unknown argument: $1" ;;
    esac
done
[ -n "$prefix" ] || bad_argument "an empty --prefix"
case "$prefix" in /*) ;; *) prefix="$PWD/$prefix" ;; esac

[ "$(id -u)" -eq 0 ] || die "the demo runs containers: run it as root"
# The one prerequisite the script cannot install, checked before the packages.
require_cargo
ensure_packages "${BUILD_PACKAGES[@]}" runc containerd busybox-static
"$CHAPERONE_ROOT/scripts/install.sh" --prefix "$prefix" || die "installing chaperone failed"

require_cargo
cd "$CHAPERONE_ROOT"
log "building the demo driver"
cargo build --release --locked -p chaperone-integration --bin chaperone-demo \
    || die "building the demo driver failed"
log "running the demo"
exec "$(cargo_target_dir)/release/chaperone-demo" --bin-dir "$prefix/bin" ${demo_args[@]+"${demo_args[@]}"}
