#!/usr/bin/env bash
# Installs what chaperone needs and builds and installs its binaries.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
    cat <<USAGE
Usage: scripts/install.sh [--prefix DIR] [--deps-only] [--help]

Installs the Debian packages chaperone builds against (${BUILD_PACKAGES[*]}),
builds the workspace in release mode and installs the binaries
(chaperone, containerd-shim-chaperone-v2 and its alias containerd-shim-runc-v2-chaperone,
runtime io.containerd.runc.v2-chaperone) into PREFIX/bin. The shim's binaries are linked
statically against glibc (docs/adr/0014), so they run on any x86_64 Linux kernel that has
seccomp user notification, whatever glibc the node has.

  --prefix DIR   where to install (default /usr/local)
  --deps-only    install the packages, build nothing
  --help         show this help

The binaries are taken from cargo's target directory (CARGO_TARGET_DIR when set). A relative
PREFIX is taken from the directory the script is run in.

Exit codes: 0 done, 1 a step failed (packages, build or install), 2 bad arguments.
USAGE
}

prefix=/usr/local
deps_only=0
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) [ $# -ge 2 ] || { usage >&2; exit 2; }; prefix="$2"; shift 2 ;;
        --deps-only) deps_only=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) printf 'unknown argument: %s\n' "$1" >&2; usage >&2; exit 2 ;;
    esac
done

[ -n "$prefix" ] || { printf 'an empty --prefix\n' >&2; usage >&2; exit 2; }
case "$prefix" in /*) ;; *) prefix="$PWD/$prefix" ;; esac

ensure_packages "${BUILD_PACKAGES[@]}"
[ "$deps_only" -eq 1 ] && exit 0

require_cargo
# Whether $prefix/bin can be made and written, checked before the build (minutes), not after
# it, and without making anything yet: at its nearest existing ancestor.
writable="$prefix/bin"
while [ ! -e "$writable" ]; do writable="$(dirname "$writable")"; done
[ -d "$writable" ] && [ -w "$writable" ] \
    || die "cannot install into $prefix/bin ($writable is not a directory you may write): run as root, or give a --prefix you own"
cd "$CHAPERONE_ROOT"
log "building release binaries"
cargo build --release --locked -p chaperone || die "building chaperone failed"
build_shim_release || die "building the shim failed"
release="$(cargo_target_dir)/release"
install -d "$prefix/bin" || die "cannot create $prefix/bin"
for bin in chaperone "${SHIM_BINARIES[@]}"; do
    install -m 0755 "$release/$bin" "$prefix/bin/$bin" || die "cannot install $prefix/bin/$bin"
    log "installed $prefix/bin/$bin"
done
