#!/usr/bin/env bash
# Installs chaperone on a Kubernetes node: its binaries, a runtime entry in containerd's CRI
# config and a default chaperone config. Runs on the node itself or, with --root, from a
# privileged pod that mounts the host's / (deploy/installer.yaml). Self-contained: the installer
# image copies it to /opt/chaperone/ without the rest of scripts/.
set -euo pipefail

BEGIN_MARKER='# BEGIN chaperone runtime (managed by install-node.sh)'
END_MARKER='# END chaperone runtime'
# In the block when the config ended without a newline before it: --uninstall restores that.
NO_EOL_NOTE='# (the file ended without a newline before this block; --uninstall restores that)'
BINARIES=(chaperone containerd-shim-chaperone-v2 containerd-shim-runc-v2-chaperone)

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
bad_args() { printf 'error: %s\n' "$*" >&2; usage >&2; exit 2; }

usage() {
    cat <<USAGE
Usage: install-node.sh [--root DIR] [--bin-dir DIR] [--fragment FILE]
                       [--containerd-config PATH] [--config FILE] [--restart]
                       [--uninstall] [--dry-run] [--print-default-config] [--help]

Installs chaperone on this node for containerd 1.6/1.7 (config version 2) and Kubernetes:

  * ${BINARIES[*]}
    into ROOT/usr/local/bin (mode 0755, each replaced atomically);
  * the runtime fragment into containerd's config, between the lines
      ${BEGIN_MARKER}
      ${END_MARKER}
    (a block already there is replaced in place; the first change keeps a backup
    CONFIG.chaperone.bak). A config without an explicit runc runtime also gets one in the
    block: containerd drops its built-in runc entry as soon as the config names any runtime;
  * chaperone's config ROOT/etc/chaperone/config.toml, unless one exists (never overwritten).

Running it again changes nothing. A config that is a symbolic link is patched where the link
points (an absolute target is taken under ROOT); one pointing at nothing is refused. It
refuses (exit 1, config untouched) a containerd config that is not version 2, that defines
runtimes.chaperone itself (outside the markers) or writes the runtimes as an inline table,
whose markers are broken, or that containerd (when it can be run here) rejects once
patched. A config with 'imports' is patched without containerd's check: the imported files
are the host's, not this environment's.

  --root DIR                host root everything is installed under (default /)
  --bin-dir DIR             where the binaries are taken from (default: this script's
                            directory, else target/release of the repository)
  --fragment FILE           runtime fragment (default: containerd-runtime.toml next to this
                            script, else deploy/containerd-runtime.toml of the repository)
  --containerd-config PATH  containerd's config (default ROOT/etc/containerd/config.toml)
  --config FILE             chaperone config to install when none exists yet (default: a
                            minimal commented one, mode = "learn")
  --restart                 restart containerd afterwards when its config changed (systemctl;
                            with --root other than /, in the host's namespaces through
                            nsenter -t 1: needs hostPID); an unchanged config needs none
  --uninstall               remove the binaries and the marked block; chaperone's config, its
                            profile store and the backup are left in place
  --dry-run                 print what would change (a diff of containerd's config), change
                            nothing
  --print-default-config    print the default chaperone config and exit
  --help                    show this help

Exit codes: 0 done, 1 a step failed or the config was refused, 2 bad arguments.
USAGE
}

default_config() {
    cat <<'CONFIG'
# chaperone's node configuration, written by install-node.sh when none existed (it never
# overwrites this file). Every key is optional; all of them are in chaperone's
# config/README.md. A pod's chaperone.io/mode and chaperone.io/action annotations override the
# defaults below.

# Mode of containers with no annotation and no per-image setting: off, learn, monitor, enforce.
mode = "learn"

# Response to a deviation in enforce mode: alert, deny, pause, kill.
# action = "alert"

# closed: refuse traced containers when the profile store is unusable; open: run them untraced.
# fail_mode = "closed"

# db_path = "/var/lib/chaperone/profiles.db"
# alerts_path = "/var/log/chaperone/alerts.jsonl"

# Learn mode: a running container's counts are merged this often (seconds) too; 0: at exit only.
# learn_flush_seconds = 60
CONFIG
}

# Arguments.
script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root=/
bin_dir=
fragment=
containerd_config=
chaperone_config_src=
restart=0
uninstall=0
dry_run=0
while [ $# -gt 0 ]; do
    case "$1" in
        --root | --bin-dir | --fragment | --containerd-config | --config)
            { [ $# -ge 2 ] && [ -n "$2" ]; } || bad_args "$1 needs a value"
            case "$1" in
                --root) root="$2" ;;
                --bin-dir) bin_dir="$2" ;;
                --fragment) fragment="$2" ;;
                --containerd-config) containerd_config="$2" ;;
                --config) chaperone_config_src="$2" ;;
            esac
            shift 2
            ;;
        --restart) restart=1; shift ;;
        --uninstall) uninstall=1; shift ;;
        --dry-run) dry_run=1; shift ;;
        --print-default-config) default_config; exit 0 ;;
        -h | --help) usage; exit 0 ;;
        *) bad_args "unknown argument: $1" ;;
    esac
