//! The node installer, `scripts/install-node.sh`, run against a temp dir standing for the host's
//! `/` (`--root`) with fake binaries, so no root is needed: it installs the binaries and
//! chaperone's runtime (deploy/containerd-runtime.toml between marker lines) into containerd's
//! config, a second run changes nothing, the original config is kept in a backup, configs it
//! cannot patch safely are refused untouched, `--uninstall` undoes it and `--dry-run` changes
//! nothing. With containerd installed, containerd itself reads the patched configs
//! (`containerd config dump`); as root, a private containerd started on one loads its CRI plugin.

// Integration tests are their own crate: no test module.
#![allow(clippy::tests_outside_test_module)]

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use chaperone_config::{Config, Mode};
use chaperone_integration::containerd::{have_containerd, wait_for};
use chaperone_integration::require;
use chaperone_integration::runc::is_root;
use tempfile::TempDir;
use toml::{Table, Value};

const BINARIES: [&str; 3] = [
    "chaperone",
    "containerd-shim-chaperone-v2",
    "containerd-shim-runc-v2-chaperone",
];
const RUNTIME_TYPE: &str = "io.containerd.chaperone.v2";
const BEGIN: &str = "# BEGIN chaperone runtime (managed by install-node.sh)";
const END: &str = "# END chaperone runtime";
/// The CRI plugin's runtimes in containerd's config (version 2).
const RUNTIMES: [&str; 4] = [
    "plugins",
    "io.containerd.grpc.v1.cri",
    "containerd",
    "runtimes",
];

/// containerd's config as Debian's package ships it: version 2, the CRI plugin's CNI paths.
const DEBIAN_CONFIG: &str = r#"version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.internal.v1.opt"]
    path = "/var/lib/containerd/opt"
"#;

/// A config with its own runc runtime, as `containerd config default` and kubeadm guides write.
const RUNC_CONFIG: &str = r#"version = 2

[plugins."io.containerd.grpc.v1.cri".containerd]
  default_runtime_name = "runc"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = true
"#;

/// A file of the repository.
fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// What a fake binary contains.
fn fake_binary(name: &str) -> String {
    format!("#!/bin/sh\necho fake {name}\n")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs the script with `args` only.
fn script(args: &[&str]) -> Output {
    Command::new("bash")
        .arg(repo_file("scripts/install-node.sh"))
        .args(args)
        .output()
        .expect("bash runs")
}

/// The value at `path` in a parsed TOML table; panics naming the path when it is missing.
fn at<'a>(table: &'a Table, path: &[&str]) -> &'a Value {
    let (last, parents) = path.split_last().expect("a path");
    let mut t = table;
    for key in parents {
        t = t
            .get(*key)
            .and_then(Value::as_table)
            .unwrap_or_else(|| panic!("no table {key} on the way to {path:?}"));
    }
    t.get(*last)
        .unwrap_or_else(|| panic!("no {path:?} in the config"))
}

/// The value at `path` under the CRI plugin's runtimes.
fn runtime<'a>(table: &'a Table, path: &[&str]) -> &'a Value {
    let full: Vec<&str> = RUNTIMES.iter().chain(path).copied().collect();
    at(table, &full)
}

fn parse(text: &str) -> Table {
    toml::from_str(text).unwrap_or_else(|e| panic!("not TOML: {e}\n{text}"))
}

/// A temp dir with `root/` (the host's `/`) and `bin/` (fake release binaries).
struct Node {
    dir: TempDir,
}

