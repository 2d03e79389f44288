//! `chaperone profile export` (a learned profile as a seccomp profile) and `chaperone learn`
//! (a learned profile from recorded traces).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use chaperone_profiler::model::{codec, NgramCounts};
use chaperone_profiler::syscalls::Arch;
use chaperone_profiler::trace::{self, Format};
use chaperone_seccomp_gen::docker::{export_docker, parse_base};
use chaperone_seccomp_gen::oci::DEFAULT_ARCHES;
use chaperone_seccomp_gen::spo::export_spo;
use chaperone_seccomp_gen::{export_oci, Allowlist, DefaultAction, ExportOptions};

use crate::out::{report_skipped, usage};
use crate::store::{self, Locations};
use chaperone_profiler::store::Learning;
use chaperone_profiler::supervisor::Piece;

const EXIT_CODES: &str = "\
Exit status: 0 success; 1 error (unreadable or malformed trace or profile, no syscall in the \
traces, unusable store); 2 bad usage.";

/// `chaperone profile ...`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Profiles live in the SQLite store named by the config's db_path (default \
/var/lib/chaperone/profiles.db), one per image (the chaperone.io/profile annotation, else the \
image digest, sha256:<hex>, as CRI or containerd's image store gives it, else the image name, \
else exec:<command>).

Exit status: 0 success; 1 error (no store, no such profile, unreadable file); 2 bad usage.")]
pub struct ProfileArgs {
    #[command(subcommand)]
    command: ProfileCommand,
    #[command(flatten)]
    loc: Locations,
}

#[derive(Debug, clap::Subcommand)]
enum ProfileCommand {
    /// List the profiles in the store.
    List {
        /// One JSON object per profile.
        #[arg(long)]
        json: bool,
    },
    /// Show one profile: learning progress, convergence, threshold.
    Show {
        /// The profile (image) name.
        profile: String,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Set a profile's mode: off, learn, monitor, enforce, or default (the config's).
    Mode {
        /// The profile (image) name.
        profile: String,
        /// off, learn, monitor, enforce or default.
        #[arg(value_parser = store::parse_mode_setting)]
        mode: store::ModeSetting,
    },
    /// Delete a profile and its history from the store.
    Reset {
        /// The profile (image) name.
        profile: String,
    },
    /// Export a learned profile as a seccomp profile (OCI, Docker/Kubernetes, SPO).
    Export(ExportArgs),
}

/// Output format of `profile export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ExportFormat {
    /// The OCI `linux.seccomp` object of a bundle's config.json.
    Oci,
    /// moby's profile JSON (`docker run --security-opt seccomp=FILE`, Kubernetes Localhost).
    Docker,
    /// A Security Profiles Operator `SeccompProfile` object, as YAML.
    Spo,
}

/// Arguments of `chaperone profile export`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
The profile allows every syscall the model learned plus the ones runc itself makes between \
loading the filter and executing the container (chaperone_seccomp_gen::runtime) and the ones the \
supervisor never traces (write, mmap, futex...: no profile can have learned them); other \
syscalls get --default-action. Names a target architecture lacks are replaced by their counterpart there \
(open -> openat on aarch64, mmap2 -> mmap on x86_64) or skipped.

--merge BASE takes a Docker or OCI profile (or a whole config.json) the result is never weaker \
than: what BASE denies stays denied (with BASE's errno), and what BASE allows only under argument \
conditions keeps them. A field neither format defines is an error naming it.

Exit status: 0 success; 1 error (unreadable profile, trace or base; a profile with nothing \
learned, or with syscalls this build does not know, learned by a newer chaperone); 2 bad usage.")]
#[command(group = clap::ArgGroup::new("source").required(true).args(["image", "profile"]))]
pub struct ExportArgs {
    /// The profile (image) name in the store.
    image: Option<String>,
    /// A learned profile file written by `chaperone learn` (model codec format) instead.
    #[arg(long, value_name = "FILE")]
    profile: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum)]
    format: ExportFormat,
    /// Architectures the filter covers, comma-separated: x86_64, i386, aarch64.
    #[arg(long, value_delimiter = ',', value_parser = parse_arch, default_value = "x86_64,aarch64")]
    arch: Vec<Arch>,
    /// What other syscalls get: errno (EPERM), log (allowed and logged) or kill (the process).
    #[arg(long, default_value = "errno", value_parser = parse_action)]
    default_action: DefaultAction,
    /// A Docker or OCI seccomp profile the result must never be weaker than.
    #[arg(long, value_name = "BASE")]
    merge: Option<PathBuf>,
    /// The SPO object's name (default: the profile's name in the store, or the profile file's
    /// stem, made a valid object name).
    #[arg(long)]
    name: Option<String>,
    /// Write here instead of standard output (`-`: standard output).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// Where a learned profile comes from.
#[derive(Debug)]
enum Source<'a> {
    /// A file in the model codec's format.
    File(&'a Path),
    /// A profile in the store.
    Store(&'a Locations, &'a str),
}