done

[ -d "$root" ] || die "--root $root is not a directory"
# Prefix of every installed path: empty for /, so paths stay /usr/local/bin and not //usr/...
prefix="${root%/}"
while [ "${prefix%/}" != "$prefix" ]; do prefix="${prefix%/}"; done
target_bin="$prefix/usr/local/bin"
containerd_config="${containerd_config:-$prefix/etc/containerd/config.toml}"
chaperone_config="$prefix/etc/chaperone/config.toml"

# Follows the symbolic links of $1 as the host sees them (an absolute target is under ROOT) and
# prints the path of the file itself, which may not exist. Fails after 40 links.
resolve_links() {
    local path="$1" target n=0
    while [ -L "$path" ]; do
        n=$((n + 1))
        [ "$n" -le 40 ] || return 1
        target="$(readlink "$path")" || return 1
        case "$target" in
            /*) path="$prefix$target" ;;
            *) path="$(dirname "$path")/$target" ;;
        esac
    done
    printf '%s\n' "$path"
}
containerd_config_named="$containerd_config"
containerd_config="$(resolve_links "$containerd_config")" ||
    die "$containerd_config_named: too many levels of symbolic links"
chaperone_config="$(resolve_links "$chaperone_config")" ||
    die "$prefix/etc/chaperone/config.toml: too many levels of symbolic links"

if [ -z "$bin_dir" ]; then
    bin_dir="$script_dir"
    if [ ! -e "$bin_dir/containerd-shim-chaperone-v2" ] && [ -d "$script_dir/../target/release" ]; then
        bin_dir="$(cd "$script_dir/../target/release" && pwd)"
    fi
fi
if [ -z "$fragment" ]; then
    fragment="$script_dir/containerd-runtime.toml"
    [ -f "$fragment" ] || fragment="$script_dir/../deploy/containerd-runtime.toml"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/chaperone-install.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# Copies $1 to $2 through a temporary file in $2's directory and a rename, so that a reader
# (or a running shim's executable) never sees a half-written file. $3: mode of a new file.
atomic_write() {
    local src="$1" dest="$2" mode="$3" tmp
    tmp="$(mktemp "$(dirname "$dest")/.$(basename "$dest").XXXXXX")"
    if ! cp "$src" "$tmp"; then rm -f "$tmp"; return 1; fi
    if [ -e "$dest" ]; then
        { chmod --reference="$dest" "$tmp" && chown --reference="$dest" "$tmp"; } || { rm -f "$tmp"; return 1; }
    else
        chmod "$mode" "$tmp" || { rm -f "$tmp"; return 1; }
    fi
    mv -f "$tmp" "$dest" || { rm -f "$tmp"; return 1; }
}

# Prints the lines of containerd config $1 outside the marked block. Fails (2) when the markers
# are unbalanced or there is more than one block.
outside_block() {
    awk -v begin="$BEGIN_MARKER" -v end="$END_MARKER" '
        { line = $0; sub(/[ \t\r]+$/, "", line) }
        line == begin { if (inside || seen) bad = 1; inside = 1; seen = 1; next }
        line == end { if (!inside) bad = 1; inside = 0; next }
        !inside { print }
        END { if (bad || inside) exit 2 }
    ' "$1"
}

# Prints config $1 with block $2 (a file) in place of the marked block, or appended when there
# is none.
with_block() {
    awk -v begin="$BEGIN_MARKER" -v end="$END_MARKER" -v block="$2" '
        function put(   l) { while ((getline l < block) > 0) print l; close(block); done = 1 }
        { line = $0; sub(/[ \t\r]+$/, "", line) }
        line == begin { inside = 1; put(); next }
        line == end { inside = 0; next }
        !inside { print }
        END { if (!done) put() }
    ' "$1"
}

# Uncommented lines of a TOML text on stdin (a `#` inside a string is rare enough in
# containerd's config to be ignored here).
code_lines() { sed -e 's/^[[:space:]]*#.*$//' -e 's/[[:space:]]#.*$//'; }

# The containerd binary of the host that can run here (containerd's own verdict on the
# patched config), or nothing.
find_containerd() {
    local c
    for c in "$prefix/usr/local/bin/containerd" "$prefix/usr/bin/containerd" "$prefix/bin/containerd" \
        "$(command -v containerd 2>/dev/null || true)"; do
        [ -n "$c" ] && [ -x "$c" ] && "$c" --version >/dev/null 2>&1 && { printf '%s\n' "$c"; return 0; }
    done
    return 0
}

restart_containerd() {
    local cmd=(systemctl restart containerd)
    [ -z "$prefix" ] || cmd=(nsenter -t 1 -m -u -i -n -p -- "${cmd[@]}")
    if [ "$dry_run" -eq 1 ]; then
        log "would run: ${cmd[*]}"
        return 0
    fi
    log "restarting containerd: ${cmd[*]}"
    "${cmd[@]}" || die "restarting containerd failed: ${cmd[*]}"
}

# Writes $1 over containerd's config when it differs: backup first, a diff with --dry-run.
# Returns 0 when the config changed (or would), 1 when it is already as wanted.
update_containerd_config() {
    local new="$1" old="$containerd_config"
    if [ -f "$old" ] && cmp -s "$new" "$old"; then
        log "containerd config $old: unchanged"
        return 1
    fi
    if [ "$dry_run" -eq 1 ]; then
        log "would write containerd config $old:"
        diff -u --label "$old" --label "$old (patched)" "$([ -f "$old" ] && echo "$old" || echo /dev/null)" "$new" || true
        return 0
    fi
    if [ -f "$old" ] && [ ! -e "$old.chaperone.bak" ]; then
        cp -p "$old" "$old.chaperone.bak" || die "cannot write the backup $old.chaperone.bak"
        log "kept the original as $old.chaperone.bak"
    fi
    mkdir -p "$(dirname "$old")" || die "cannot create $(dirname "$old")"
    atomic_write "$new" "$old" 0644 || die "cannot write $old"
    log "wrote containerd config $old"
    return 0
}

# With --restart, restarts containerd when its config changed (or would, in a dry run).
changed=0
restart_if_changed() {
    if [ "$restart" -eq 0 ]; then
        return 0
    elif [ "$changed" -eq 1 ]; then
        restart_containerd
    else
        log "containerd's config is unchanged: no restart needed"
    fi
}

# --- Uninstall ----------------------------------------------------------------------------
if [ "$uninstall" -eq 1 ]; then
    for bin in "${BINARIES[@]}"; do
        dest="$target_bin/$bin"
        if [ ! -e "$dest" ] && [ ! -L "$dest" ]; then
            log "$dest: not installed"
        elif [ "$dry_run" -eq 1 ]; then
            log "would remove $dest"
        else
            rm -f "$dest" || die "cannot remove $dest"
            log "removed $dest"
        fi
    done
    if [ ! -f "$containerd_config" ]; then
        log "containerd config $containerd_config: none"
    elif ! grep -Eq '^# (BEGIN|END) chaperone runtime' "$containerd_config"; then
        log "containerd config $containerd_config: no chaperone block"
    else
        outside_block "$containerd_config" >"$work/config.toml" ||
            die "$containerd_config: unbalanced or repeated chaperone marker lines; remove the block by hand"
        if grep -Fxq -e "$NO_EOL_NOTE" "$containerd_config" && [ -z "$(tail -c 1 "$work/config.toml")" ] &&
            [ -s "$work/config.toml" ]; then
            head -c -1 "$work/config.toml" >"$work/config.noeol" && mv "$work/config.noeol" "$work/config.toml"
        fi
        update_containerd_config "$work/config.toml" && changed=1
    fi
    log "left in place: chaperone's config $chaperone_config, its profile store and alert log"
    log "(/var/lib/chaperone, /var/log/chaperone) and any backup $containerd_config.chaperone.bak"
    restart_if_changed
    exit 0
fi

# --- Install: check everything first, change nothing until all checks passed --------------
missing=()
for bin in "${BINARIES[@]}"; do
    [ -f "$bin_dir/$bin" ] || missing+=("$bin")
done
[ ${#missing[@]} -eq 0 ] ||
    die "missing in $bin_dir: ${missing[*]} (build them with scripts/install.sh or cargo build --release, or pass --bin-dir)"
[ -f "$fragment" ] || die "runtime fragment $fragment not found (pass --fragment)"
# Through a file, not a pipe: grep -q stops at its first match, and the writer's SIGPIPE would
# fail the pipeline (pipefail) for a fragment longer than a pipe holds.
code_lines <"$fragment" >"$work/fragment.code" || die "cannot read $fragment"
grep -Eq '^[[:space:]]*\[.*runtimes\.("?)chaperone("?)\][[:space:]]*$' "$work/fragment.code" ||
    die "$fragment does not define [...containerd.runtimes.chaperone]"
! grep -Fxq -e "$BEGIN_MARKER" -e "$END_MARKER" "$fragment" ||
    die "$fragment contains the marker lines itself"
if [ -n "$chaperone_config_src" ]; then
    [ -f "$chaperone_config_src" ] || die "--config $chaperone_config_src not found"
fi

# containerd's config as it is, an empty one when missing.
if [ "$containerd_config" != "$containerd_config_named" ]; then
    [ -e "$containerd_config" ] ||
        die "$containerd_config_named is a symbolic link to $containerd_config, which does not exist; fix the link or pass --containerd-config"
    log "containerd config $containerd_config_named is a symbolic link: patching $containerd_config"
fi
if [ -f "$containerd_config" ]; then
    cp "$containerd_config" "$work/current.toml" || die "cannot read $containerd_config"
elif [ -e "$containerd_config" ]; then
    die "$containerd_config is not a regular file"
else
    : >"$work/current.toml"
fi
outside_block "$work/current.toml" >"$work/outside.toml" ||
    die "$containerd_config: unbalanced or repeated chaperone marker lines; fix them by hand"
code_lines <"$work/outside.toml" >"$work/code.toml"

# Version 2, a top-level key (before the first table).
version="$(awk '/^[[:space:]]*\[/ { exit } /^[[:space:]]*version[[:space:]]*=/ { v = $0; sub(/^[^=]*=[[:space:]]*/, "", v); sub(/[[:space:]]*$/, "", v); print v; exit }' "$work/code.toml")"
if ! grep -q '[^[:space:]]' "$work/code.toml"; then
    # Missing or empty config, or only comments (or only our block): containerd's defaults plus
    # our fragment. Comments are kept, after the version line.
    { printf 'version = 2\n'; cat "$work/outside.toml"; } >"$work/versioned.toml"
    mv "$work/versioned.toml" "$work/outside.toml"
