#!/usr/bin/env bash
# Generates the per-architecture syscall tables of profiler/src/syscalls/ from the Linux UAPI
# headers of Debian's linux-libc-dev package (themselves generated from the kernel's syscall_*.tbl).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
    cat <<USAGE
Usage: scripts/gen-syscall-tables.sh [--deb FILE | --suite SUITE] [--check] [--help]

Writes, under profiler/src/syscalls/, from the UAPI headers of a Debian linux-libc-dev
package (6.11 or later, whose headers hold every architecture's table, themselves generated
from the kernel's syscall_*.tbl):
  x86_64.rs    from usr/lib/linux/uapi/x86/asm/unistd_64.h
  i386.rs      from usr/lib/linux/uapi/x86/asm/unistd_32.h
  aarch64.rs   from usr/lib/linux/uapi/arm64/asm/unistd_64.h
  names.rs     the alphabet: the names already in names.rs, in their order, then the names
               of the three tables it lacks, sorted, as one more block; and BY_NAME, the
               alphabet's symbols in name order. A symbol is a name's place in the alphabet
               and profiles store symbols, so names are only ever appended (ADR 0025); a
               name of names.rs that no table has any more is an error.
Each file starts with a DO-NOT-EDIT header naming this script and the package version.
Installs apt's and dpkg's tools when missing (root only).

  --deb FILE      read the headers from this linux-libc-dev .deb
  --suite SUITE   download the newest linux-libc-dev of this Debian suite from
                  deb.debian.org, checked against the archive's signing keys (default:
                  trixie-backports, which follows the newest kernels)
  --check         generate into a temporary directory and fail if the checked-in files
                  differ (from a suite: fails too when the suite has a newer kernel with
                  new syscalls, which is the reason to run it)
  --help          show this help

Exit codes: 0 done (or up to date), 1 failure (or out of date), 2 bad arguments.
USAGE
}

check=0
deb=""
suite="trixie-backports"
while [ $# -gt 0 ]; do
    case "$1" in
        --check) check=1; shift ;;
        --deb)
            [ $# -ge 2 ] || { printf -- '--deb needs a file\n' >&2; usage >&2; exit 2; }
            deb="$2"; shift 2 ;;
        --suite)
            [ $# -ge 2 ] || { printf -- '--suite needs a suite name\n' >&2; usage >&2; exit 2; }
            suite="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) printf 'unknown argument: %s\n' "$1" >&2; usage >&2; exit 2 ;;
    esac
done

DEST="$CHAPERONE_ROOT/profiler/src/syscalls"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
out="$work/out"
mkdir -p "$out"

# Downloads the newest linux-libc-dev of suite $1 into $work/dl with apt, from lists of that
# suite alone (the machine's own sources and lists are not touched). apt checks the suite's
# Release file against the Debian archive keyring.
download_deb() {
    ensure_packages apt debian-archive-keyring
    local state="$work/apt"
    mkdir -p "$state/lists/partial" "$state/cache/archives/partial" "$work/dl"
    printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian %s main\n' \
        "$1" >"$state/sources.list"
    local opts=(
        -o "Dir::Etc::SourceList=$state/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$state/lists" -o "Dir::Cache=$state/cache"
        -o Debug::NoLocking=1 -o APT::Sandbox::User=root -qq
    )
    log "downloading the newest linux-libc-dev of $1"
    apt-get "${opts[@]}" update || die "apt-get update of suite $1 failed"
    (cd "$work/dl" && apt-get "${opts[@]}" download "linux-libc-dev/$1") ||
        die "downloading linux-libc-dev from suite $1 failed"
    local found=("$work"/dl/linux-libc-dev_*.deb)
    [ -f "${found[0]}" ] || die "suite $1 gave no linux-libc-dev package"
    deb="${found[0]}"
}

ensure_packages dpkg
if [ -z "$deb" ]; then
    download_deb "$suite"
fi
[ -r "$deb" ] || die "cannot read $deb"
PKG_VERSION="$(dpkg-deb -f "$deb" Version)" || die "$deb is not a Debian package"
[ "$(dpkg-deb -f "$deb" Package)" = linux-libc-dev ] || die "$deb is not linux-libc-dev"
dpkg-deb -x "$deb" "$work/deb" || die "cannot unpack $deb"

UAPI=usr/lib/linux/uapi
HDR_64="$UAPI/x86/asm/unistd_64.h"
HDR_32="$UAPI/x86/asm/unistd_32.h"
HDR_ARM64="$UAPI/arm64/asm/unistd_64.h"
for h in "$HDR_64" "$HDR_32" "$HDR_ARM64"; do
    [ -r "$work/deb/$h" ] ||
        die "linux-libc-dev $PKG_VERSION has no $h: it needs 6.11 or later (Debian 13's or newer)"
done

# Prints "NUMBER NAME" lines, sorted by number, for the plain "#define __NR_name N" headers.
plain_table() {
    awk '$1 == "#define" && $2 ~ /^__NR_[a-z0-9_]+$/ && $3 ~ /^[0-9]+$/ {
        print $3, substr($2, 6)
    }' "$1" | sort -n
}