impl Source<'_> {
    fn load(&self) -> Result<NgramCounts> {
        match self {
            Source::File(path) => read_profile(path),
            Source::Store(loc, key) => {
                let store = loc.read_store()?;
                store
                    .model(key)?
                    .with_context(|| format!("no profile {key:?} in {}", store.path().display()))
            }
        }
    }

    /// The profile, for messages.
    fn describe(&self) -> String {
        match self {
            Source::File(path) => format!("the profile {}", path.display()),
            Source::Store(_, key) => format!("profile {key:?}"),
        }
    }

    /// A default object name for the SPO export.
    fn default_name(&self) -> String {
        let stem = match self {
            Source::File(path) => path.file_stem().unwrap_or_default().to_string_lossy(),
            Source::Store(_, key) => std::borrow::Cow::Borrowed(*key),
        };
        let name: String = stem
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let name = name.trim_matches('-');
        if name.is_empty() {
            "chaperone-profile".to_owned()
        } else {
            name.to_owned()
        }
    }
}

/// A profile name: not empty, and without control characters (a table row per profile).
fn profile_name(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err("a profile name cannot be empty".to_owned());
    }
    if s.chars().any(char::is_control) {
        return Err("a profile name cannot hold control characters".to_owned());
    }
    Ok(s.to_owned())
}

fn parse_arch(s: &str) -> Result<Arch, String> {
    s.parse().map_err(|e| format!("{e}"))
}

fn parse_action(s: &str) -> Result<DefaultAction, String> {
    s.parse().map_err(|e| format!("{e}"))
}

/// Writes `text` to `path` whole or not at all: into a new file beside it, flushed to disk, then
/// renamed over it. A profile that `learn -o` extends, or an export a pipeline ships, is never
/// left half written by a full disk or a kill. An existing file keeps its permissions; a
/// symbolic link is written through. What is not a regular file (a device such as
/// `/dev/null` or `/dev/stdout`'s terminal, a named pipe) is written to as it is: until
/// 2026-12-07 the rename replaced it with a file.
fn replace_file(path: &Path, text: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let target = match fs::symlink_metadata(path) {
        // A dangling link names the file to create.
        Ok(m) if m.file_type().is_symlink() => fs::canonicalize(path).or_else(|_| {
            let to = fs::read_link(path)?;
            Ok::<_, std::io::Error>(path.parent().map_or(to.clone(), |dir| dir.join(&to)))
        })?,
        _ => path.to_owned(),
    };
    match fs::metadata(&target) {
        Ok(m) if m.is_dir() => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::IsADirectory,
                "is a directory",
            ))
        }
        Ok(m) if !m.is_file() => {
            return fs::OpenOptions::new()
                .write(true)
                .open(&target)?
                .write_all(text);
        }
        _ => {}
    }
    let name = target
        .file_name()
        .ok_or_else(|| std::io::Error::other("names no file"))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".tmp-{}", std::process::id()));
    let temp = target.with_file_name(temp_name);
    let written = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        if let Ok(old) = fs::metadata(&target) {
            file.set_permissions(old.permissions())?;
        }
        file.write_all(text)?;
        file.sync_all()?;
        fs::rename(&temp, &target)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written
}

/// Reads a serialized model.
pub fn read_profile(path: &Path) -> Result<NgramCounts> {
    let bytes = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    codec::decode(&bytes).with_context(|| format!("cannot read the profile {}", path.display()))
}

/// Writes `text` to `output`, or to standard output without one or when it is `-`.
fn write_output(output: Option<&Path>, text: &[u8]) -> Result<()> {
    match output.filter(|p| p.as_os_str() != "-") {
        Some(path) => {
            replace_file(path, text).with_context(|| format!("cannot write {}", path.display()))
        }
        None => {
            use std::io::Write;
            std::io::stdout()
                .write_all(text)
                .context("cannot write to standard output")
        }
    }
}

/// Runs `chaperone profile ...`.
pub fn run_profile(args: &ProfileArgs) -> Result<()> {
    let loc = &args.loc;
    match &args.command {
        ProfileCommand::List { json } => store::print_list(loc.read_store()?.rows()?, *json),
        ProfileCommand::Show { profile, json } => store::show(loc, profile, *json),
        ProfileCommand::Mode { profile, mode } => store::set_mode(loc, profile, *mode),
        ProfileCommand::Reset { profile } => {
            loc.store()?.reset(profile)?;
            eprintln!("chaperone: profile {profile} deleted");
            Ok(())
        }
        ProfileCommand::Export(a) => run_export(a, loc),
    }
}