elif [ "$version" != 2 ]; then
    case "$version" in
        "") die "$containerd_config has no 'version = 2' line: it is a version 1 config, which this fragment does not fit; rewrite it in version 2 (compare 'containerd config default') first" ;;
        3) die "$containerd_config is version 3 (containerd 2.x): this fragment is for version 2 (containerd 1.6/1.7)" ;;
        *) die "$containerd_config has version = $version: only version 2 is supported" ;;
    esac
fi
# Whether the TOML text of file $2 defines the runtime named $1, in any of TOML's forms: a table
# header ([...runtimes.NAME] or [...runtimes.NAME.options]), a dotted key (runtimes.NAME.x = ...,
# or NAME.x = ... in a [...runtimes] table), or an inline table (NAME = {...}, runtimes = {
# NAME = {...} }); keys bare or quoted either way.
defines_runtime() {
    local q="[\"']?"
    grep -Eq "^[[:space:]]*\\[.*runtimes\\.${q}$1${q}[[:space:]]*[].]" "$2" ||
        grep -Eq "runtimes\\.${q}$1${q}(\\.[^=]*)?[[:space:]]*=" "$2" ||
        grep -Eq "^[[:space:]]*${q}$1${q}(\\.[^=]*)?[[:space:]]*=" "$2" ||
        grep -Eq "runtimes[[:space:]]*=[[:space:]]*\\{.*${q}$1${q}[[:space:]]*=" "$2"
}
if defines_runtime chaperone "$work/code.toml"; then
    die "$containerd_config already defines runtimes.chaperone outside the chaperone markers; remove that definition and run this again"
