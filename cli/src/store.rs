//! `chaperone profile list|show|mode|reset` (the profile store) and `chaperone alerts` (the
//! alert log, and feedback on it).

use std::fs;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use chaperone_config::{rfc3339, Config, Mode, DEFAULT_CONFIG_PATH};
use chaperone_profiler::detector::stats::{self, Basis};
use chaperone_profiler::model::NgramCounts;
use chaperone_profiler::store::{Allowed, Learning, Row, Store, Summary};
use chaperone_profiler::supervisor::{Piece, WINDOW};
use chaperone_profiler::syscalls::sym_of;
use chaperone_profiler::tiers::{hot_set, named_syscalls, train_projected, Projected};
use serde_json::{json, Value};

use crate::out::{cell, outln, print_table, usage};

/// Names the config file, as for the shim.
const CONFIG_ENV: &str = "CHAPERONE_CONFIG";

/// Where the store and the alert log are: flags, else the config file.
#[derive(Debug, Clone, clap::Args)]
pub struct Locations {
    /// chaperone's config file [default: $CHAPERONE_CONFIG, else /etc/chaperone/config.toml]
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The profile store (overrides the config's db_path).
    #[arg(long, global = true, value_name = "FILE", value_parser = store_file())]
    db: Option<PathBuf>,
}

/// `--db FILE` as an absolute path. SQLite gives some names meanings of their own that keep
/// nothing: an empty one is a private temporary database, `:memory:` one in memory (until
/// 2026-12-07 `learn --image web --db :memory:` exited 0 having stored nothing), and a `file:`
/// name is a URI. An empty name is refused, as clap's own path parser did; a relative one is
/// made absolute against the working directory, where the user means it (the config's
/// `db_path` must be absolute instead: the shim's working directory is the container's
/// bundle), which leaves SQLite a plain file name.
fn store_file() -> impl clap::builder::TypedValueParser<Value = PathBuf> {
    use clap::builder::TypedValueParser as _;
    clap::builder::OsStringValueParser::new().try_map(|name| {
        if name.is_empty() {
            return Err("an empty name is no file".to_owned());
        }
        std::path::absolute(&name).map_err(|e| format!("{name:?}: {e}"))
    })
}

impl Locations {
    /// The node's config: `--config`, else `$CHAPERONE_CONFIG`, else the default file if it
    /// exists, else the defaults.
    pub fn config(&self) -> Result<Config> {
        let named = self
            .config
            .clone()
            .or_else(|| std::env::var_os(CONFIG_ENV).map(PathBuf::from));
        let config = match named {
            Some(path) => Config::load(&path)?,
            None if Path::new(DEFAULT_CONFIG_PATH).exists() => {
                Config::load(Path::new(DEFAULT_CONFIG_PATH))?
            }
            None => Config::default(),
        };
        Ok(config)
    }

    fn db_path(&self) -> Result<PathBuf> {
        match &self.db {
            Some(p) => Ok(p.clone()),
            None => Ok(self.config()?.db_path),
        }
    }

    /// Opens the store, creating it if needed (for commands that write).
    pub fn open_or_create_store(&self) -> Result<Store> {
        Ok(Store::open(&self.db_path()?)?)
    }

    /// Opens the store to change it; a missing one is an error.
    pub fn store(&self) -> Result<Store> {
        Ok(Store::open(&self.existing_db()?)?)
    }

    /// Opens the store to read it only (`Store::open_read_only`: nothing is created, migrated
    /// or switched, and a read-only mount or file is read); a missing one is an error.
    pub fn read_store(&self) -> Result<Store> {
        Ok(Store::open_read_only(&self.existing_db()?)?)
    }

