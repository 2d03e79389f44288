//! A private containerd (own config, root, state and socket under a temp dir) with chaperone's
//! shim on its `PATH`, a busybox OCI image built locally and imported into it, and `ctr` runs.
//! Everything is killed, unmounted and removed on drop, also when the test fails.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde_json::json;
use signal_hook::iterator::Signals;

use crate::require;
use crate::runc::{self, BUSYBOX};

/// The chaperone runtime.
pub const CHAPERONE: &str = "io.containerd.chaperone.v2";
/// The stock runc shim containerd ships (checks the tests themselves).
pub const RUNC_V2: &str = "io.containerd.runc.v2";
/// chaperone under its runc-style alias (binary `containerd-shim-runc-v2-chaperone`).
pub const CHAPERONE_RUNC_ALIAS: &str = "io.containerd.runc.v2-chaperone";
/// The shim binary's file name.
pub const SHIM_BINARY: &str = "containerd-shim-chaperone-v2";
/// The image [`Containerd::import_busybox`] imports.
pub const BUSYBOX_IMAGE: &str = "docker.io/library/chaperone-busybox:itest";
/// Names chaperone's config file for the shims (see the shim's `plan::CONFIG_ENV`).
pub const CONFIG_ENV: &str = "CHAPERONE_CONFIG";
const CHAPERONE_CONFIG_FILE: &str = "chaperone.toml";
/// Lines of containerd's log a failure message shows.
const EXPLAIN_LINES: usize = 120;

/// chaperone's config with its files under `base`, then `extra`.
fn chaperone_config(base: &Path, extra: &str) -> String {
    format!(
        "db_path = \"{}\"\nalerts_path = \"{}\"\n{extra}",
        base.join("profiles.db").display(),
        base.join("alerts.jsonl").display()
    )
}

/// Overrides the shim's run directory (see the shim's `learn::RUN_DIR_ENV`).
pub const RUN_DIR_ENV: &str = "CHAPERONE_RUN_DIR";
/// Prefix of the namespace each private containerd's ctr calls use (see
/// [`Containerd::namespace`]).
pub const NAMESPACE_PREFIX: &str = "chp";
/// Where the shims' runc keeps its state, one directory per namespace.
pub const RUNC_ROOT: &str = "/run/containerd/runc";
/// The namespace containerd's CRI plugin keeps Kubernetes' images and containers in.
pub const CRI_NAMESPACE: &str = "k8s.io";
/// Applets linked in the image's `/bin`.
const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "sleep", "uname", "true", "false", "ls", "id", "ps", "kill", "mkdir",
    "nc", "httpd", "wget",
];

/// A file added to an image: path in the rootfs, contents, permission bits.
pub type ImageFile<'a> = (&'a str, &'a [u8], u32);

/// True when `containerd` and `ctr` are installed.
pub fn have_containerd() -> bool {
    ["containerd", "ctr"].iter().all(|bin| {
        Command::new(bin)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// The directory of the shim binary built with the running test: `target/<profile>/`, the
/// parent of the test executable's `deps/`.
pub fn shim_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let profile_dir = exe.parent()?.parent()?;
    profile_dir
        .join(SHIM_BINARY)
        .is_file()
        .then(|| profile_dir.to_owned())
}

/// The binaries in [`shim_dir`] the tests run.
const BINARIES: &[&str] = &[
    SHIM_BINARY,
    "containerd-shim-runc-v2-chaperone",
    "chaperone",
];

/// The first binary in `dir` older than a file it was built from, with that file: one that
/// `cargo build --workspace` has not rebuilt since its source changed. The files are the ones
/// cargo's dep-info (`dir/<binary>.d`, written beside the binary) lists, which are the ones
/// cargo rebuilds it for. Tests run the binaries as files, and `cargo test -p
/// chaperone-integration` alone does not rebuild them (a path dependency's binaries are not
/// built for its dependents' tests).
pub fn stale_binary(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    BINARIES
        .iter()
        .find_map(|name| Some((dir.join(name), newer_source(dir, name)?)))
}

/// A file the binary `dir/name` was built from that is newer than it, if any (none when
/// there is no dep-info beside it: an installed binary).
pub fn newer_source(dir: &Path, name: &str) -> Option<PathBuf> {
    let built = std::fs::metadata(dir.join(name))
        .and_then(|m| m.modified())
        .ok()?;
    let dep_info = std::fs::read_to_string(dir.join(format!("{name}.d"))).ok()?;
    dep_info_sources(&dep_info).into_iter().find(|source| {
        std::fs::metadata(source)
            .and_then(|m| m.modified())
            .is_ok_and(|modified| modified > built)
    })
}

/// The prerequisites of a make-style dep-info file (`target: a b\ c`; a space inside a
/// path is escaped with a backslash).
fn dep_info_sources(dep_info: &str) -> Vec<PathBuf> {
    let Some((_, sources)) = dep_info.lines().next().and_then(|l| l.split_once(": ")) else {
        return Vec::new();
    };
    let (mut paths, mut path) = (Vec::new(), String::new());
    let mut chars = sources.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => path.extend(chars.next()),
            ' ' => paths.push(std::mem::take(&mut path)),
            c => path.push(c),
        }
    }
    paths.push(path);
    paths
        .into_iter()
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .collect()
}

/// The `chaperone` command-line binary built with the running test (next to the shim).
pub fn cli_binary() -> Option<PathBuf> {
    shim_dir()
        .map(|d| d.join("chaperone"))
        .filter(|p| p.is_file())
}

/// Polls `check` until it returns `Some`, or fails after `timeout` naming `what`.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running private containerd.
#[derive(Debug)]
pub struct Containerd {
    dir: tempfile::TempDir,
    child: Child,
    socket: PathBuf,
    namespace: String,
}

impl Containerd {
    /// Starts containerd with `shim_dir` first on its `PATH`; returns once it answers. Shims
    /// read chaperone's config from [`Containerd::chaperone_config`]: profile store and alert
    /// log in the temp dir.
    pub fn start(shim_dir: &Path) -> Result<Self> {
        Self::start_logging(shim_dir, "debug")
    }

    /// As [`Containerd::start`], with containerd's log `level`. At `debug` containerd also
    /// passes `-debug` to the shims; benchmarks use `info` so shim logging is not measured.
    pub fn start_logging(shim_dir: &Path, level: &str) -> Result<Self> {
        Self::start_with(shim_dir, level, None)
    }

    /// As [`Containerd::start_logging`]; with `cri`, the CRI plugin runs with that config
    /// (TOML appended to containerd's, given the temp dir) and the shims get no
    /// [`CONFIG_ENV`]: the runtime's options must name chaperone's config.
    pub fn start_with(
        shim_dir: &Path,
        level: &str,
        cri: Option<&dyn Fn(&Path) -> String>,
    ) -> Result<Self> {
        Self::launch(shim_dir, level, cri, &[])
    }

    /// As [`Containerd::start`], with `env` added to containerd's environment (its shims
    /// inherit it).
    pub fn start_env(shim_dir: &Path, env: &[(&str, &str)]) -> Result<Self> {
        Self::launch(shim_dir, "debug", None, env)
    }