fi
# An inline table is closed in TOML: no [...runtimes.chaperone] table can be added to it.
if grep -Eq '(^|[.[:space:]])runtimes[[:space:]]*=[[:space:]]*\{' "$work/code.toml"; then
    die "$containerd_config writes the runtimes as an inline table (runtimes = { ... }), which TOML lets nothing add to; write each runtime as a [...containerd.runtimes.NAME] table and run this again"
fi

# The CRI plugin disabled: the runtime is configured but unused until it is enabled.
disabled="$(awk '/^[[:space:]]*disabled_plugins[[:space:]]*=/ { on = 1 } on { printf "%s ", $0 } on && /\]/ { exit }' "$work/code.toml")"
cri_disabled=0
if grep -Eq '"(cri|io\.containerd\.grpc\.v1\.cri)"' <<<"$disabled"; then
    cri_disabled=1
    warn "$containerd_config disables the CRI plugin (disabled_plugins): Kubernetes cannot use containerd, nor chaperone's runtime, until it is enabled"
fi

# The block. containerd 1.6/1.7 replace their default runtimes map (with runc) by the config's as
# soon as it names one runtime; the CRI plugin then fails to load when its default runtime
# (runc unless default_runtime_name says otherwise) is not in the config.
# A config ending without a newline gets one before the block; the block says so.
no_eol=0
if grep -Fxq -e "$NO_EOL_NOTE" "$work/current.toml" ||
    { [ -s "$work/current.toml" ] && [ -n "$(tail -c 1 "$work/current.toml")" ] &&
        ! grep -Fxq -e "$BEGIN_MARKER" "$work/current.toml"; }; then
    no_eol=1