impl Node {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("chp-node")
            .tempdir()
            .unwrap();
        fs::create_dir(dir.path().join("root")).unwrap();
        fs::create_dir(dir.path().join("bin")).unwrap();
        for bin in BINARIES {
            let path = dir.path().join("bin").join(bin);
            fs::write(&path, fake_binary(bin)).unwrap();
            // Not executable: the installer sets the mode.
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        }
        Self { dir }
    }

    /// A node whose containerd config is `text`.
    fn with_config(text: &str) -> Self {
        let node = Self::new();
        fs::create_dir_all(node.config().parent().unwrap()).unwrap();
        fs::write(node.config(), text).unwrap();
        node
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn config(&self) -> PathBuf {
        self.root().join("etc/containerd/config.toml")
    }

    fn backup(&self) -> PathBuf {
        self.root().join("etc/containerd/config.toml.chaperone.bak")
    }

    fn chaperone_config(&self) -> PathBuf {
        self.root().join("etc/chaperone/config.toml")
    }

    fn config_text(&self) -> String {
        fs::read_to_string(self.config()).unwrap()
    }

    fn installed(&self, bin: &str) -> PathBuf {
        self.root().join("usr/local/bin").join(bin)
    }

    /// Runs the script on this node's root and binaries, then `args`.
    fn run(&self, args: &[&str]) -> Output {
        let root = self.root();
        let bin = self.dir.path().join("bin");
        let mut all = vec![
            "--root",
            root.to_str().unwrap(),
            "--bin-dir",
            bin.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        script(&all)
    }

    /// As [`Node::run`], and it must succeed.
    fn install(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?} failed:\n{}", stderr(&out));
        out
    }

    /// Every file and directory under the root: mode and contents.
    fn snapshot(&self) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
        fn walk(dir: &Path, into: &mut BTreeMap<PathBuf, (u32, Vec<u8>)>) {
            for entry in fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let meta = fs::symlink_metadata(&path).unwrap();
                if meta.is_dir() {
                    into.insert(path.clone(), (meta.permissions().mode(), Vec::new()));
                    walk(&path, into);
                } else {
                    into.insert(
                        path.clone(),
                        (meta.permissions().mode(), fs::read(&path).unwrap()),
                    );
                }
            }
        }
        let mut files = BTreeMap::new();
        walk(&self.root(), &mut files);
        files
    }
}

#[test]
fn a_fresh_root_gets_the_binaries_the_runtime_and_a_default_config() {
    let node = Node::new();
    node.install(&[]);

    for bin in BINARIES {
        let path = node.installed(bin);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o755, "{}", path.display());
        assert_eq!(fs::read_to_string(&path).unwrap(), fake_binary(bin));
    }

    let text = node.config_text();
    assert!(text.starts_with("version = 2\n"), "{text}");
    let config = parse(&text);
    assert_eq!(at(&config, &["version"]).as_integer(), Some(2));
    assert_eq!(
        runtime(&config, &["chaperone", "runtime_type"]).as_str(),
        Some(RUNTIME_TYPE)
    );
    assert_eq!(
        runtime(&config, &["chaperone", "options", "ConfigPath"]).as_str(),
        Some("/etc/chaperone/config.toml")
    );
    for key in ["pod_annotations", "container_annotations"] {
        assert_eq!(
            runtime(&config, &["chaperone", key]),
            &Value::Array(vec![Value::String("chaperone.io/*".into())]),
            "{key}"
        );
    }
    // The runtime is the fragment's, as written.
    let fragment = parse(&fs::read_to_string(repo_file("deploy/containerd-runtime.toml")).unwrap());
    assert_eq!(
        runtime(&config, &["chaperone"]),
        runtime(&fragment, &["chaperone"])
    );
    // containerd drops its built-in runc runtime once a config names any runtime (the CRI plugin
    // then fails to load): the block names runc too.
    assert_eq!(
        runtime(&config, &["runc", "runtime_type"]).as_str(),
        Some("io.containerd.runc.v2")
    );
    assert!(!node.backup().exists(), "no original, no backup");

    // chaperone's default config: valid for chaperone, learn mode.
    let chaperone = Config::parse(&fs::read_to_string(node.chaperone_config()).unwrap()).unwrap();
    assert_eq!(chaperone.mode, Mode::Learn);

    // Again: nothing changes, byte for byte.
    let before = node.snapshot();
    node.install(&[]);
    assert_eq!(node.snapshot(), before);
}