    fn launch(
        shim_dir: &Path,
        level: &str,
        cri: Option<&dyn Fn(&Path) -> String>,
        env: &[(&str, &str)],
    ) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("chp-ctrd").tempdir()?;
        let base = dir.path();
        std::fs::write(base.join(CHAPERONE_CONFIG_FILE), chaperone_config(base, ""))?;
        let socket = base.join("c.sock");
        // A top-level key must come before the first table: after `[debug]` it would be
        // `debug.disabled_plugins`, and CRI ran (until 2026-12-07), with its stream server,
        // and watched the host's /etc/cni/net.d.
        let (disabled, plugins) = match cri {
            Some(cri) => ("", cri(base)),
            None => (
                "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n",
                String::new(),
            ),
        };
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
{disabled}[grpc]
  address = "{socket}"
[ttrpc]
  address = "{socket}.ttrpc"
[debug]
  level = "{level}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
{plugins}"#,
            root = base.join("root").display(),
            state = base.join("state").display(),
            socket = socket.display(),
            opt = base.join("opt").display(),
        );
        std::fs::write(base.join("config.toml"), config)?;
        std::fs::create_dir_all(base.join("run"))?;
        let path = format!(
            "{}:{}",
            shim_dir.display(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into())
        );
        let log = File::create(base.join("containerd.log"))?;
        let mut command = Command::new("containerd");
        command
            .arg("--config")
            .arg(base.join("config.toml"))
            .env("PATH", path)
            .env(RUN_DIR_ENV, base.join("run"))
            .envs(env.iter().copied());
        if cri.is_none() {
            command.env(CONFIG_ENV, base.join(CHAPERONE_CONFIG_FILE));
        } else {
            command.env_remove(CONFIG_ENV);
        }
        // Its own process group: a terminal's Ctrl-C reaches the program, whose teardown
        // (see [`Teardown::on_signals`]) still needs containerd to remove the containers.
        let child = command
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting containerd")?;
        // runc's state (`/run/containerd/runc/NAMESPACE`) and ctr's cgroups
        // (`/NAMESPACE/ID`) are host-wide: a namespace of this instance's own keeps its
        // containers apart from another containerd's of the same ids (a demo and a test run
        // side by side, or the leftovers of a run that was killed).
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let namespace = format!(
            "{NAMESPACE_PREFIX}-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        );
        let mut me = Self {
            dir,
            child,
            socket,
            namespace,
        };
        let ready = wait_for("containerd's socket", Duration::from_secs(30), || {
            if let Ok(Some(status)) = me.child.try_wait() {
                return Some(Err(anyhow::anyhow!("containerd exited: {status}")));
            }
            me.ctr(&["version"])
                .ok()
                .filter(|o| o.status.success())
                .map(|_| Ok(()))
        });
        match ready {
            Ok(Ok(())) => Ok(me),
            Ok(Err(e)) | Err(e) => Err(anyhow::anyhow!(me.explain(format!("{e:#}")))),
        }
    }

    /// chaperone's config file for the shims of this containerd (read on every Create).
    pub fn chaperone_config(&self) -> PathBuf {
        self.dir.path().join(CHAPERONE_CONFIG_FILE)
    }

    /// Rewrites chaperone's config: the store and alert log in the temp dir, then `extra`
    /// (TOML) appended.
    pub fn set_chaperone_config(&self, extra: &str) -> Result<()> {
        std::fs::write(
            self.chaperone_config(),
            chaperone_config(self.dir.path(), extra),
        )?;
        Ok(())
    }

    /// The profile store the shims use.
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("profiles.db")
    }

    /// The alert log the shims write.
    pub fn alerts_path(&self) -> PathBuf {
        self.dir.path().join("alerts.jsonl")
    }

    /// The alerts logged so far, parsed (a line that is not JSON fails the test that reads it).
    pub fn alerts(&self) -> Result<Vec<serde_json::Value>> {
        let text = match std::fs::read_to_string(self.alerts_path()) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        text.lines()
            .map(|l| serde_json::from_str(l).with_context(|| format!("alert line {l:?}")))
            .collect()
    }

    /// The temp dir holding everything.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A directory `name` of the temp dir (made), and the `ctr run --mount` value that shows
    /// it to a container as `/out`, read-write: where tests' containers leave what they did.
    pub fn out_dir(&self, name: &str) -> (PathBuf, String) {
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let mount = format!("type=bind,src={},dst=/out,options=rbind:rw", dir.display());
        (dir, mount)
    }

    /// containerd's state directory (`state` in its config).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Kills `shim`, the shim serving task `id` of this instance's namespace, with SIGKILL;
    /// returns once it is gone with every thread, its socket removed. A shim killed so cannot
    /// remove its socket, and the `delete` containerd runs after it does not either; shims put
    /// their sockets under `/run/containerd/s`, outside this instance's directory, so the test
    /// that kills one removes it, found in the address file the shim's `start` left in the
    /// task's bundle.
    pub fn kill_shim(&self, id: &str, shim: u32) -> Result<()> {
        let address = self
            .state_dir()
            .join("io.containerd.runtime.v2.task")
            .join(&self.namespace)
            .join(id)
            .join("address");
        let address = std::fs::read_to_string(&address)
            .with_context(|| format!("reading {}", address.display()))?;
        let socket = address
            .trim()
            .strip_prefix("unix://")
            .unwrap_or(address.trim());
        signal(shim, Signal::SIGKILL).context("killing the shim")?;
        wait_for(
            "the killed shim to be gone",
            Duration::from_secs(10),
            || (dead(shim) && processes_with(&[SHIM_BINARY, "-id", id]).is_empty()).then_some(()),
        )?;
        std::fs::remove_file(socket).with_context(|| format!("removing {socket}"))
    }

    /// The shim run directory containerd's shims were given.
    pub fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// containerd's output so far (with the shims' logs, which it copies).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// Whether a line of the log names `id` and says `message`, waiting up to 30 s for one: a
    /// shim's lines reach the log through containerd, which copies them from the shim's log
    /// FIFO as they come, so a line the shim wrote before an RPC returned may not be there yet.
    /// (It waits the whole time only when the line is missing.)
    pub fn wait_logged(&self, id: &str, message: &str) -> bool {
        wait_for(message, Duration::from_secs(30), || {
            self.log()
                .lines()
                .any(|l| l.contains(message) && l.contains(id))
                .then_some(())
        })
        .is_ok()
    }

    /// Waits (up to 30 s) until the shim's "container deleted" line for `id` is in the log:
    /// the shim logs it last for a container, after what it learned was stored, and a shim's
    /// lines arrive in order, so the log then holds every line the shim wrote about `id`.
    /// Call it before checking that a line is missing, or counting lines.
    pub fn wait_deleted_logged(&self, id: &str) -> Result<()> {
        if self.wait_logged(id, "container deleted") {
            Ok(())
        } else {
            bail!("no \"container deleted\" line for {id} in containerd's log")
        }
    }

    /// A test failure's message: the newest lines of containerd's log (the whole log is copied
    /// to a file that outlives the test, named here), then `what` (an error with its whole chain
    /// of causes). The failure comes last, where a reader of the output, and CI's excerpt of it,
    /// land. Call it only on a failure's path (in an assertion's message, which is evaluated
    /// when the assertion fails, or in a closure called there): every call writes that file.
    pub fn explain(&self, what: impl std::fmt::Display) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = &lines[lines.len().saturating_sub(EXPLAIN_LINES)..];
        let kept = std::env::temp_dir().join(format!(
            "chaperone-itest-{}-{}.log",
            std::process::id(),
            self.dir
                .path()
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        ));
        let whole = match std::fs::write(&kept, &log) {
            Ok(()) => format!("the whole log: {}", kept.display()),
            Err(e) => format!("the whole log could not be kept: {e}"),
        };
        format!(
            "containerd log, last {} of {} lines ({whole}):\n{}\n--- end of containerd log ---\n{what:#}",
            tail.len(),
            lines.len(),
            tail.join("\n")
        )
    }

    /// containerd's gRPC socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The containerd namespace of [`Containerd::ctr`] and the helpers without `_in`: this
    /// instance's own, `chp-PID-N`.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Runs `ctr -a SOCKET -n NAMESPACE ARGS` in [`Containerd::namespace`].
    pub fn ctr(&self, args: &[&str]) -> Result<Output> {
        self.ctr_in(&self.namespace, args)
    }

    /// Runs `ctr -a SOCKET -n NAMESPACE ARGS`.
    pub fn ctr_in(&self, namespace: &str, args: &[&str]) -> Result<Output> {
        ctr_at(&self.socket, namespace, args)
    }

    /// As [`Containerd::ctr`], for a `ctr run` or `ctr tasks exec` whose process prints and
    /// then waits for a line to exit: see [`output_once_printed`].
    pub fn ctr_once_printed(&self, args: &[&str], exchange: Exchange<'_>) -> Result<Output> {
        output_once_printed(&mut self.ctr_command(args), CTR_DEADLINE, exchange)
            .with_context(|| format!("ctr {}", args.join(" ")))
    }

    /// `ctr run --log-uri file://LOG ARGS` (`args` without the `run`) for a container under
    /// chaperone; the output's stdout is what the process wrote to its stdout and stderr (the
    /// two in no fixed order of lines), its stderr ctr's own.
    ///
    /// For a test that reads the output of a process that must exit by itself, where a
    /// [`Containerd::ctr_once_printed`] `read` would add to what the container does: ctr
    /// reads no FIFO here, so it cannot drop output at the exit, and chaperone's shim reports
    /// the exit only once the log file holds everything (ADR 0018). runc-v2 does not wait for
    /// its copy: do not use this under it.
    pub fn ctr_run_logged(&self, args: &[&str]) -> Result<Output> {
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let log = self
            .dir
            .path()
            .join("run-logs")
            .join(format!("{}.log", RUNS.fetch_add(1, Ordering::Relaxed)));
        let uri = format!("file://{}", log.display());
        let mut out = self.ctr(&[&["run", "--log-uri", &uri][..], args].concat())?;
        let logged = match std::fs::read(&log) {
            Ok(bytes) => bytes,
            // A container that was never created has no log.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", log.display())),
        };
        out.stdout = [logged, out.stdout].concat();
        Ok(out)
    }

    /// `ctr -a SOCKET -n NAMESPACE ARGS` in [`Containerd::namespace`], for a test to spawn as
    /// it needs (no deadline: the test reaps it).
    pub fn ctr_command(&self, args: &[&str]) -> Command {
        ctr_command(&self.socket, &self.namespace, args)
    }

    /// Runs ctr and fails unless it succeeds; returns its stdout.
    pub fn ctr_ok(&self, args: &[&str]) -> Result<String> {
        self.ctr_ok_in(&self.namespace, args)
    }

    /// Runs ctr in `namespace` and fails unless it succeeds; returns its stdout.
    pub fn ctr_ok_in(&self, namespace: &str, args: &[&str]) -> Result<String> {
        let out = self.ctr_in(namespace, args)?;
        if !out.status.success() {
            bail!(
                "ctr {args:?} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Starts container `id` from [`BUSYBOX_IMAGE`] under `runtime`, detached, running
    /// `sleep 1000`.
    pub fn run_sleeping(&self, runtime: &str, id: &str) -> Result<()> {
        self.sleeping(&["run", "-d"], runtime, id)
    }

    /// `ctr VERB... --runtime RUNTIME` of a container `id` from [`BUSYBOX_IMAGE`] running
    /// `sleep 1000`: `["run", "-d"]` starts it, `["containers", "create"]` only makes it.
    pub fn sleeping(&self, verb: &[&str], runtime: &str, id: &str) -> Result<()> {
        let rest = ["--runtime", runtime, BUSYBOX_IMAGE, id, "sleep", "1000"];
        self.ctr_ok(&[verb, &rest[..]].concat()).map(drop)
    }

    /// Builds an OCI image of Debian's static busybox and imports it as [`BUSYBOX_IMAGE`].
    pub fn import_busybox(&self) -> Result<()> {
        self.import_image(BUSYBOX_IMAGE, &[])
    }

    /// Builds an image named `name`: static busybox plus `files`, and imports it.
    pub fn import_image(&self, name: &str, files: &[ImageFile<'_>]) -> Result<()> {
        self.import_image_in(&self.namespace, name, files, DEFAULT_CMD)
    }

    /// Builds an image named `name` (static busybox plus `files`, running `cmd` by default)
    /// and imports it into `namespace`.
    pub fn import_image_in(
        &self,
        namespace: &str,
        name: &str,
        files: &[ImageFile<'_>],
        cmd: &[&str],
    ) -> Result<()> {
        let dir = self
            .dir
            .path()
            .join("image")
            .join(namespace)
            .join(name.replace(['/', ':'], "_"));
        let tar = build_image_running(&dir, name, files, cmd)?;
        self.ctr_ok_in(
            namespace,
            &["images", "import", tar.to_str().context("path")?],
        )?;
        let images = self.ctr_ok_in(namespace, &["images", "ls", "-q"])?;
        if !images.lines().any(|l| l == name) {
            bail!("image not imported; images: {images}");
        }
        Ok(())
    }

    /// The digest of image `name` in `namespace` (`ctr images ls`' DIGEST column): the key of
    /// the profile of containers made from it (see shim/src/image.rs).
    pub fn image_digest_in(&self, namespace: &str, name: &str) -> Result<String> {
        let table = self.ctr_ok_in(namespace, &["images", "ls"])?;
        // REF TYPE DIGEST SIZE PLATFORMS LABELS
        table
            .lines()
            .filter_map(|l| {
                let mut columns = l.split_whitespace();
                (columns.next() == Some(name)).then(|| columns.nth(1))?
            })
            .find(|d| d.starts_with("sha256:"))
            .map(str::to_owned)
            .with_context(|| format!("no digest of {name} in:\n{table}"))
    }

    /// The digest of image `name` in [`Containerd::namespace`].
    pub fn image_digest(&self, name: &str) -> Result<String> {
        self.image_digest_in(&self.namespace, name)
    }

    /// The status of task `id` in `ctr tasks ls` (`RUNNING`, `STOPPED`, ...), if listed.
    pub fn task_status(&self, id: &str) -> Option<String> {
        self.task_status_in(&self.namespace, id)
    }

    /// The status of task `id` of `namespace`, if listed.
    pub fn task_status_in(&self, namespace: &str, id: &str) -> Option<String> {
        task_status_at(&self.socket, namespace, id)
    }

    /// The host pid of task `id`'s init in `ctr tasks ls`, if listed.
    pub fn task_pid(&self, id: &str) -> Option<u32> {
        task_column(&self.socket, &self.namespace, id, 1)?
            .parse()
            .ok()
    }

    /// Best-effort removal of a container and its task.
    pub fn remove(&self, id: &str) {
        self.remove_in(&self.namespace, id);
    }

    /// Best-effort removal of a container of `namespace` and its task.
    pub fn remove_in(&self, namespace: &str, id: &str) {
        remove_container(&self.socket, namespace, id);
    }

    /// What tearing this containerd down takes, for a thread that does not own it (a signal
    /// watcher's: see [`Teardown::on_signals`]).
    pub fn teardown(&self) -> Teardown {
        Teardown {
            socket: self.socket.clone(),
            namespace: self.namespace.clone(),
            pid: self.child.id(),
            dir: self.dir.path().to_owned(),
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if INTERRUPTED.load(Ordering::SeqCst) {
            // The signal watcher tears down and exits the process with the signal's status;
            // this thread (whose work failed as containerd went) must not exit it first.
            loop {
                std::thread::park();
            }
        }
        self.teardown().run();
    }
}

/// Where the cgroup hierarchies are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Removes the cgroup `name` under `root` (cgroup v2) or under each hierarchy mounted in
/// `root` (v1, and the v2 tree of a hybrid host), with the groups below it; a group that still
/// holds a process stays (rmdir refuses it), and so do its parents.
fn remove_cgroups(root: &Path, name: &str) {
    let hierarchies = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path());
    for group in std::iter::once(root.to_owned())
        .chain(hierarchies)
        .map(|h| h.join(name))
    {
        remove_dirs_bottom_up(&group);
    }
}

/// Removes `dir` and the directories below it, deepest first. A directory rmdir refuses stays,
/// with its parents: on an ordinary file system one that holds a file; in a cgroup hierarchy
/// one that holds a process (its control files do not count).
fn remove_dirs_bottom_up(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.filter_map(|e| e.ok()) {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_dirs_bottom_up(&entry.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Set by [`Teardown::on_signals`]'s watcher once a signal came.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Runs `ctr -a SOCKET -n NAMESPACE ARGS`.
fn ctr_at(socket: &Path, namespace: &str, args: &[&str]) -> Result<Output> {
    output_within(&mut ctr_command(socket, namespace, args), CTR_DEADLINE)
        .with_context(|| format!("ctr {}", args.join(" ")))
}

/// `ctr -a SOCKET -n NAMESPACE ARGS`, to run. A command that makes a process's IO FIFOs gets
/// `--fifo-dir` in the directory of SOCKET (this containerd's own), so that they go with it:
/// ctr's default, under `/run/containerd/fifo`, keeps those of every process whose ctr did not
/// see it end (a killed shim, a detached run).
fn ctr_command(socket: &Path, namespace: &str, args: &[&str]) -> Command {
    let mut ctr = Command::new("ctr");
    ctr.arg("-a").arg(socket).args(["-n", namespace]);
    match (fifo_flag_at(args), socket.parent()) {
        (Some(at), Some(dir)) => {
            ctr.args(&args[..at])
                .arg("--fifo-dir")
                .arg(dir.join("fifo"))
                .args(&args[at..]);
        }
        _ => {
            ctr.args(args);
        }
    }
    ctr
}

/// Where `--fifo-dir` goes in ctr's `args` (after the subcommand, before its other flags), if
/// the subcommand makes IO FIFOs: not with `--log-uri`, which makes none (and ctr refuses the
/// two together).
fn fifo_flag_at(args: &[&str]) -> Option<usize> {
    if args
        .iter()
        .any(|a| *a == "--log-uri" || a.starts_with("--log-uri="))
    {
        return None;
    }
    match args {
        ["run", ..] => Some(1),
        ["tasks" | "task" | "t", "start" | "exec", ..] => Some(2),
        _ => None,
    }
}

/// How long one `ctr` command may run before it is killed and fails: far longer than any the
/// tests run take (seconds), so that a container or shim that hangs fails its test, with
/// containerd's log, instead of stalling the whole suite.
pub const CTR_DEADLINE: Duration = Duration::from_secs(300);

/// Runs `command` (stdin closed) to its end and collects its output, as [`Command::output`]
/// does, but kills it and fails if it has not ended within `limit`; the failure shows what
/// it printed until then.
pub fn output_within(command: &mut Command, limit: Duration) -> Result<Output> {
    collect(command, limit, None)
}

/// What [`output_once_printed`] writes to a program and waits for it to print.
#[derive(Debug, Clone, Copy, Default)]
pub struct Exchange<'a> {
    /// Written to its stdin at once, before any output is read: keep it well under the 64 KiB
    /// a pipe holds.
    pub input: &'a [u8],
    /// What its stdout must hold before it is sent the line it waits for to exit.
    pub stdout: &'a str,
    /// What its stderr must hold, likewise.
    pub stderr: &'a str,
}

/// As [`output_within`], for a program whose process prints and then reads a line before it
/// exits (a container command ending `read _; exit N`): it is given `exchange.input`, and the
/// line once its stdout and stderr hold what `exchange` names, so the output is in hand before
/// the process exits. Its stdin stays open until it has exited.
///
/// That is what a test of `ctr run` or `ctr tasks exec` output needs: containerd 1.6's ctr can
/// drop output still on its way when the process exits, whatever the runtime (Delete cancels
/// and closes the readers of the FIFOs; containerd/containerd#13931). A test under the stock
/// shim lost an exec's stdout that way in CI.
pub fn output_once_printed(
    command: &mut Command,
    limit: Duration,
    exchange: Exchange<'_>,
) -> Result<Output> {
    collect(command, limit, Some(exchange))
}

/// The bytes a pipe's reader has read so far.
type Shared = std::sync::Arc<std::sync::Mutex<Vec<u8>>>;

/// What one reader of a pipe saw: more bytes, or the end.
enum Seen {
    Bytes,
    Closed,
}

fn collect(
    command: &mut Command,
    limit: Duration,
    release: Option<Exchange<'_>>,
) -> Result<Output> {
    let stdin = if release.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    let mut child = command
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {:?}", command.get_program()))?;
    let mut input = child.stdin.take();
    if let (Some(exchange), Some(pipe)) = (release, input.as_mut()) {
        // Small (see `Exchange::input`) and written to an empty pipe: this does not block.
        std::io::Write::write_all(pipe, exchange.input).context("writing the program's input")?;
    }
    let (seen, saw) = std::sync::mpsc::channel();
    let read = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        let seen = seen.clone();
        let bytes = Shared::default();
        let kept = bytes.clone();
        let reader = std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            if let Some(mut pipe) = pipe {
                while let Ok(n @ 1..) = pipe.read(&mut chunk) {
                    kept.lock().unwrap().extend_from_slice(&chunk[..n]);
                    let _ = seen.send(Seen::Bytes);
                }
            }
            let _ = seen.send(Seen::Closed);
        });
        (reader, bytes)
    };
    let (out_reader, stdout) = read(child.stdout.take().map(|p| Box::new(p) as _));
    let (err_reader, stderr) = read(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + limit;
    let left = || deadline.saturating_duration_since(Instant::now());
    let holds =
        |bytes: &Shared, text: &str| String::from_utf8_lossy(&bytes.lock().unwrap()).contains(text);
    // Both pipes close as the program exits; it can be reaped a moment later (the kernel
    // closes a process's files before it makes it a zombie), so that is polled closely.
    let mut open = 2;
    // Waits up to `limit` for a reader's next word, counting the pipes closed; false once
    // none came.
    let next = |open: &mut i32, limit: Duration| match saw.recv_timeout(limit) {
        Ok(Seen::Closed) => {
            *open -= 1;
            true
        }
        Ok(Seen::Bytes) => true,
        Err(_) => false,
    };
    // The exchange whose line is still to be sent.
    let mut pending = release;
    while open > 0 && next(&mut open, left()) {
        if let (Some(exchange), Some(pipe)) = (pending, input.as_mut()) {
            if holds(&stdout, exchange.stdout) && holds(&stderr, exchange.stderr) {
                // It may have exited already; its exit code then tells.
                let _ = std::io::Write::write_all(pipe, b"\n");
                pending = None;
            }
        }
    }
    let mut ended = open == 0;
    while ended && child.try_wait().ok().flatten().is_none() {
        ended = !left().is_zero();
        std::thread::sleep(Duration::from_millis(1));
    }
    if !ended {
        let _ = child.kill();
        // A child it left behind could hold the pipes open: their readers are then abandoned.
        while open > 0 && next(&mut open, Duration::from_secs(5)) {}
    }
    let status = child.wait().context("waiting for the program")?;
    // Held open until the program ended: `script`, for one, ends its session on EOF.
    drop(input);
    // A reader left blocked on a pipe still open is abandoned with what it read so far.
    let taken = |reader: std::thread::JoinHandle<()>, bytes: Shared| {
        if open == 0 {
            let _ = reader.join();
        }
        std::mem::take(&mut *bytes.lock().unwrap())
    };
    let output = Output {
        status,
        stdout: taken(out_reader, stdout),
        stderr: taken(err_reader, stderr),
    };
    if !ended {
        bail!(
            "killed after {limit:?} without ending; it had printed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output)
}

/// The status of task `id` of `namespace` in `ctr tasks ls`, if listed.
fn task_status_at(socket: &Path, namespace: &str, id: &str) -> Option<String> {
    task_column(socket, namespace, id, 2)
}

/// Column `column` of task `id`'s row in `ctr tasks ls` (TASK, PID, STATUS), if listed.
fn task_column(socket: &Path, namespace: &str, id: &str, column: usize) -> Option<String> {
    let out = ctr_at(socket, namespace, &["tasks", "ls"]).ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        (cols.first() == Some(&id)).then(|| cols.get(column).map(|s| (*s).to_owned()))?
    })
}

/// Best-effort removal of container `id` of `namespace` and its task.
fn remove_container(socket: &Path, namespace: &str, id: &str) {
    let _ = ctr_at(socket, namespace, &["tasks", "kill", "-s", "SIGKILL", id]);
    let _ = wait_for("the task to stop", Duration::from_secs(5), || {
        (task_status_at(socket, namespace, id).as_deref() != Some("RUNNING")).then_some(())
    });
    let _ = ctr_at(socket, namespace, &["tasks", "delete", "-f", id]);
    let _ = ctr_at(socket, namespace, &["containers", "delete", id]);
}

/// Tears a private containerd down: its containers (and CRI's) removed, containerd stopped,
/// what is mounted under its directory unmounted. What [`Containerd`]'s drop does, and what a
/// program that is interrupted must do before it exits: the containers' shims outlive
/// containerd, so they would keep running (and their ports bound).
#[derive(Debug, Clone)]
pub struct Teardown {
    socket: PathBuf,
    namespace: String,
    pid: u32,
    dir: PathBuf,
}

impl Teardown {
    /// Tears down (best effort: each step is tried whatever the previous one did).
    pub fn run(&self) {
        // CRI's containers live in its own namespace.
        for namespace in [self.namespace.as_str(), CRI_NAMESPACE] {
            if let Ok(out) = ctr_at(&self.socket, namespace, &["containers", "ls", "-q"]) {
                for id in String::from_utf8_lossy(&out.stdout).lines() {
                    remove_container(&self.socket, namespace, id);
                }
            }
        }
        let Ok(pid) = i32::try_from(self.pid).map(Pid::from_raw) else {
            return;
        };
        // containerd is this process's child, not yet reaped: nothing else waits for it.
        let exited = || {
            !matches!(
                waitpid(pid, Some(WaitPidFlag::WNOHANG)),
                Ok(WaitStatus::StillAlive)
            )
        };
        let _ = signal(self.pid, Signal::SIGTERM);
        if wait_for("containerd to exit", Duration::from_secs(10), || {
            exited().then_some(())
        })
        .is_err()
        {
            let _ = signal(self.pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
        self.sweep();
        // Whatever is still mounted under the temp dir (snapshots, rootfs) goes before it does.
        for target in mounts_under(&self.dir).into_iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(&target).status();
        }
        // runc's root of the namespace, once empty (remove_dir refuses otherwise).
        let _ = std::fs::remove_dir(Path::new(RUNC_ROOT).join(&self.namespace));
        // The namespace's cgroup, the parent of its containers' (`/<namespace>/<id>`): runc
        // removes a container's own and leaves the parent, in every hierarchy.
        remove_cgroups(Path::new(CGROUP_ROOT), &self.namespace);
    }

    /// What the removal through containerd can miss: a container created after the listing (a
    /// program interrupted while it starts one), or a shim still on its way out. Shims outlive
    /// containerd, so with containerd stopped, runc's state of this instance's namespace is
    /// removed directly and the shims it started are killed; returns once they are gone, their
    /// sockets removed (a shim killed so leaves its own, in `/run/containerd/s`), and any other
    /// socket one of its shims said it serves that nothing serves any more (said on stderr).
    fn sweep(&self) {
        let root = Path::new(RUNC_ROOT).join(&self.namespace);
        let runc = || {
            let mut c = Command::new("runc");
            c.arg("--root").arg(&root);
            c
        };
        if let Ok(out) = runc().args(["list", "-q"]).output() {
            for id in String::from_utf8_lossy(&out.stdout).lines() {
                let _ = runc().args(["delete", "--force", id]).output();
            }
        }
        let killed = self.shims();
        for &(shim, _) in &killed {
            // A shim this containerd started (matched by its `-address`).
            let _ = signal(shim, Signal::SIGKILL);
        }
        let _ = wait_for("the shims to exit", Duration::from_secs(10), || {
            self.shims().is_empty().then_some(())
        });
        for socket in killed.into_iter().filter_map(|(_, socket)| socket) {
            let _ = std::fs::remove_file(socket);
        }
        // A shim that ended some other way without removing its socket (it should not: said
        // loudly, for the test's output): each chaperone shim logs the socket it serves.
        let log = std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default();
        for socket in Self::served_sockets(&log) {
            let refused = std::os::unix::net::UnixStream::connect(&socket)
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused);
            if refused && std::fs::remove_file(&socket).is_ok() {
                eprintln!(
                    "teardown: removed {}, left by a shim of {} that is gone",
                    socket.display(),
                    self.namespace
                );
            }
        }
    }

    /// The sockets chaperone's shims said they serve in a containerd log (`shim serving
    /// socket=unix:///run/containerd/s/...`).
    fn served_sockets(log: &str) -> Vec<PathBuf> {
        log.lines()
            .filter(|l| l.contains("shim serving"))
            .filter_map(|l| l.split_once("socket=unix://"))
            .filter_map(|(_, rest)| rest.split_whitespace().next())
            .map(PathBuf::from)
            .collect()
    }

    /// The running shims this containerd started (`-address` is its socket), with the socket
    /// each serves (its `-socket`, given to the long-lived one).
    fn shims(&self) -> Vec<(u32, Option<PathBuf>)> {
        let socket = self.socket.as_os_str().as_encoded_bytes();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter_map(|pid| {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
                let after = |flag: &[u8]| args.windows(2).find(|w| w[0] == flag).map(|w| w[1]);
                (after(b"-address") == Some(socket)).then(|| {
                    let served = after(b"-socket").map(|s| {
                        let s = String::from_utf8_lossy(s);
                        PathBuf::from(s.strip_prefix("unix://").unwrap_or(&s))
                    });
                    (pid, served)
                })
            })
            .collect()
    }

    /// Handles the `signals` ([`watch_signals`], taken before containerd was started, so that
    /// one that came while it started waits here): on the first, says so on stderr, tears
    /// down, removes the directory and exits with 128 + the signal's number (as a shell
    /// reports a program a signal ended). A second signal during the teardown exits at once,
    /// saying what may be left.
    pub fn on_signals(self, program: &'static str, mut signals: Signals) -> Result<()> {
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                let mut signals = signals.forever();
                let Some(signal) = signals.next() else { return };
                INTERRUPTED.store(true, Ordering::SeqCst);
                let dir = self.dir.clone();
                eprintln!(
                    "{program}: interrupted (signal {signal}): removing the containers and stopping containerd (again to stop at once)"
                );
                let teardown = move || {
                    self.run();
                    let _ = std::fs::remove_dir_all(&self.dir);
                    std::process::exit(128 + signal);
                };
                if let Err(e) = std::thread::Builder::new().name("teardown".into()).spawn(teardown) {
                    eprintln!("{program}: cannot start the teardown: {e}");
                    std::process::exit(128 + signal);
                }
                if let Some(again) = signals.next() {
                    eprintln!(
                        "{program}: signal {again} again: exiting before the teardown ended; its containerd (config {}) and containers may still run",
                        dir.join("config.toml").display()
                    );
                    std::process::exit(128 + again);
                }
            })
            .context("starting the signal watcher")?;
        Ok(())
    }
}

/// Starts catching SIGINT, SIGTERM and SIGHUP, for [`Teardown::on_signals`]: until then they
/// wait, and do not end the program.
pub fn watch_signals() -> Result<Signals> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    Signals::new([SIGINT, SIGTERM, SIGHUP]).context("watching for signals")
}

/// Mount points at or below `dir`, in mount order.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    mount_points()
        .into_iter()
        .filter(|p| p.starts_with(dir))
        .collect()
}