fi
default_runtime="$(sed -n 's/^[[:space:]]*default_runtime_name[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' "$work/code.toml" | head -n 1)"
{
    printf '%s\n' "$BEGIN_MARKER"
    printf '# Rewritten by install-node.sh on every run; --uninstall removes it. Edit its source,\n'
    printf '# deploy/containerd-runtime.toml, or remove the markers to take it over.\n'
    [ "$no_eol" -eq 0 ] || printf '%s\n' "$NO_EOL_NOTE"
    # The fragment without leading and trailing blank lines.
    awk 'NF { for (; blank > 0; blank--) print ""; print; started = 1; next } started { blank++ }' "$fragment"
    if [ "${default_runtime:-runc}" = runc ] && ! defines_runtime runc "$work/code.toml"; then
        printf '\n'
        printf '# containerd default runtime, runc, as containerd defines it when no runtime is configured:\n'
        printf '# without it the CRI plugin would not load once the runtime above is configured.\n'
        printf '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]\n'
        printf '  runtime_type = "io.containerd.runc.v2"\n'
    fi
    printf '%s\n' "$END_MARKER"
} >"$work/block.toml"

# The patched config: the marked block replaced in place, else appended (a missing final
# newline added first).
[ -z "$(tail -c 1 "$work/outside.toml")" ] || printf '\n' >>"$work/outside.toml"
if [ -s "$work/current.toml" ] && grep -q '[^[:space:]]' "$work/current.toml" && [ "$version" = 2 ]; then
    [ -z "$(tail -c 1 "$work/current.toml")" ] || printf '\n' >>"$work/current.toml"
    with_block "$work/current.toml" "$work/block.toml" >"$work/new.toml"