#[test]
fn a_debian_config_is_patched_in_place_with_a_backup() {
    let node = Node::with_config(DEBIAN_CONFIG);
    node.install(&[]);

    let text = node.config_text();
    assert!(
        text.starts_with(DEBIAN_CONFIG),
        "the original is kept as is:\n{text}"
    );
    assert_eq!(text.matches(BEGIN).count(), 1, "{text}");
    assert_eq!(text.matches(END).count(), 1, "{text}");
    let config = parse(&text);
    assert_eq!(
        at(
            &config,
            &["plugins", "io.containerd.grpc.v1.cri", "cni", "bin_dir"]
        )
        .as_str(),
        Some("/usr/lib/cni")
    );
    assert_eq!(
        runtime(&config, &["chaperone", "runtime_type"]).as_str(),
        Some(RUNTIME_TYPE)
    );
    assert_eq!(fs::read_to_string(node.backup()).unwrap(), DEBIAN_CONFIG);

    // A second run: byte-identical, the backup still the original.
    node.install(&[]);
    assert_eq!(node.config_text(), text);
    assert_eq!(fs::read_to_string(node.backup()).unwrap(), DEBIAN_CONFIG);

    // A block edited by hand, and a section added after it: the block is rewritten in place,
    // the section stays after it.
    let added = "[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n";
    let edited = text.replace(RUNTIME_TYPE, "io.containerd.stale.v2") + added;
    fs::write(node.config(), &edited).unwrap();
    node.install(&[]);
    assert_eq!(node.config_text(), text.clone() + added);
}

#[test]
fn a_config_with_its_own_runc_keeps_it() {
    let node = Node::with_config(RUNC_CONFIG);
    node.install(&[]);
    // One runc table (a second one would not parse), with its options.
    let config = parse(&node.config_text());
    assert_eq!(
        runtime(&config, &["runc", "options", "SystemdCgroup"]).as_bool(),
        Some(true)
    );
    assert_eq!(
        runtime(&config, &["chaperone", "runtime_type"]).as_str(),
        Some(RUNTIME_TYPE)
    );
    assert_eq!(node.config_text().matches("runtimes.runc]").count(), 1);
}

#[test]
fn a_disabled_cri_plugin_is_warned_about() {
    let text = DEBIAN_CONFIG.replace(
        "version = 2\n",
        "version = 2\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n",
    );
    let node = Node::with_config(&text);
    let out = node.install(&[]);
    assert!(
        stderr(&out).contains("disables the CRI plugin"),
        "{}",
        stderr(&out)
    );
    // Patched all the same: the runtime is there once the plugin is enabled.
    let config = parse(&node.config_text());
    assert_eq!(
        runtime(&config, &["chaperone", "runtime_type"]).as_str(),
        Some(RUNTIME_TYPE)
    );
}

#[test]
fn a_given_chaperone_config_is_installed_but_never_overwrites_one() {
    let node = Node::new();
    let given = node.dir.path().join("given.toml");
    fs::write(&given, "mode = \"monitor\"\n").unwrap();
    node.install(&["--config", given.to_str().unwrap()]);
    assert_eq!(
        fs::read_to_string(node.chaperone_config()).unwrap(),
        "mode = \"monitor\"\n"
    );

    fs::write(&given, "mode = \"enforce\"\n").unwrap();
    let out = node.install(&["--config", given.to_str().unwrap()]);
    assert_eq!(
        fs::read_to_string(node.chaperone_config()).unwrap(),
        "mode = \"monitor\"\n",
        "the existing config is kept"
    );
    assert!(stderr(&out).contains("is kept"), "{}", stderr(&out));
}