/// Whether any mount point's path contains `needle`.
pub fn mounted(needle: &str) -> bool {
    mount_points().iter().any(|p| {
        p.as_os_str()
            .as_encoded_bytes()
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    })
}

/// This process's mount points, in mount order, unescaped (mountinfo writes a space, tab,
/// newline or backslash in a path as `\ooo`).
fn mount_points() -> Vec<PathBuf> {
    let info = std::fs::read("/proc/self/mountinfo").unwrap_or_default();
    info.split(|&b| b == b'\n')
        .filter_map(|l| l.split(|&b| b == b' ').nth(4))
        .map(|p| PathBuf::from(std::ffi::OsStr::from_bytes(&unescape_octal(p))))
        .collect()
}

/// `\ooo` escapes decoded; anything else as it is.
fn unescape_octal(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let code = field
            .get(i + 1..i + 4)
            .filter(|d| field[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .and_then(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 8).ok());
        match code {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(field[i]);
                i += 1;
            }
        }
    }
    out
}

/// Pids of processes with, for every one of `words`, an argument that is the word or a path in
/// the directory the word names, or a program (the first argument) whose file name starts with
/// it (`containerd-shim` matches `/usr/bin/containerd-shim-runc-v2`). Until 2026-12-07 a word
/// matched anywhere in the command line, so id `shimcg-1` matched a shim of `noshimcg-1`.
pub fn processes_with(words: &[&str]) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<String> = cmdline
                .split(|&b| b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            words.iter().all(|w| {
                args.iter()
                    .enumerate()
                    .any(|(i, a)| argument_matches(a, w, i == 0))
            })
        })
        .collect()
}