fn run_export(args: &ExportArgs, loc: &Locations) -> Result<()> {
    if args.name.is_some() && args.format != ExportFormat::Spo {
        usage!("--name names the SeccompProfile object: it goes with --format spo");
    }
    let source = match (&args.profile, &args.image) {
        (Some(path), _) => Source::File(path),
        (None, Some(key)) => Source::Store(loc, key),
        (None, None) => bail!("name a profile in the store, or --profile FILE"),
    };
    let counts = source.load()?;
    // The export of nothing learned would allow only runc's own syscalls: no container could
    // run under it. `learn` refuses traces without a syscall, and the shim takes such a
    // profile for none, alike.
    if counts.events() == 0 {
        bail!(
            "{} has nothing learned (0 events): its export would allow only what runc itself \
             calls, and no container could run under it",
            source.describe()
        );
    }
    let base = match &args.merge {
        Some(path) => {
            let text = fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Some(
                parse_base(&text)
                    .with_context(|| format!("bad base profile {}", path.display()))?,
            )
        }
        None => None,
    };
    // Each architecture once, in the order given.
    let mut arches = Vec::new();
    for arch in &args.arch {
        if !arches.contains(arch) {
            arches.push(*arch);
        }
    }
    let options = ExportOptions {
        arches: if arches.is_empty() {
            DEFAULT_ARCHES.to_vec()
        } else {
            arches
        },
        default_action: args.default_action,
        base,
    };
    let oci = export_oci(&Allowlist::try_from_counts(&counts)?, &options)?;
    let text = match args.format {
        ExportFormat::Oci => {
            let mut s = serde_json::to_string_pretty(&oci)?;
            s.push('\n');
            s
        }
        ExportFormat::Docker => export_docker(&oci),
        ExportFormat::Spo => {
            let name = args.name.clone().unwrap_or_else(|| source.default_name());
            export_spo(&oci, &name)?
        }
    };
    write_output(args.output.as_deref(), text.as_bytes())
}

/// Trace formats `chaperone learn` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LearnFormat {
    /// `strace -f` output.
    Strace,
    /// sysdig text (LID-DS `.sc`).
    Sysdig,
}

/// Arguments of `chaperone learn`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXIT_CODES)]
#[command(group = clap::ArgGroup::new("target").required(true).args(["output", "image"]))]
pub struct LearnArgs {
    /// Trace files or directories (read recursively).
    #[arg(long, value_name = "FILE", required = true, num_args = 1..)]
    from: Vec<PathBuf>,
    /// Trace format.
    #[arg(long, value_enum)]
    format: LearnFormat,
    /// Architecture the traces were recorded on: the numbering of the calls strace printed by
    /// number (`syscall_0x1c4`); names are the same on every architecture.
    #[arg(long, default_value = "x86_64", value_parser = parse_arch)]
    arch: Arch,
    /// Write the learned profile to this file (`-`: standard output).
    #[arg(short, long, value_name = "PROFILE")]
    output: Option<PathBuf>,
    /// Merge what the traces hold into this profile (image) of the store instead (one
    /// learning run; the profile is created if needed).
    #[arg(long, value_name = "NAME", conflicts_with = "merge_into", value_parser = profile_name)]
    image: Option<String>,
    /// Extend this profile file instead of starting empty (it may be the same file as -o).
    #[arg(long, value_name = "PROFILE")]
    merge_into: Option<PathBuf>,
    #[command(flatten)]
    loc: Locations,
}

/// Runs `chaperone learn`.
pub fn run_learn(args: &LearnArgs) -> Result<()> {
    // The traces first: one that cannot be read, or none with a syscall, leaves no store made.
    let format = match args.format {
        LearnFormat::Strace => Format::Strace,
        LearnFormat::Sysdig => Format::Sysdig,
    };
    let mut threads = Vec::new();
    for path in &args.from {
        let parsed = trace::read_traces_with_skipped(format, path, args.arch)
            .with_context(|| format!("cannot learn from {}", path.display()))?;
        report_skipped(path, &parsed.skipped);
        threads.extend(parsed.traces.into_iter().map(|t| t.events));
    }
    if threads.iter().all(Vec::is_empty) {
        bail!("no syscalls in the traces: nothing to learn");
    }
    let store = match &args.image {
        Some(_) => Some(args.loc.open_or_create_store()?),
        None => None,
    };
    // A new model has the config's order, as the shim's learning has: a profile this makes
    // at another order would fail every merge of the shim's learning into it (MergeOrder).
    let configured =
        || -> Result<NgramCounts> { Ok(NgramCounts::new(args.loc.config()?.model.order)?) };
    let mut counts = match (&args.merge_into, &store, &args.image) {
        (Some(path), _, _) => read_profile(path)?,
        (None, Some(store), Some(image)) => match store.model(image)? {
            Some(stored) => NgramCounts::new(stored.order())?,
            None => configured()?,
        },
        _ => configured()?,
    };
    let mut events = 0_u64;
    for t in &threads {
        counts.learn_sequence(t);
        events += t.len() as u64;
    }
    if let (Some(store), Some(image)) = (&store, &args.image) {
        let learning = Learning {
            counts,
            containers: 1,
            maxima: Vec::new(),
            threads: threads.into_iter().map(Piece::whole).collect(),
            container: None,
            workload: None,
        };
        let merged = store.merge(image, &learning, None)?;
        eprintln!(
            "chaperone: learned {events} syscalls into profile {image} of {} ({} new n-grams)",
            store.path().display(),
            merged.new_grams
        );
        return Ok(());
    }
    write_output(args.output.as_deref(), &codec::encode(&counts))?;
    eprintln!(
        "chaperone: learned {events} syscalls; the profile has {} syscalls, {} events",
        counts.alphabet().len(),
        counts.events()
    );
    Ok(())
}
