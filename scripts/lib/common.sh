# Shared helpers for scripts/*.sh (sourced, not run).

# The repository root.
CHAPERONE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export CHAPERONE_ROOT

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Debian packages the build needs (see DESIGN.md "Build facts"); libc6-dev's libc.a and libm.a
# link the release shim statically (build_shim_release).
BUILD_PACKAGES=(gcc libc6-dev pkg-config libseccomp-dev linux-libc-dev protobuf-compiler)
# Extra packages the test script needs: python3 for check-crate-graph.sh, runc and a static
# busybox for the integration tests that run real containers, containerd (and ctr) for the
# shim tests.
# bsdutils gives `script`, the terminal the tty tests run ctr on (Essential on Debian: listed
# so that a trimmed image still gets it).
TEST_PACKAGES=(python3 runc busybox-static containerd bsdutils)
# What the fuzz targets (fuzz/) need besides the build packages: libfuzzer-sys compiles
# libFuzzer, which is C++, in its build script (so `cargo check` of fuzz/ needs it too).
FUZZ_PACKAGES=(g++)

# Installs the missing Debian packages given as arguments (root only; a no-op when all are there).
ensure_packages() {
    local missing=()
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "missing packages ${missing[*]}: run as root or install them"
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get could not install ${missing[*]}"
}

# The shim's binaries: the runtime and its runc-style alias (the same program).
SHIM_BINARIES=(containerd-shim-chaperone-v2 containerd-shim-runc-v2-chaperone)

# Builds the shim's binaries in release, linked statically against glibc (docs/adr/0014): a
# shim per pod then maps no libc, libm or loader (1.3 MB less resident memory each, measured).
# `cargo rustc` gives the flag to each binary's own compilation only: set for the whole
# workspace it would reach build scripts and proc macros, which cannot be static. The library and every
# dependency are those `cargo build --release` builds. A later `cargo build --release` of the
# shim package links them dynamically again.
build_shim_release() {
    local bin
    for bin in "${SHIM_BINARIES[@]}"; do
        cargo rustc --release --locked -p containerd-shim-chaperone-v2 --bin "$bin" \
            -- -C target-feature=+crt-static || return 1
    done
}

# Where cargo puts what it builds: CARGO_TARGET_DIR, or `build.target-dir` of a cargo config,
# else the repository's `target` (cargo metadata knows).
cargo_target_dir() {
    local dir
    dir="$(cd "$CHAPERONE_ROOT" && cargo metadata --format-version 1 --no-deps 2>/dev/null \
        | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
    printf '%s\n' "${dir:-${CARGO_TARGET_DIR:-$CHAPERONE_ROOT/target}}"
}

# Fails unless cargo is on PATH (the one prerequisite the scripts do not install).
require_cargo() {
    if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
        PATH="$HOME/.cargo/bin:$PATH"
    fi
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install the Rust toolchain (rustup) first"
}