    fn existing_db(&self) -> Result<PathBuf> {
        let path = self.db_path()?;
        // `Store::exists` tells nothing there from a store moved away without its `-wal`.
        if !Store::exists(&path)? {
            bail!(
                "no profile store at {} (nothing learned yet, or see --db/--config)",
                path.display()
            );
        }
        Ok(path)
    }
}

/// `chaperone profile list`: every profile, as a table or one JSON object per line. As in
/// `show`, what cannot be read (a mode this build does not know, a damaged row) is marked, `?`
/// or an `{"error": ...}` object in its place, and the first error is reported after every
/// profile is printed, so one bad row hides nothing else, and the command still fails.
pub fn print_list(profiles: Vec<Row>, json_out: bool) -> Result<()> {
    if json_out {
        for p in &profiles {
            let v = match &p.summary {
                Ok(s) => {
                    let mut v = summary_json(s, None);
                    if let Some(e) = &p.mode_error {
                        v["mode"] = json!({ "error": format!("{e:#}") });
                    }
                    v
                }
                Err(e) => json!({ "profile": p.key, "error": format!("{e:#}") }),
            };
            outln!("{v}")?;
        }
    } else {
        let header = [
            "PROFILE",
            "MODE",
            "CONTAINERS",
            "EVENTS",
            "N-GRAMS",
            "NEW/1K",
        ];
        let mut rows = vec![header.map(str::to_owned).to_vec()];
        rows.extend(profiles.iter().map(|p| {
            let Ok(s) = &p.summary else {
                let mut row = vec![cell(&p.key)];
                row.resize(header.len(), UNREADABLE.to_owned());
                return row;
            };
            let mode = match (&p.mode_error, s.mode) {
                (Some(_), _) => UNREADABLE,
                (None, None) => "default",
                (None, Some(m)) => m.as_str(),
            };
            vec![
                cell(&p.key),
                mode.to_owned(),
                s.containers.to_string(),
                s.events.to_string(),
                s.grams.to_string(),
                s.new_per_1000
                    .map_or_else(|| "-".to_owned(), |r| format!("{r:.3}")),
            ]
        }));
        print_table(&rows, &[2, 3, 4, 5])?;
    }
    let total = profiles.len();
    let mut unreadable = profiles
        .into_iter()
        .filter_map(|p| p.mode_error.or(p.summary.err()));
    let Some(first) = unreadable.next() else {
        return Ok(());
    };
    let what = match unreadable.count() {
        0 => format!("1 of {total} profiles cannot be read whole (marked {UNREADABLE})"),
        more => format!(
            "{} of {total} profiles cannot be read whole (marked {UNREADABLE}); the first",
            more + 1
        ),
    };
    Err(anyhow::Error::from(first).context(what))
}

/// What `profile list` shows for what it cannot read.
const UNREADABLE: &str = "?";

/// A profile's summary as JSON (with its threshold when known).
pub fn summary_json(p: &Summary, threshold: Option<(f64, Option<f32>)>) -> Value {
    let mut v = json!({
        "profile": p.key,
        "mode": p.mode.map(Mode::as_str),
        "containers": p.containers,
        "events": p.events,
        "ngrams": p.grams,
        "held_out_threads": p.calibration,
        "new_per_1000_events": p.new_per_1000,
        "updated": p.updated,
    });
    if let Some((far, t)) = threshold {
        v["target_far"] = json!(far);
        v["threshold"] = json!(t);
    }
    v
}

/// How `stats::calibrate` reached a threshold for target `far` from `held_out` scores, when it
/// is not their quantile (ADR 0023).
fn threshold_basis(far: f64, held_out: usize) -> String {
    match stats::basis(far, held_out) {
        Basis::Quantile => String::new(),
        Basis::Highest => format!(
            "; below what {held_out} held-out thread(s) can show, too few to extrapolate: their highest"
        ),
        Basis::Tail => {
            format!("; below what {held_out} held-out threads can show: extrapolated from their tail")
        }
    }
}

/// The tiered filter of profile `key` as the shim's Create in monitor or enforce mode would
/// build it now: how many hot syscalls run in the kernel, and the projected model with its
/// threshold. `None` without a model or recorded runs (then every syscall is traced and the
/// profile's own threshold applies).
fn tiered_model(store: &Store, key: &str, config: &Config) -> Result<Option<(usize, Projected)>> {
    let Some(counts) = store.model(key)?.filter(|c| c.events() > 0) else {
        return Ok(None);
    };
    let traced = named_syscalls(&config.filter.always_traced)
        .map_err(|n| anyhow!("filter.always_traced: {n:?} is not a syscall name"))?;
    let hot = hot_set(&counts, config.filter.hot_coverage, &traced);
    let runs = store.runs(key)?;
    let projected = train_projected(&counts, &runs, &hot, config.model.target_far)?;
    Ok(projected.map(|p| (hot.len(), p)))
}

/// `chaperone profile show KEY`.
pub fn show(loc: &Locations, key: &str, json_out: bool) -> Result<()> {
    let config = loc.config()?;
    let store = loc.read_store()?;
    // Every figure of one state of the store, while shims may be merging runs.
    let _one_state = store.snapshot()?;
    let Some(row) = store.row(key)? else {
        bail!("no profile {key:?} in {}", store.path().display());
    };
    let (p, mode_error) = (row.summary?, row.mode_error);
    let far = config.model.target_far;
    // What cannot be read or used (a damaged row, a model learning cannot make, a mode this
    // build does not know) is shown as such, and the first error is reported after
    // everything else the store could give.
    let threshold = store.threshold(key, far);
    let tiered = tiered_model(&store, key, &config);
    let workloads = store.workloads(key);
    let failed = || -> Result<()> {
        if let Some(e) = &mode_error {
            bail!("{e:#}");
        }
        threshold.as_ref().map_err(|e| anyhow!("{e:#}"))?;
        tiered.as_ref().map_err(|e| anyhow!("{e:#}"))?;
        workloads.as_ref().map_err(|e| anyhow!("{e:#}"))?;
        Ok(())
    };
    if json_out {
        let mut v = summary_json(&p, threshold.as_ref().ok().map(|t| (far, *t)));
        if let Some(e) = &mode_error {
            v["mode"] = json!({ "error": format!("{e:#}") });
        }
        if let Err(e) = &threshold {
            v["target_far"] = json!(far);
            v["threshold"] = json!({ "error": format!("{e:#}") });
        }
        v["tiered"] = match &tiered {
            Ok(Some((hot, p))) => json!({
                "hot_syscalls": hot,
                "hot_coverage": config.filter.hot_coverage,
                "threshold": p.threshold,
                "calibration_threads": p.calibration,
            }),
            Ok(None) => Value::Null,
            Err(e) => json!({ "error": format!("{e:#}") }),
        };
        v["workloads"] = match &workloads {
            Ok(w) => w
                .iter()
                .map(|s| {
                    json!({
                        "namespace": s.workload.namespace,
                        "pod": s.workload.pod,
                        "container": s.workload.container,
                        "runs": s.runs,
                        "last": s.last,
                    })
                })
                .collect(),
            Err(e) => json!({ "error": format!("{e:#}") }),
        };
        outln!("{v}")?;
        return failed();
    }
    outln!("profile:            {}", p.key)?;
    match (&mode_error, p.mode) {
        (Some(_), _) => outln!("mode:               - (cannot be read: see the error below)")?,
        (None, None) => outln!("mode:               default ({})", config.mode)?,
        (None, Some(m)) => outln!("mode:               {m}")?,
    }
    outln!("containers learned: {}", p.containers)?;
    outln!("events learned:     {}", p.events)?;
    outln!("distinct n-grams:   {}", p.grams)?;
    outln!(
        "new n-grams/1,000:  {}",
        p.new_per_1000.map_or_else(
            || "- (fewer than 50,000 events)".to_owned(),
            |r| format!("{r:.3}")
        )
    )?;
    outln!("held-out threads:   {}", p.calibration)?;
    match threshold {
        Ok(Some(t)) => outln!(
            "learned threshold:  {t:.3} nats/event (target false-alarm rate {far}{})",
            threshold_basis(far, usize::try_from(p.calibration).unwrap_or(usize::MAX))
        )?,
        Ok(None) => outln!(
            "learned threshold:  - (no held-out threads: the shim keeps them from the second container it learns on; `chaperone learn` gives none)"
        )?,
        Err(_) => outln!("learned threshold:  - (its data cannot be read: see the error below)")?,
    }
    match &tiered {
        Ok(Some((hot, t))) => {
            outln!(
                "tiered filter:      {hot} hot syscalls run in the kernel (hot_coverage {}), \
                 monitor and enforce score the rest",
                config.filter.hot_coverage
            )?;
            outln!(
                "tiered threshold:   {:.3} nats/event (target false-alarm rate {far}{}), \
                 calibrated on {} recorded threads",
                t.threshold,
                threshold_basis(far, t.calibration),
                t.calibration
            )?;
        }
        Ok(None) => outln!(
            "tiered threshold:   - (no recorded runs: monitor and enforce trace every syscall \
             and use the learned threshold)"
        )?,
        Err(_) => outln!("tiered threshold:   - (the model cannot be used: see the error below)")?,
    }
    match &workloads {
        Ok(seen) if !seen.is_empty() => {
            outln!("learned from (Kubernetes namespace/pod/container, runs; newest first):")?;
            for s in seen {
                let w = &s.workload;
                outln!("  {}/{}/{}  {}", w.namespace, w.pod, w.container, s.runs)?;
            }
        }
        Ok(_) => {}
        Err(_) => outln!("learned from:       - (cannot be read: see the error below)")?,
    }
    failed()
}

/// The `MODE` of `chaperone profile mode KEY MODE`: a mode, or `None` for `default` (the
/// config's mode applies again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeSetting(pub Option<Mode>);

/// Reads a [`ModeSetting`]; an unknown name is a usage error (exit 2) listing the accepted
/// ones.
pub fn parse_mode_setting(s: &str) -> Result<ModeSetting, String> {
    match s.trim() {
        "default" => Ok(ModeSetting(None)),
        m => m
            .parse::<Mode>()
            .map(|mode| ModeSetting(Some(mode)))
            .map_err(|e| format!("{e}, default")),
    }
}

/// `chaperone profile mode KEY MODE`: `default` clears the per-image mode.
pub fn set_mode(loc: &Locations, key: &str, ModeSetting(mode): ModeSetting) -> Result<()> {
    loc.store()?.set_mode(key, mode)?;
    eprintln!(
        "chaperone: profile {key}: mode {}",
        mode.map_or("default", Mode::as_str)
    );
    Ok(())
}

/// Arguments of `chaperone alerts`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Alerts are JSON lines in Falco's output format in the config's alerts_path \
(default /var/log/chaperone/alerts.jsonl). The table cuts container ids to 13 characters, as \
crictl does; --json gives every field whole.

Exit status: 0 success; 1 error (unreadable log, unknown alert, unusable store); 2 bad usage; \
141 standard output closed early (`| head`).")]
pub struct AlertsArgs {
    #[command(subcommand)]
    command: Option<AlertsCommand>,
    /// The alert log (overrides the config's alerts_path).
    #[arg(long, global = true, value_name = "FILE")]
    file: Option<PathBuf>,
    /// Print the alerts as they are (one JSON object per line).
    #[arg(long)]
    json: bool,
    /// Keep printing alerts as they are written, following the log by name through
    /// truncation and rotation (as `tail -F`).
    #[arg(short, long)]
    follow: bool,
    /// Only the alerts of this container.
    #[arg(long, value_name = "ID")]
    container: Option<String>,
    #[command(flatten)]
    loc: Locations,
}

#[derive(Debug, clap::Subcommand)]
enum AlertsCommand {
    /// Mark an alert benign: its syscall window joins the profile, so the same behaviour does
    /// not alert again.
    Allow {
        /// The alert's id (`chaperone.alert_id`, first column of `chaperone alerts`).
        id: String,
    },
}

/// Runs `chaperone alerts ...`.
pub fn run_alerts(args: &AlertsArgs) -> Result<()> {
    let path = match &args.file {
        Some(p) => p.clone(),
        None => args.loc.config()?.alerts_path,
    };
    if let Some(AlertsCommand::Allow { id }) = &args.command {
        if args.follow || args.json || args.container.is_some() {
            usage!("--follow, --json and --container are for listing alerts, not for allow");
        }
        return allow(&args.loc, &path, id);
    }
    let mut file = match fs::File::open(&path) {
        Ok(f) => Some(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && args.follow => None,
        // The config's log not there yet is no alert so far; a file named with --file that
        // is not there is a mistake to report (exit 1).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && args.file.is_none() => {
            eprintln!("chaperone: no alerts ({} does not exist)", path.display());
            return Ok(());
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    if path.is_dir() {
        bail!(
            "cannot read {}: a directory, not an alert log",
            path.display()
        );
    }
    if !args.json {
        outln!(
            "{:<16} {:<30} {:<8} {:<13} {:<16} {:<12} {:>6}",
            "ID",
            "TIME",
            "PRIORITY",
            "CONTAINER",
            "SYSCALL",
            "ACTION",
            "SCORE"
        )?;
    }
    let print_more = |f: &mut fs::File, offset| {
        print_from(f, offset, args).with_context(|| format!("cannot read {}", path.display()))
    };
    let mut offset = 0_u64;
    loop {
        if let Some(f) = file.as_mut() {
            offset = print_more(f, offset)?;
        } else {
            file = fs::File::open(&path).ok();
        }
        if !args.follow {
            return Ok(());
        }
        std::thread::sleep(FOLLOW_INTERVAL);
        if let Some(f) = file.as_mut() {
            match rotation(f, &path, offset) {
                Some(Rotation::Replaced(new)) => {
                    // The shim opens the log by name for every alert: what it wrote before the
                    // rename is in the old file, read to its end first.
                    print_more(f, offset)?;
                    eprintln!(
                        "chaperone: {} was replaced (rotated); following the new file",
                        path.display()
                    );
                    *f = new;
                    offset = 0;
                }
                Some(Rotation::Truncated) => {
                    eprintln!(
                        "chaperone: {} was truncated; reading it from its start",
                        path.display()
                    );
                    offset = 0;
                }
                None => {}
            }
        }
    }
}

/// How often `--follow` looks for new lines.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(250);

/// What happened to a followed log, as `tail -F` tells them apart.
enum Rotation {
    /// Its path names another file now (renamed away and created again), opened here.
    Replaced(fs::File),
    /// It is shorter than what was read of it (truncated in place, `copytruncate`).
    Truncated,
}

/// Whether the log `file`, read to `offset`, was rotated; `None` also while nothing is at
/// `path` (removed, not yet created again: the old file is kept until then).
fn rotation(file: &fs::File, path: &Path, offset: u64) -> Option<Rotation> {
    use std::os::unix::fs::MetadataExt;
    let ours = file.metadata().ok()?;
    let named = fs::metadata(path).ok()?;
    if (named.dev(), named.ino()) != (ours.dev(), ours.ino()) {
        return fs::File::open(path).ok().map(Rotation::Replaced);
    }
    (ours.len() < offset).then_some(Rotation::Truncated)
}

/// Prints the complete lines after `offset`; returns the offset after the last one.
fn print_from(file: &mut fs::File, offset: u64, args: &AlertsArgs) -> Result<u64> {
    file.seek(SeekFrom::Start(offset))?;
    let mut reader = BufReader::new(file);
    let mut pos = offset;
    // Bytes, not text: a line that is not UTF-8 is malformed like any other, skipped.
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') {
            // A line still being written is read whole next time.
            return Ok(pos);
        }
        pos += n as u64;
        let Ok(alert) = serde_json::from_slice::<Value>(&line) else {
            eprintln!(
                "chaperone: skipping a malformed alert line at byte {}",
                pos - n as u64
            );
            continue;
        };
        let fields = &alert["output_fields"];
        if let Some(c) = &args.container {
            if fields["container.id"].as_str() != Some(c) {
                continue;
            }
        }
        if args.json {
            std::io::Write::write_all(&mut std::io::stdout().lock(), &line)?;
            continue;
        }
        let text = |v: &Value| cell(v.as_str().unwrap_or("-"));
        // The container's id cut to 13 characters, as crictl prints ids (`--json` has it
        // whole), so that a 64-character id keeps the row's columns in place.
        let container: String = text(&fields["container.id"]).chars().take(13).collect();
        outln!(
            "{:<16} {:<30} {:<8} {:<13} {:<16} {:<12} {:>6.2}",
            text(&fields["chaperone.alert_id"]),
            text(&alert["time"]),
            text(&alert["priority"]),
            container,
            text(&fields["evt.type"]),
            text(&fields["chaperone.action"]),
            fields["chaperone.score"].as_f64().unwrap_or(f64::NAN),
        )?;
    }
}

/// Finds alert `id` and merges its syscall window into its profile.
fn allow(loc: &Locations, path: &Path, id: &str) -> Result<()> {
    let bytes = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let alert = bytes
        .split(|&b| b == b'\n')
        .filter_map(|l| serde_json::from_slice::<Value>(l).ok())
        .find(|a| a["output_fields"]["chaperone.alert_id"].as_str() == Some(id))
        .with_context(|| format!("no alert {id} in {}", path.display()))?;
    let fields = &alert["output_fields"];
    let unusable = |what: &str| format!("alert {id} in {} {what}", path.display());
    let key = fields["chaperone.profile"]
        .as_str()
        .with_context(|| unusable("names no profile (chaperone.profile)"))?;
    let names = fields["chaperone.window"]
        .as_array()
        .with_context(|| unusable("has no syscall window (chaperone.window)"))?;
    let window: Vec<u16> = names
        .iter()
        .filter_map(|n| n.as_str().and_then(sym_of))
        .collect();
    if window.is_empty() {
        bail!(unusable("has no known syscalls in its window"));
    }
    let store = loc.store()?;
    let order = store
        .model(key)?
        .with_context(|| format!("no profile {key:?} in {}", store.path().display()))?
        .order();
    // A full window is the end of a thread, not its start: learned as a continuation, as are
    // the recorded pieces of a thread cut by a flush (until 2026-12-07, as a thread, which
    // also taught the profile that threads may begin the way the window does). A shorter one
    // (counted as the alert lists it, names this build does not know included) is all the
    // thread had made that the scoring model saw, from its start: under the tiered filter the
    // hot syscalls before it are not in it, but the projected model, which scores there, does
    // not see them either.
    let window = if names.len() < WINDOW {
        Piece::whole(window)
    } else {
        Piece::continuation(window)
    };
    let mut counts = NgramCounts::new(order)?;
    window.learn_into(&mut counts);
    let learning = Learning {
        counts,
        containers: 0,
        maxima: Vec::new(),
        // The window is what a tiered supervisor saw: its model learns it too.
        threads: vec![window.clone()],
        container: None,
        workload: None,
    };
    match store.allow_alert(key, id, &learning)? {
        Allowed::Merged(merged) => eprintln!(
            "chaperone: alert {id}: {} syscalls of its window joined profile {key} ({} new n-grams)",
            window.syms.len(),
            merged.new_grams
        ),
        Allowed::Before { at } => eprintln!(
            "chaperone: alert {id} was allowed into profile {key} before ({}): nothing to do",
            rfc3339(UNIX_EPOCH + Duration::from_secs(at))
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_basis_names_a_target_past_the_held_out_threads() {
        // 0.05 of 20 is one thread: the quantile, nothing to say.
        assert_eq!(threshold_basis(0.05, 20), "");
        assert_eq!(
            threshold_basis(0.0001, 150),
            "; below what 150 held-out threads can show: extrapolated from their tail"
        );
        assert!(threshold_basis(0.05, 19).contains("too few to extrapolate: their highest"));
    }
}