fn argument_matches(arg: &str, word: &str, program: bool) -> bool {
    let in_dir = arg
        .strip_prefix(word.trim_end_matches('/'))
        .is_some_and(|rest| rest.starts_with('/'));
    let named = program && arg.rsplit('/').next().is_some_and(|f| f.starts_with(word));
    arg == word || in_dir || named
}

/// Whether `pid` is gone or a zombie (killed, not yet reaped by whoever inherited it) with
/// every thread of it exited: only then are its files closed and the locks on them released.
/// (A dying process's command line empties, and its main thread can turn zombie, while other
/// threads still hold them.)
pub fn dead(pid: u32) -> bool {
    let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return true;
    };
    threads
        .filter_map(|t| t.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .all(|tid| process_status(tid).is_none_or(|s| zombie(&s)))
}

/// Sends `signal` to the process `pid`.
pub fn signal(pid: u32, signal: Signal) -> Result<()> {
    let target = Pid::from_raw(i32::try_from(pid)?);
    nix::sys::signal::kill(target, signal).with_context(|| format!("{signal} to {pid}"))
}

/// Whether `pid` is [`dead`] or has SIGKILL pending: what a process that was sent SIGKILL looks
/// like in the instant after.
pub fn killed(pid: u32) -> bool {
    process_status(pid).is_none_or(|s| {
        let pending = |name| u64::from_str_radix(status_field(&s, name), 16).unwrap_or(0);
        let sigkill = 1 << (libc::SIGKILL - 1);
        zombie(&s) || (pending("ShdPnd:") | pending("SigPnd:")) & sigkill != 0
    })
}