# Fails unless the "NUMBER NAME" table in $1 has unique numbers and unique names.
check_unique() {
    local dup
    dup="$(awk '{ print $1 }' "$1" | uniq -d | head -n 3)"
    [ -z "$dup" ] || die "$2: duplicate syscall numbers: $dup"
    dup="$(awk '{ print $2 }' "$1" | sort | uniq -d | head -n 3)"
    [ -z "$dup" ] || die "$2: duplicate syscall names: $dup"
}

# header FILE SOURCE: the DO-NOT-EDIT header.
header() {
    cat <<HEADER
// @generated by scripts/gen-syscall-tables.sh from Debian linux-libc-dev $PKG_VERSION.
// DO NOT EDIT: change the script and run it again.
// Source: $2.
HEADER
}

# emit_arch TABLE RUST_FILE SOURCE ARCH
emit_arch() {
    {
        header "$2" "$3"
        printf '\n//! The %s syscall table: (number, name), sorted by number.\n\n' "$4"
        printf '/// Every %s syscall as (number, kernel name), sorted by number.\n' "$4"
        printf 'pub(super) const SYSCALLS: &[(u32, &str)] = &[\n'
        awk '{ printf "    (%s, \"%s\"),\n", $1, $2 }' "$1"
        printf '];\n'
    } >"$out/$2"
}

plain_table "$work/deb/$HDR_64" >"$work/x86_64.tbl"
plain_table "$work/deb/$HDR_32" >"$work/i386.tbl"
plain_table "$work/deb/$HDR_ARM64" >"$work/aarch64.tbl"

for arch in x86_64 i386 aarch64; do
    [ -s "$work/$arch.tbl" ] || die "$arch: no syscalls found"
    check_unique "$work/$arch.tbl" "$arch"
done

# Spot checks against numbers everyone knows, so a wrong header cannot slip through.
expect() {
    grep -qx "$2 $3" "$work/$1.tbl" || die "$1: expected $3 = $2, got: $(grep " $3\$" "$work/$1.tbl" || echo none)"
}
expect x86_64 0 read
expect x86_64 59 execve
expect x86_64 231 exit_group
expect x86_64 452 fchmodat2
expect i386 3 read
expect i386 102 socketcall
expect i386 192 mmap2
expect aarch64 56 openat
expect aarch64 63 read
expect aarch64 64 write
expect aarch64 80 fstat
expect aarch64 94 exit_group
expect aarch64 220 clone
expect aarch64 221 execve
expect aarch64 222 mmap
expect aarch64 435 clone3
if grep -qE ' (open|fcntl64|mmap2|llseek)$' "$work/aarch64.tbl"; then
    die "aarch64: 32-bit or legacy names leaked into the table"
fi