else
    cat "$work/outside.toml" "$work/block.toml" >"$work/new.toml"
fi

# containerd's own verdict, when a containerd binary runs here and the config is whole: the
# files an 'imports' key names are the host's, which it would look for here.
ctrd="$(find_containerd)"
if grep -Eq '^[[:space:]]*imports[[:space:]]*=' "$work/code.toml"; then
    warn "$containerd_config imports other files: the patched config is not checked by containerd here"
elif [ -n "$ctrd" ]; then
    if ! "$ctrd" --config "$work/new.toml" config dump >"$work/dump.toml" 2>"$work/dump.err"; then
        cat "$work/dump.err" >&2
        die "$ctrd rejects the patched config; $containerd_config left unchanged"
    fi
    # (A disabled plugin's config is not in the dump.)
    [ "$cri_disabled" -eq 1 ] || grep -q 'io.containerd.chaperone.v2' "$work/dump.toml" ||
        die "$ctrd does not see the chaperone runtime in the patched config; $containerd_config left unchanged"
else
    warn "no runnable containerd found: the patched config is not checked by containerd"
fi

# --- Install: the changes -----------------------------------------------------------------
if [ "$dry_run" -eq 0 ]; then
    mkdir -p "$target_bin" || die "cannot create $target_bin"
fi
for bin in "${BINARIES[@]}"; do
    src="$bin_dir/$bin" dest="$target_bin/$bin"
    if [ -f "$dest" ] && cmp -s "$src" "$dest"; then
        [ "$dry_run" -eq 1 ] || chmod 0755 "$dest" || die "cannot chmod $dest"
        log "$dest: unchanged"
    elif [ "$dry_run" -eq 1 ]; then
        log "would install $src as $dest (0755)"
    else
        # A new inode: running shims keep the old executable, new ones start the new one.
        atomic_write "$src" "$dest" 0755 || die "cannot install $dest"
        chmod 0755 "$dest" || die "cannot chmod $dest"
        log "installed $dest"
    fi
done

update_containerd_config "$work/new.toml" && changed=1

if [ -e "$chaperone_config" ]; then
    if [ -n "$chaperone_config_src" ] && ! cmp -s "$chaperone_config_src" "$chaperone_config"; then
        warn "$chaperone_config exists and is kept: --config $chaperone_config_src not installed"
    else
        log "$chaperone_config: exists, kept"
    fi
else
    if [ -n "$chaperone_config_src" ]; then
        cp "$chaperone_config_src" "$work/chaperone.toml" || die "cannot read $chaperone_config_src"
    else
        default_config >"$work/chaperone.toml"
    fi
    if [ "$dry_run" -eq 1 ]; then
        log "would write chaperone config $chaperone_config:"
        cat "$work/chaperone.toml"
    else
        mkdir -p "$(dirname "$chaperone_config")" || die "cannot create $(dirname "$chaperone_config")"
        atomic_write "$work/chaperone.toml" "$chaperone_config" 0644 || die "cannot write $chaperone_config"
        log "wrote chaperone config $chaperone_config"
    fi
fi

if [ "$restart" -eq 1 ]; then
    restart_if_changed
elif [ "$dry_run" -eq 0 ] && [ "$changed" -eq 1 ]; then
    log "restart containerd for the runtime to take effect (systemctl restart containerd, or --restart)"
fi
[ "$dry_run" -eq 0 ] || log "dry run: nothing was changed"