fn zombie(status: &str) -> bool {
    status_field(status, "State:").starts_with(['Z', 'X'])
}

fn process_status(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/status")).ok()
}

fn status_field<'a>(status: &'a str, name: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .map_or("", str::trim)
}

fn sha256_hex(path: &Path) -> Result<String> {
    let out = Command::new("sha256sum").arg(path).output()?;
    if !out.status.success() {
        bail!("sha256sum {} failed", path.display());
    }
    let text = String::from_utf8(out.stdout)?;
    Ok(text
        .split_whitespace()
        .next()
        .context("sha256sum output")?
        .to_owned())
}

/// Moves `file` into `layout/blobs/sha256/` under its digest; returns (digest, size).
fn add_blob(layout: &Path, file: &Path) -> Result<(String, u64)> {
    let hex = sha256_hex(file)?;
    let size = std::fs::metadata(file)?.len();
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    std::fs::rename(file, blobs.join(&hex))?;
    Ok((format!("sha256:{hex}"), size))
}

fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Writes an OCI image layout with one layer (busybox and its applet links) under `dir` and
/// returns the path of its tar archive.
pub fn build_busybox_image(dir: &Path) -> Result<PathBuf> {
    build_image(dir, BUSYBOX_IMAGE, &[])
}

/// The command of the images tests build (`Cmd` in their config).
const DEFAULT_CMD: &[&str] = &["/bin/sh"];