#[test]
fn configs_it_cannot_patch_safely_are_refused_untouched() {
    let already = format!(
        "{DEBIAN_CONFIG}[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.chaperone]\n  runtime_type = \"{RUNTIME_TYPE}\"\n"
    );
    let cases = [
        (
            "version 1",
            "root = \"/var/lib/containerd\"\n\n[plugins.cri]\n  sandbox_image = \"registry.k8s.io/pause:3.6\"\n".to_owned(),
            "no 'version = 2' line",
        ),
        (
            "version 3",
            "version = 3\n".to_owned(),
            "version 3",
        ),
        (
            "runtime defined outside the markers",
            already,
            "already defines runtimes.chaperone",
        ),
        (
            "a begin marker without an end",
            format!("{DEBIAN_CONFIG}{BEGIN}\n"),
            "marker",
        ),
    ];
    for (what, text, message) in cases {
        let node = Node::with_config(&text);
        let out = node.run(&[]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        assert!(err.contains(message), "{what}: {err}");
        assert_eq!(node.config_text(), text, "{what}: the config is untouched");
        assert!(!node.backup().exists(), "{what}: no backup");
        assert!(
            !node.installed("chaperone").exists() && !node.chaperone_config().exists(),
            "{what}: nothing is installed when the config is refused"
        );
    }
}

/// The runc runtime written in TOML's other forms (dotted keys, single-quoted keys) is seen, so
/// the block adds no second runc (which would not parse); the chaperone runtime written as a
/// dotted key in a `[...runtimes]` table is refused like a table is, and so are runtimes
/// written as an inline table, which TOML lets nothing add to.
#[test]
fn runtimes_in_any_toml_form_are_seen() {
    let cri = "[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n";
    for (what, runc) in [
        (
            "dotted keys",
            format!("{cri}  runtimes.runc.runtime_type = \"io.containerd.runc.v2\"\n"),
        ),
        (
            "single-quoted keys",
            "[plugins.'io.containerd.grpc.v1.cri'.containerd.runtimes.'runc']\n  runtime_type = \"io.containerd.runc.v2\"\n".to_owned(),
        ),
    ] {
        let text = format!("version = 2\n\n{runc}");
        let node = Node::with_config(&text);
        node.install(&[]);
        let patched = node.config_text();
        let config: Table =
            toml::from_str(&patched).unwrap_or_else(|e| panic!("{what}: {e}\n{patched}"));
        assert_eq!(
            runtime(&config, &["chaperone", "runtime_type"]).as_str(),
            Some(RUNTIME_TYPE),
            "{what}"
        );
        // The block's own runc table, added when the config has none, is not there.
        assert!(!patched.contains("# containerd default runtime, runc"), "{what}:\n{patched}");
    }
    let dotted = format!(
        "version = 2\n\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes]\n  chaperone.runtime_type = \"{RUNTIME_TYPE}\"\n"
    );
    let inline = format!(
        "version = 2\n\n{cri}  runtimes = {{ runc = {{ runtime_type = \"io.containerd.runc.v2\" }} }}\n"
    );
    for (text, message) in [
        (dotted, "already defines runtimes.chaperone"),
        (inline, "inline table"),
    ] {
        let node = Node::with_config(&text);
        let out = node.run(&[]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains(message), "{}", stderr(&out));
        assert_eq!(node.config_text(), text);
    }
}

/// A containerd config that is a symbolic link is patched where it points, an absolute target
/// taken under the root (a DaemonSet's `--root /host`), and the link stays; one pointing at
/// nothing is refused, the link untouched.
#[test]
fn a_symlinked_config_is_patched_through_the_link() {
    let node = Node::new();
    let real = node.root().join("etc/k8s/containerd.toml");
    fs::create_dir_all(real.parent().unwrap()).unwrap();
    fs::create_dir_all(node.config().parent().unwrap()).unwrap();
    fs::write(&real, DEBIAN_CONFIG).unwrap();
    std::os::unix::fs::symlink("/etc/k8s/containerd.toml", node.config()).unwrap();
    let out = node.install(&[]);
    assert!(
        stderr(&out).contains("is a symbolic link"),
        "{}",
        stderr(&out)
    );
    assert!(fs::symlink_metadata(node.config())
        .unwrap()
        .file_type()
        .is_symlink());
    let patched = fs::read_to_string(&real).unwrap();
    assert!(patched.contains(BEGIN), "{patched}");
    assert!(real
        .with_file_name("containerd.toml.chaperone.bak")
        .exists());
    node.install(&["--uninstall"]);
    assert_eq!(fs::read_to_string(&real).unwrap(), DEBIAN_CONFIG);
    assert!(fs::symlink_metadata(node.config())
        .unwrap()
        .file_type()
        .is_symlink());

    let dangling = Node::new();
    fs::create_dir_all(dangling.config().parent().unwrap()).unwrap();
    std::os::unix::fs::symlink("/etc/nowhere/containerd.toml", dangling.config()).unwrap();
    let out = dangling.run(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("which does not exist"),
        "{}",
        stderr(&out)
    );
    assert!(fs::symlink_metadata(dangling.config())
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(!dangling.installed("chaperone").exists());
}

/// A config of comments only is containerd's defaults, like an empty one: patched, the
/// comments kept. A config that imports others is patched without containerd's check (the
/// imported files are the host's), and says so.
#[test]
fn comment_only_and_importing_configs_are_patched() {
    let comments = "# containerd config, managed by ops\n# (defaults)\n";
    let node = Node::with_config(comments);
    node.install(&[]);
    let patched = node.config_text();
    assert!(
        patched.starts_with("version = 2\n") && patched.contains(comments),
        "{patched}"
    );
    assert!(toml::from_str::<Table>(&patched).is_ok(), "{patched}");

    let importing = DEBIAN_CONFIG.replace(
        "version = 2\n",
        "version = 2\nimports = [\"/etc/containerd/conf.d/*.toml\"]\n",
    );
    let node = Node::with_config(&importing);
    let out = node.install(&[]);
    assert!(
        stderr(&out).contains("imports other files"),
        "{}",
        stderr(&out)
    );
    assert!(node.config_text().contains(BEGIN));
}

/// A config ending without a newline gets one before the block, and `--uninstall` gives the
/// file back as it was, byte for byte; a second install changes nothing.
#[test]
fn uninstall_restores_a_config_without_a_final_newline() {
    let original = DEBIAN_CONFIG.trim_end_matches('\n');
    let node = Node::with_config(original);
    node.install(&[]);
    let patched = node.config_text();
    assert!(toml::from_str::<Table>(&patched).is_ok(), "{patched}");
    node.install(&[]);
    assert_eq!(node.config_text(), patched, "a second run changes nothing");
    node.install(&["--uninstall"]);
    assert_eq!(node.config_text(), original);
}

/// A fragment longer than a pipe holds is read whole every time (its check once failed at
/// random: grep -q stopped early, and the writer's SIGPIPE failed the pipeline).
#[test]
fn a_long_fragment_is_accepted_every_time() {
    let stock = fs::read_to_string(repo_file("deploy/containerd-runtime.toml")).unwrap();
    let mut long = stock.clone();
    for i in 0..200 {
        long.push_str(&format!(
            "\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.extra{i}]\n  runtime_type = \"{RUNTIME_TYPE}\"\n  pod_annotations = [\"chaperone.io/*\"]\n"
        ));
    }
    assert!(long.len() > 16_384);
    let node = Node::with_config(DEBIAN_CONFIG);
    let fragment = node.dir.path().join("long.toml");
    fs::write(&fragment, long).unwrap();
    for _ in 0..5 {
        node.install(&["--fragment", fragment.to_str().unwrap(), "--dry-run"]);
    }
}

/// `--restart` restarts containerd only when its config changed: a second run, which changes
/// nothing, does not restart it (seen in a dry run, which prints what it would run).
#[test]
fn restart_only_follows_a_change() {
    let node = Node::with_config(DEBIAN_CONFIG);
    let out = node.install(&["--restart", "--dry-run"]);
    assert!(stderr(&out).contains("would run:"), "{}", stderr(&out));
    node.install(&[]);
    let out = node.install(&["--restart", "--dry-run"]);
    let err = stderr(&out);
    assert!(!err.contains("would run:"), "{err}");
    assert!(err.contains("no restart needed"), "{err}");
}

#[test]
fn a_missing_binary_is_an_error_before_any_change() {
    let node = Node::with_config(DEBIAN_CONFIG);
    fs::remove_file(node.dir.path().join("bin/containerd-shim-chaperone-v2")).unwrap();
    let before = node.snapshot();
    let out = node.run(&[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("containerd-shim-chaperone-v2"), "{err}");
    assert_eq!(node.snapshot(), before);
}

#[test]
fn uninstall_removes_the_binaries_and_the_block() {
    let node = Node::with_config(DEBIAN_CONFIG);
    node.install(&[]);
    let out = node.install(&["--uninstall"]);
    for bin in BINARIES {
        assert!(!node.installed(bin).exists(), "{bin} is removed");
    }
    assert_eq!(node.config_text(), DEBIAN_CONFIG, "the block is removed");
    assert!(
        node.chaperone_config().exists(),
        "chaperone's config is left"
    );
    assert!(stderr(&out).contains("left in place"), "{}", stderr(&out));

    // Again: nothing left to do, nothing changes.
    let before = node.snapshot();
    node.install(&["--uninstall"]);
    assert_eq!(node.snapshot(), before);
}

#[test]
fn a_dry_run_changes_nothing() {
    let node = Node::with_config(DEBIAN_CONFIG);
    let before = node.snapshot();
    let out = node.install(&["--dry-run"]);
    assert_eq!(node.snapshot(), before);
    // It shows what would change: the block, as a diff.
    let diff = String::from_utf8_lossy(&out.stdout);
    assert!(diff.contains(&format!("+{BEGIN}")), "{diff}");
    assert!(
        diff.contains(&format!("+  runtime_type = \"{RUNTIME_TYPE}\"")),
        "{diff}"
    );

    node.install(&[]);
    let installed = node.snapshot();
    let out = node.install(&["--uninstall", "--dry-run"]);
    assert_eq!(node.snapshot(), installed);
    assert!(stderr(&out).contains("would remove"), "{}", stderr(&out));
}

#[test]
fn bad_arguments_exit_2_and_help_exits_0() {
    for args in [
        &["--bogus"][..],
        &["--root"],
        &["--config"],
        &["--root", ""],
    ] {
        let out = script(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("Usage:"), "{args:?}");
    }
    let out = script(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for option in [
        "--root",
        "--uninstall",
        "--dry-run",
        "--restart",
        "Exit codes",
    ] {
        assert!(help.contains(option), "{option} in:\n{help}");
    }
}

#[test]
fn containerd_reads_the_patched_configs() {
    if !require(
        have_containerd(),
        "containerd and ctr (apt-get install containerd)",
    ) {
        return;
    }
    for (what, initial) in [
        ("no config", None),
        ("Debian's config", Some(DEBIAN_CONFIG)),
        ("a config with runc", Some(RUNC_CONFIG)),
    ] {
        let node = initial.map_or_else(Node::new, Node::with_config);
        node.install(&[]);
        let out = Command::new("containerd")
            .arg("--config")
            .arg(node.config())
            .args(["config", "dump"])
            .output()
            .unwrap();
        let dump = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{what}: {}", stderr(&out));
        assert!(dump.contains(RUNTIME_TYPE), "{what}:\n{dump}");
        assert!(
            dump.contains("ConfigPath = \"/etc/chaperone/config.toml\""),
            "{what}:\n{dump}"
        );
        // The default runtime is still there.
        assert!(
            dump.contains("runtime_type = \"io.containerd.runc.v2\""),
            "{what}:\n{dump}"
        );
    }
}

/// A containerd process, killed on drop.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn containerd_loads_its_cri_plugin_with_the_patched_config() {
    if !(require(is_root(), "root (containerd needs it)")
        && require(
            have_containerd(),
            "containerd and ctr (apt-get install containerd)",
        ))
    {
        return;
    }
    // No runtime of its own: the case where containerd would lose its built-in runc.
    let node = Node::new();
    let state = node.dir.path().join("ctrd");
    node.install(&[]);
    // Keep the daemon's opt plugin inside the temp dir (its default is /opt/containerd).
    let extra = format!(
        "[plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{}\"\n",
        state.join("opt").display()
    );
    fs::write(node.config(), node.config_text() + &extra).unwrap();

    fs::create_dir(&state).unwrap();
    let socket = state.join("sock");
    let log_path = state.join("containerd.log");
    let log = File::create(&log_path).unwrap();
    let _daemon = Daemon(
        Command::new("containerd")
            .arg("--config")
            .arg(node.config())
            .arg("--root")
            .arg(state.join("root"))
            .arg("--state")
            .arg(state.join("state"))
            .arg("--address")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let ctr = |args: &[&str]| {
        Command::new("ctr")
            .arg("--address")
            .arg(&socket)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
    };
    let log = || fs::read_to_string(&log_path).unwrap_or_default();
    wait_for("containerd's socket", Duration::from_secs(30), || {
        ctr(&["version"])
    })
    .unwrap_or_else(|e| panic!("containerd log:\n{}\n{e:#}", log()));

    let plugins = ctr(&["plugins", "ls"]).expect("ctr plugins ls");
    let plugins = String::from_utf8_lossy(&plugins.stdout);
    let cri: Vec<&str> = plugins
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.first() == Some(&"io.containerd.grpc.v1") && f.get(1) == Some(&"cri"))
        .unwrap_or_else(|| panic!("no CRI plugin in:\n{plugins}"));
    assert_eq!(
        cri.last(),
        Some(&"ok"),
        "containerd log:\n{}\n{plugins}",
        log()
    );
}