emit_arch "$work/x86_64.tbl" x86_64.rs "$HDR_64" x86_64
emit_arch "$work/i386.tbl" i386.rs "$HDR_32" i386
emit_arch "$work/aarch64.tbl" aarch64.rs "$HDR_ARM64" aarch64

# The alphabet so far: names.rs's NAMES entries (names and block comments), in their order.
# A missing names.rs starts an empty alphabet.
if [ -f "$DEST/names.rs" ]; then
    awk '/^pub const NAMES: &\[&str\] = &\[$/ { on = 1; next }
        on && /^\];$/ { exit }
        on' "$DEST/names.rs" >"$work/alphabet.lines"
else
    : >"$work/alphabet.lines"
fi
sed -n 's/^    "\([a-z0-9_]*\)",$/\1/p' "$work/alphabet.lines" >"$work/alphabet.names"
awk '{ print $2 }' "$work/x86_64.tbl" "$work/i386.tbl" "$work/aarch64.tbl" |
    LC_ALL=C sort -u >"$work/tables.names"
gone="$(LC_ALL=C comm -23 <(LC_ALL=C sort "$work/alphabet.names") "$work/tables.names" | head -n 5)"
[ -z "$gone" ] || die "in names.rs but in no table of linux-libc-dev $PKG_VERSION: $(echo $gone)." \
    "Symbols are never removed (ADR 0025): decide by hand"
LC_ALL=C comm -13 <(LC_ALL=C sort "$work/alphabet.names") "$work/tables.names" >"$work/new.names"

{
    header names.rs "the names of x86_64.rs, i386.rs and aarch64.rs"
    printf '\n//! The alphabet: every architecture'"'"'s syscall names, each once, in the order they came.\n\n'
    printf '/// Every syscall name of every supported architecture, each once. A [`super::Sym`] is an\n'
    printf '/// index into this list, and profiles store symbols, so the list only grows: the names a\n'
    printf '/// newer kernel adds are appended as a block, sorted (ADR 0025).\n'
    printf 'pub const NAMES: &[&str] = &[\n'
    cat "$work/alphabet.lines"
    if [ -s "$work/new.names" ]; then
        printf '    // From Debian linux-libc-dev %s, sorted.\n' "$PKG_VERSION"
        awk '{ printf "    \"%s\",\n", $1 }' "$work/new.names"
    fi
    printf '];\n\n'
    printf '/// The symbols of [`NAMES`] in byte-wise order of their names, for lookups by name.\n'
    printf 'pub(super) const BY_NAME: &[u16] = &[\n'
    cat "$work/alphabet.names" "$work/new.names" | awk '{ print NR - 1, $1 }' |
        LC_ALL=C sort -k2,2 | awk '
            { line = line (n % 12 ? " " : "    ") $1 ","; n++ }
            n % 12 == 0 { print line; line = "" }
            END { if (line != "") print line }'
    printf '];\n'
} >"$out/names.rs"

files=(x86_64.rs i386.rs aarch64.rs names.rs)
if [ "$check" -eq 1 ]; then
    stale=0
    for f in "${files[@]}"; do
        if ! cmp -s "$out/$f" "$DEST/$f"; then
            printf 'out of date: profiler/src/syscalls/%s\n' "$f" >&2
            stale=1
        fi
    done
    [ "$stale" -eq 0 ] || die "syscall tables are out of date: run scripts/gen-syscall-tables.sh"
    log "syscall tables are up to date (linux-libc-dev $PKG_VERSION)"
    exit 0
fi

for f in "${files[@]}"; do
    cp "$out/$f" "$DEST/$f"
done
log "wrote ${files[*]} to profiler/src/syscalls/ (linux-libc-dev $PKG_VERSION;" \
    "$(wc -l <"$work/x86_64.tbl") x86_64, $(wc -l <"$work/i386.tbl") i386," \
    "$(wc -l <"$work/aarch64.tbl") aarch64 syscalls; $(wc -l <"$work/new.names") new names)"