/// Builds an OCI image archive named `name` in `dir`: static busybox, then `files`.
pub fn build_image(dir: &Path, name: &str, files: &[ImageFile<'_>]) -> Result<PathBuf> {
    build_image_running(dir, name, files, DEFAULT_CMD)
}

/// As [`build_image`], the image running `cmd` by default.
pub fn build_image_running(
    dir: &Path,
    name: &str,
    files: &[ImageFile<'_>],
    cmd: &[&str],
) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let rootfs = dir.join("rootfs");
    for sub in ["bin", "proc", "dev", "sys", "tmp", "etc", "root"] {
        std::fs::create_dir_all(rootfs.join(sub))?;
    }
    std::fs::copy(BUSYBOX, rootfs.join("bin/busybox")).context("copying busybox")?;
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet))?;
    }
    std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\n")?;
    for (path, contents, mode) in files {
        let file = rootfs.join(path.trim_start_matches('/'));
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&file, contents)?;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(*mode))?;
    }
    let layout = dir.join("layout");
    std::fs::create_dir_all(&layout)?;
    let layer = dir.join("layer.tar");
    tar(&rootfs, &layer)?;
    let (layer_digest, layer_size) = add_blob(&layout, &layer)?;

    let config = json!({
        "architecture": oci_arch(),
        "os": "linux",
        "config": {"Cmd": cmd, "Env": ["PATH=/bin"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    });
    let config_file = dir.join("config.json");
    std::fs::write(&config_file, serde_json::to_vec(&config)?)?;
    let (config_digest, config_size) = add_blob(&layout, &config_file)?;

    let manifest = json!({
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
    });
    let manifest_file = dir.join("manifest.json");
    std::fs::write(&manifest_file, serde_json::to_vec(&manifest)?)?;
    let (manifest_digest, manifest_size) = add_blob(&layout, &manifest_file)?;

    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
            "platform": {"architecture": oci_arch(), "os": "linux"},
            "annotations": {
                "io.containerd.image.name": name,
                "org.opencontainers.image.ref.name": "itest",
            },
        }],
    });
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&index)?)?;
    std::fs::write(
        layout.join("oci-layout"),
        serde_json::to_vec(&json!({"imageLayoutVersion": "1.0.0"}))?,
    )?;
    let archive = dir.join("image.tar");
    tar(&layout, &archive)?;
    Ok(archive)
}

/// `tar` of the contents of `dir`, owned by root.
fn tar(dir: &Path, archive: &Path) -> Result<()> {
    let status = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .args(["--owner=0", "--group=0", "--numeric-owner", "-cf"])
        .arg(archive)
        .arg(".")
        .status()
        .context("running tar")?;
    if !status.success() {
        bail!("tar of {} failed", dir.display());
    }
    Ok(())
}

/// The directory of the shim binary when everything a containerd test needs is there, or
/// `None` (skipped, loudly; a failure in CI).
pub fn prerequisites() -> Option<PathBuf> {
    let ok = require(runc::is_root(), "root (containerd needs it)")
        && require(runc::have_runc(), "runc (apt-get install runc)")
        && require(
            have_containerd(),
            "containerd and ctr (apt-get install containerd)",
        )
        && require(
            runc::have_static_busybox(),
            "a static busybox at /bin/busybox (apt-get install busybox-static)",
        );
    if !ok {
        return None;
    }
    let shim_dir = shim_dir();
    let shim_dir = require(
        shim_dir.is_some(),
        "the shim binary next to the test (cargo test --workspace builds it)",
    )
    .then_some(shim_dir)??;
    if let Some((binary, source)) = stale_binary(&shim_dir) {
        panic!(
            "{} is older than {}: the test would run the old code; run `cargo build --workspace` \
             first (scripts/test.sh does)",
            binary.display(),
            source.display()
        );
    }
    Some(shim_dir)
}

/// A started containerd with the busybox image, or `None` (skipped, loudly; a failure in CI)
/// without prerequisites.
pub fn setup() -> Option<Containerd> {
    setup_env(&[])
}

/// [`setup`], with `env` added to containerd's environment (its shims inherit it: the debug
/// builds' fault injections).
pub fn setup_env(env: &[(&str, &str)]) -> Option<Containerd> {
    let ctrd = Containerd::start_env(&prerequisites()?, env).expect("containerd starts");
    ctrd.import_busybox().expect("busybox image imports");
    Some(ctrd)
}

/// Removes the container even when the test fails.
#[derive(Debug)]
pub struct Cleanup<'a>(pub &'a Containerd, pub String);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        self.0.remove(&self.1);
    }
}

/// A live `ctr events` subscription of one containerd: the event lines it has printed. Ended
/// (and its probe containers removed) on drop.
#[derive(Debug)]
pub struct Events<'a> {
    ctr: Child,
    seen: Arc<Mutex<Vec<String>>>,
    probes: Vec<Cleanup<'a>>,
}

impl<'a> Events<'a> {
    /// Subscribes to `ctrd`'s events and returns once the subscription is live: once it has
    /// reported a container created for the purpose (`TAG-probeN`). A container created before
    /// `ctr events` subscribed is never reported (seen in CI under load), so a new probe is
    /// created each second until one is.
    pub fn subscribe(ctrd: &'a Containerd, tag: &str) -> Result<Self> {
        let mut ctr = ctrd
            .ctr_command(&["events"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("ctr events")?;
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let stdout = ctr.stdout.take().context("ctr events' stdout")?;
        let lines = Arc::clone(&seen);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout)
                .lines()
                .map_while(std::io::Result::ok)
            {
                lines
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(line);
            }
        });
        let mut events = Self {
            ctr,
            seen,
            probes: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let probe = format!("{tag}-probe{}", events.probes.len());
            ctrd.ctr_ok(&["containers", "create", BUSYBOX_IMAGE, &probe, "true"])?;
            events.probes.push(Cleanup(ctrd, probe));
            let probes = &events.probes;
            let reported = events.wait_for(
                "ctr events to report a probe",
                Duration::from_secs(1),
                |l| l.contains("/containers/create") && probes.iter().any(|p| l.contains(&p.1)),
            );
            match reported {
                Ok(_) => return Ok(events),
                Err(e) if Instant::now() >= deadline => {
                    return Err(e.context("ctr events did not subscribe within 20 s"))
                }
                Err(_) => {}
            }
        }
    }

    /// The event lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The first event line so far that `matches`.
    pub fn find(&self, matches: impl Fn(&str) -> bool) -> Option<String> {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.iter().find(|l| matches(l)).cloned()
    }

    /// Waits up to `timeout` for the exit event of container `id`'s init (not an exec's, whose
    /// event carries the exec's id): the event line.
    pub fn init_exit(&self, id: &str, timeout: Duration) -> Result<String> {
        let init = format!(r#""id":"{id}""#);
        self.wait_for(&format!("the exit of {id}'s init"), timeout, |l| {
            l.contains("/tasks/exit") && l.contains(&init)
        })
    }

    /// Waits up to `timeout` for an event line that `matches` (`what` names it in the error,
    /// which lists the events seen).
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> Result<String> {
        wait_for(what, timeout, || self.find(&matches)).with_context(|| {
            let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            format!("events: {seen:#?}")
        })
    }
}

impl Drop for Events<'_> {
    fn drop(&mut self) {
        let _ = self.ctr.kill();
        let _ = self.ctr.wait();
    }
}

/// Creates (or empties) the file at `path` with its modification time `secs` after the epoch,
/// for the tests of the stale-binary check.
#[cfg(test)]
pub(crate) fn file_at(path: &Path, secs: u64) {
    let file = File::create(path).unwrap();
    file.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_word_matches_whole_arguments_paths_in_a_directory_and_program_names() {
        assert!(argument_matches("shimcg-chp-1", "shimcg-chp-1", false));
        assert!(!argument_matches("noshimcg-chp-1", "shimcg-chp-1", false));
        assert!(!argument_matches("shimcg-chp-10", "shimcg-chp-1", false));
        assert!(argument_matches(
            "/tmp/chp-x/config.toml",
            "/tmp/chp-x",
            false
        ));
        assert!(!argument_matches(
            "/tmp/chp-xy/config.toml",
            "/tmp/chp-x",
            false
        ));
        assert!(argument_matches(
            "/usr/bin/containerd-shim-runc-v2",
            "containerd-shim",
            true
        ));
        assert!(!argument_matches(
            "/usr/bin/containerd-shim-runc-v2",
            "containerd-shim",
            false
        ));
        assert!(!argument_matches("-id", "containerd-shim", true));
    }

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_octal(br"/tmp/rd\040tmp/b"), b"/tmp/rd tmp/b");
        assert_eq!(unescape_octal(br"/a\134b\011c\012"), b"/a\\b\tc\n");
        // Not an escape: left as it is.
        assert_eq!(unescape_octal(br"/x\09\"), br"/x\09\");
    }

    #[test]
    fn a_binary_older_than_a_file_its_dep_info_lists_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let (bin, src) = (dir.path().join("bin"), dir.path().join("my src"));
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&src).unwrap();
        let at = file_at;
        let escaped = |p: PathBuf| p.display().to_string().replace(' ', "\\ ");
        let (main, lib, other) = (
            src.join("main.rs"),
            src.join("lib.rs"),
            src.join("other.rs"),
        );
        at(&main, 1_000);
        at(&lib, 1_000);
        at(&other, 3_000);
        for name in [SHIM_BINARY, "chaperone"] {
            at(&bin.join(name), 2_000);
            let line = format!(
                "{}: {} {}\n",
                bin.join(name).display(),
                escaped(main.clone()),
                escaped(lib.clone())
            );
            std::fs::write(bin.join(format!("{name}.d")), line).unwrap();
        }
        assert_eq!(
            stale_binary(&bin),
            None,
            "a file the dep-info does not list is not a source"
        );

        at(&lib, 3_000);
        assert_eq!(
            stale_binary(&bin),
            Some((bin.join(SHIM_BINARY), lib.clone()))
        );
        at(&bin.join(SHIM_BINARY), 4_000);
        assert_eq!(
            stale_binary(&bin),
            Some((bin.join("chaperone"), lib.clone()))
        );
        at(&bin.join("chaperone"), 4_000);
        assert_eq!(stale_binary(&bin), None, "both rebuilt");

        std::fs::remove_file(bin.join("chaperone.d")).unwrap();
        at(&lib, 5_000);
        assert_eq!(
            stale_binary(&bin),
            Some((bin.join(SHIM_BINARY), lib)),
            "a binary without dep-info is not checked; the others still are"
        );
    }

    #[test]
    fn ctr_keeps_the_fifos_of_run_start_and_exec_beside_the_socket() {
        let args = |argv: &[&str]| -> Vec<String> {
            ctr_command(Path::new("/t/c.sock"), "ns", argv)
                .get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect()
        };
        let global = ["-a", "/t/c.sock", "-n", "ns"];
        let with = |head: &[&str], tail: &[&str]| -> Vec<String> {
            global
                .iter()
                .chain(head)
                .chain(&["--fifo-dir", "/t/fifo"])
                .chain(tail)
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(
            args(&["run", "--rm", "img", "id"]),
            with(&["run"], &["--rm", "img", "id"])
        );
        assert_eq!(
            args(&["tasks", "exec", "--exec-id", "e", "id", "true"]),
            with(&["tasks", "exec"], &["--exec-id", "e", "id", "true"])
        );
        assert_eq!(args(&["t", "start", "id"]), with(&["t", "start"], &["id"]));
        // Others make no FIFO and take no such flag, and ctr refuses it with a log URI.
        let plain = |argv: &[&str]| -> Vec<String> {
            global.iter().chain(argv).map(ToString::to_string).collect()
        };
        for argv in [
            &["tasks", "kill", "id"][..],
            &["run", "--log-uri", "file:///l", "img", "id"],
            &[
                "tasks",
                "exec",
                "--log-uri=binary:///b",
                "--exec-id",
                "e",
                "id",
                "true",
            ],
        ] {
            assert_eq!(args(argv), plain(argv));
        }
    }

    #[test]
    fn the_sweep_kills_this_containerds_shims_and_removes_their_sockets() {
        let tmp = tempfile::tempdir().unwrap();
        let served = tmp.path().join("shim.sock");
        let listener = std::os::unix::net::UnixListener::bind(&served).unwrap();
        let containerd = tmp.path().join("c.sock");
        // A stand-in shim: blocked on its input, with a shim's flags in its command line.
        let uri = format!("unix://{}", served.display());
        let mut shim = Command::new("sh")
            .args(["-c", "read line", "shim", "-address"])
            .arg(&containerd)
            .args(["-socket", &uri])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // A socket a shim said it serves (in containerd's log) and left behind, and one that a
        // live server still serves.
        let (left, live) = (tmp.path().join("left.sock"), tmp.path().join("live.sock"));
        drop(std::os::unix::net::UnixListener::bind(&left).unwrap());
        let _live = std::os::unix::net::UnixListener::bind(&live).unwrap();
        let said = |path: &Path| {
            format!(
                "2026-12-07T08:05:39Z  INFO shim serving socket=unix://{}\n",
                path.display()
            )
        };
        std::fs::write(
            tmp.path().join("containerd.log"),
            said(&left) + &said(&live),
        )
        .unwrap();
        let teardown = Teardown {
            socket: containerd,
            namespace: format!("chp-unit-{}", std::process::id()),
            pid: 0,
            dir: tmp.path().to_owned(),
        };
        let pid = shim.id();
        wait_for(
            "the stand-in's command line",
            Duration::from_secs(10),
            || {
                teardown
                    .shims()
                    .contains(&(pid, Some(served.clone())))
                    .then_some(())
            },
        )
        .unwrap();
        teardown.sweep();
        // The sweep's `runc list` makes runc's root of the namespace; `run` removes it after.
        let _ = std::fs::remove_dir(Path::new(RUNC_ROOT).join(&teardown.namespace));
        let status = shim.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL)
        );
        assert!(!served.exists(), "{} is left", served.display());
        assert!(!left.exists(), "{} is left", left.display());
        assert!(live.exists(), "a served socket was removed");
        drop(listener);
    }

    #[test]
    fn output_within_returns_what_a_program_printed_and_its_status() {
        let out = output_within(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(60),
        )
        .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
    }

    #[test]
    fn output_within_kills_a_program_that_runs_past_its_limit() {
        let err = output_within(
            Command::new("sh").args(["-c", "echo started; exec sleep 1000"]),
            // Long enough for a fork and exec on a loaded machine to print first.
            Duration::from_secs(3),
        )
        .unwrap_err();
        let message = format!("{err:#}");
        assert!(
            message.contains("killed after 3s") && message.contains("started"),
            "{message}"
        );
    }

    #[test]
    fn output_once_printed_gives_the_input_and_the_line_once_the_output_shows() {
        // Reads its input, prints, and exits only on the next line.
        let out = output_once_printed(
            Command::new("sh").args([
                "-c",
                "read a; echo got:$a; echo e >&2; read b; echo after:$b; exit 4",
            ]),
            Duration::from_secs(60),
            Exchange {
                input: b"x\n",
                stdout: "got:x",
                stderr: "e",
            },
        )
        .unwrap();
        assert_eq!(out.status.code(), Some(4));
        assert_eq!(out.stdout, b"got:x\nafter:\n");
        assert_eq!(out.stderr, b"e\n");
    }

    #[test]
    fn output_once_printed_withholds_the_line_until_the_output_shows() {
        // The line would make it exit 0; it is not sent, and the program is killed.
        let err = output_once_printed(
            Command::new("sh").args(["-c", "echo other; read _; exit 0"]),
            Duration::from_secs(3),
            Exchange {
                stdout: "expected",
                ..Exchange::default()
            },
        )
        .unwrap_err();
        let message = format!("{err:#}");
        assert!(
            message.contains("killed after 3s") && message.contains("other"),
            "{message}"
        );
    }

    #[test]
    fn a_namespace_cgroup_goes_from_every_hierarchy_and_nothing_else_does() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        for dir in [
            "chp-1-0/a/b",
            "memory/chp-1-0/c",
            "pids/chp-1-0",
            "memory/chp-1-1/d",
        ] {
            std::fs::create_dir_all(r.join(dir)).unwrap();
        }
        // Stands for a group that still holds a process: rmdir refuses it and its parents.
        std::fs::create_dir_all(r.join("cpu/chp-1-0/busy")).unwrap();
        std::fs::write(r.join("cpu/chp-1-0/busy/tasks"), "1\n").unwrap();

        remove_cgroups(r, "chp-1-0");

        for gone in ["chp-1-0", "memory/chp-1-0", "pids/chp-1-0"] {
            assert!(!r.join(gone).exists(), "{gone} is left");
        }
        for kept in [
            "memory/chp-1-1/d",
            "cpu/chp-1-0/busy/tasks",
            "memory",
            "pids",
        ] {
            assert!(r.join(kept).exists(), "{kept} was removed");
        }
    }
}
