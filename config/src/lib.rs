#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Default location of the node-wide configuration file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/chaperone/config.toml";
/// Default location of the profile store.
pub const DEFAULT_DB_PATH: &str = "/var/lib/chaperone/profiles.db";
/// Default location of the alert log (JSON lines, Falco's output format).
pub const DEFAULT_ALERTS_PATH: &str = "/var/log/chaperone/alerts.jsonl";
/// Default target false-alarm rate used to calibrate detection thresholds.
pub const DEFAULT_TARGET_FAR: f64 = 0.05;
/// Default n-gram order of the sequence model.
pub const DEFAULT_ORDER: usize = 8;
/// Longest n-gram order the model supports (eight 16-bit symbols pack into one 128-bit key).
pub const MAX_ORDER: usize = 8;
/// Default share of a profile's learned events whose syscalls the tiered filter allows in the
/// kernel (the hot set).
pub const DEFAULT_HOT_COVERAGE: f64 = 0.99;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not UTF-8 (TOML is).
    #[error("config file {path} is not UTF-8: invalid byte at offset {offset} (line {line})")]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// Where the first invalid byte is, counted from 0.
        offset: usize,
        /// The line it is on, counted from 1.
        line: usize,
    },
    /// The config file is not valid TOML for this schema.
    #[error("invalid config file {path}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: Box<toml::de::Error>,
    },
    /// A value of the config file is out of range or not a known name.
    #[error("invalid config file {path}")]
    Value {
        /// The file.
        path: PathBuf,
        /// Which value and why ([`ConfigError::Invalid`] or [`ConfigError::UnknownName`]).
        source: Box<ConfigError>,
    },
    /// A value is syntactically fine but out of range.
    #[error("invalid value for {field}: {reason}")]
    Invalid {
        /// Dotted name of the field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A mode, action or fail mode name was not recognised.
    #[error("unknown {kind} {value:?}; expected one of: {expected}")]
    UnknownName {
        /// Which kind of name.
        kind: &'static str,
        /// What was given.
        value: String,
        /// The accepted names.
        expected: &'static str,
    },
}

/// `Result` with this crate's error.
pub type Result<T> = std::result::Result<T, ConfigError>;

macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident, $kind:literal, { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every accepted name, comma separated (for error messages and `--help`).
            pub const NAMES: &'static str = concat!($($text, ", "),+);

            /// The canonical name.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = ConfigError;
            fn from_str(s: &str) -> Result<Self> {
                match s.trim() {
                    $($text => Ok(Self::$variant),)+
                    other => Err(ConfigError::UnknownName {
                        kind: $kind,
                        value: other.to_owned(),
                        expected: Self::NAMES.trim_end_matches(", "),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named_enum!(
    /// What chaperone does with a container.
    Mode, "mode", {
        /// Not traced at all: plain runc.
        Off => "off",
        /// Trace and count syscall sequences into the image's profile.
        Learn => "learn",
        /// Score live sequences and alert on deviations; never interfere.
        Monitor => "monitor",
        /// Score live sequences and apply the configured action on deviations.
        Enforce => "enforce",
    }
);

named_enum!(
    /// The response to a deviating syscall in enforce mode.
    Action, "action", {
        /// Record an alert only.
        Alert => "alert",
        /// Fail the offending syscall with EPERM; the process goes on.
        Deny => "deny",
        /// Freeze the container for forensics.
        Pause => "pause",
        /// Kill the container's processes.
        Kill => "kill",
    }
);

named_enum!(
    /// What happens to a traced container when its supervisor is lost.
    FailMode, "fail mode", {
        /// Stop the container: nothing runs untraced.
        Closed => "closed",
        /// Answer "continue" to everything until tracing is back.
        Open => "open",
    }
);

named_enum!(
    /// What the tiered filter of enforce mode does with a syscall the profile never saw
    /// (monitor mode always notifies: it never interferes).
    Unseen, "unseen action", {
        /// Notify it: the supervisor scores it (a never-seen syscall deviates), alerts and
        /// applies the container's action.
        Notify => "notify",
        /// Fail it with EPERM in the kernel: no alert, no supervisor round trip.
        Errno => "errno",
        /// Kill the calling process in the kernel (`SCMP_ACT_KILL_PROCESS`): no alert.
        Kill => "kill",
    }
);

named_enum!(
    /// What the filter of a container without a seccomp profile of its own does, in every traced
    /// mode, with the syscalls it cannot name: those newer than chaperone's syscall tables, and
    /// those runc's libseccomp cannot resolve (runc skips such names). No rule covers them, so
    /// they take the filter's default action (ADR 0026).
    Unnamed, "unnamed action", {
        /// Fail them with ENOSYS, as a kernel without them does (and Docker's default profile
        /// with calls newer than it knows): a program falls back to the older call it keeps
        /// for such kernels, which the filter names, so it is learned and scored.
        Enosys => "enosys",
        /// Let them run unseen by any supervisor, as under runc without chaperone.
        Allow => "allow",
    }
);

/// A plain `http://` URL split for a request: host, port (default 80) and path (default `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// Host name or address (an IPv6 address without its brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl HttpUrl {
    /// Parses `http://HOST[:PORT][/PATH]`; anything else (https, user info, no host) is an
    /// error saying why.
    pub fn parse(url: &str) -> std::result::Result<Self, String> {
        let Some(rest) = url.strip_prefix("http://") else {
            return Err(if url.starts_with("https://") {
                format!("{url:?}: https is not supported; post to a local forwarder such as Falcosidekick over http")
            } else {
                format!("{url:?} is not an http:// URL")
            });
        };
        let (authority, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
        if authority.contains('@') {
            return Err(format!("{url:?}: user info in the URL is not supported"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url:?}: unclosed [ in the host"))?;
            match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None if after.is_empty() => (host, None),
                None => return Err(format!("{url:?}: {after:?} after the host is not a :PORT")),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        // Only a bracketed IPv6 address holds a ':'; elsewhere a second one means the URL is
        // not what it seems (`host:80:90` would connect to a host named "host:80").
        if host.contains(':') && !authority.starts_with('[') {
            return Err(format!(
                "{url:?}: host {host:?} holds a ':' (an IPv6 address goes in brackets: http://[::1]:80/)"
            ));
        }
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(format!("{url:?} has no valid host"));
        }
        let port = match port {
            None => 80,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| format!("{url:?}: {p:?} is not a port"))?,
        };
        if path.contains(char::is_whitespace) {
            return Err(format!("{url:?}: whitespace in the path"));
        }
        Ok(Self {
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        })
    }
}

/// The node-wide configuration (`/etc/chaperone/config.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Mode for containers without a `chaperone.io/mode` annotation or per-image setting.
    pub mode: Mode,
    /// Action in enforce mode when no `chaperone.io/action` annotation is given.
    pub action: Action,
    /// What happens to a traced container when its supervisor is lost.
    pub fail_mode: FailMode,
    /// Path of the SQLite profile store shared by all shims of the node; absolute.
    pub db_path: PathBuf,
    /// Alert log: one JSON object per line, in Falco's output format; absolute.
    pub alerts_path: PathBuf,
    /// When set, each alert is also POSTed there as JSON (`http://HOST[:PORT][/PATH]`, such as
    /// Falcosidekick's `http://falcosidekick:2801/`).
    pub alerts_webhook: Option<String>,
    /// Sequence model settings.
    pub model: ModelConfig,
    /// The tiered filter of monitor and enforce mode.
    pub filter: FilterConfig,
    /// When set, learning profiles move to `promotion.to` once they converge.
    pub promotion: Option<PromotionPolicy>,
    /// A learning container's counts are merged into its profile at least this often (seconds)
    /// while it makes syscalls, as well as when it exits; 0: only when it exits.
    pub learn_flush_seconds: u64,
}

/// [`Config::learn_flush_seconds`] when the file does not set it.
pub const DEFAULT_LEARN_FLUSH_SECONDS: u64 = 60;

/// When a learning profile has converged and moves on (`[promotion]` in the config file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PromotionPolicy {
    /// Containers learned, at least.
    pub min_containers: u64,
    /// Events learned, at least.
    pub min_events: u64,
    /// New n-grams per 10,000 events over the newest `window_events`, fewer than this.
    pub max_new_per_10k: f64,
    /// Events over which the rate of new n-grams is measured.
    pub window_events: u64,
    /// The mode a converged profile moves to (`monitor` or `enforce`).
    pub to: Mode,
}

impl Default for PromotionPolicy {
    fn default() -> Self {
        Self {
            min_containers: 3,
            min_events: 100_000,
            max_new_per_10k: 1.0,
            window_events: 50_000,
            to: Mode::Monitor,
        }
    }
}

impl PromotionPolicy {
    /// Checks every value's range.
    pub fn validate(&self) -> Result<()> {
        if !matches!(self.to, Mode::Monitor | Mode::Enforce) {
            return Err(ConfigError::Invalid {
                field: "promotion.to",
                reason: format!("{} is not monitor or enforce", self.to),
            });
        }
        if !(self.max_new_per_10k.is_finite() && self.max_new_per_10k > 0.0) {
            return Err(ConfigError::Invalid {
                field: "promotion.max_new_per_10k",
                reason: format!("{} is not a positive number", self.max_new_per_10k),
            });
        }
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            mode: Mode::Learn,
            action: Action::Alert,
            fail_mode: FailMode::Closed,
            db_path: PathBuf::from(DEFAULT_DB_PATH),
            alerts_path: PathBuf::from(DEFAULT_ALERTS_PATH),
            alerts_webhook: None,
            model: ModelConfig::default(),
            filter: FilterConfig::default(),
            promotion: None,
            learn_flush_seconds: DEFAULT_LEARN_FLUSH_SECONDS,
        }
    }
}

/// Settings of the tiered filter (`[filter]`): which learned syscalls the kernel allows without
/// asking the supervisor, and what happens to those never learned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilterConfig {
    /// The most frequent learned syscalls covering this share of the learned events are allowed
    /// in the kernel (0: trace everything learned; 1: trace nothing learned). In [0, 1].
    pub hot_coverage: f64,
    /// What enforce mode does with a never-learned syscall.
    pub unseen: Unseen,
    /// What the filter of a container without its own seccomp profile does with the syscalls
    /// it cannot name, in every traced mode.
    pub unnamed: Unnamed,
    /// Syscall names never allowed in the kernel however often they were learned (`execve` and
    /// `execveat` never are). Process creation (`clone`, `clone3`, `fork`, `vfork`) here makes
    /// a spawned process wait for the supervisor, at one notification per process.
    pub always_traced: Vec<String>,
}

impl Default for FilterConfig {
    fn default() -> Self {
        Self {
            hot_coverage: DEFAULT_HOT_COVERAGE,
            unseen: Unseen::Notify,
            unnamed: Unnamed::Enosys,
            always_traced: Vec::new(),
        }
    }
}

impl FilterConfig {
    /// Checks every value's range.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.hot_coverage) {
            return Err(ConfigError::Invalid {
                field: "filter.hot_coverage",
                reason: format!("{} is not in [0, 1]", self.hot_coverage),
            });
        }
        Ok(())
    }
}

/// Settings of the syscall-sequence model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Longest n-gram the model counts (the context is one shorter); 1 to [`MAX_ORDER`].
    pub order: usize,
    /// Target false-alarm rate the detection threshold is calibrated to; in (0, 0.5].
    pub target_far: f64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            order: DEFAULT_ORDER,
            target_far: DEFAULT_TARGET_FAR,
        }
    }
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        // Read as bytes: `read_to_string`'s error does not say where the file stops being UTF-8.
        let text = String::from_utf8(bytes).map_err(|e| {
            let offset = e.utf8_error().valid_up_to();
            let before = &e.as_bytes()[..offset];
            ConfigError::NotUtf8 {
                path: path.to_owned(),
                offset,
                line: before.iter().filter(|&&b| b == b'\n').count() + 1,
            }
        })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { source, .. } => ConfigError::Parse {
                path: path.to_owned(),
                source,
            },
            other => ConfigError::Value {
                path: path.to_owned(),
                source: Box::new(other),
            },
        })
    }

    /// Parses and validates config text.
    pub fn parse(text: &str) -> Result<Self> {
        let config: Self = toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: PathBuf::new(),
            source: Box::new(source),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every value's range.
    pub fn validate(&self) -> Result<()> {
        absolute_path("db_path", &self.db_path)?;
        absolute_path("alerts_path", &self.alerts_path)?;
        self.model.validate()?;
        self.filter.validate()?;
        if let Some(url) = &self.alerts_webhook {
            HttpUrl::parse(url).map_err(|reason| ConfigError::Invalid {
                field: "alerts_webhook",
                reason,
            })?;
        }
        self.promotion
            .as_ref()
            .map_or(Ok(()), PromotionPolicy::validate)
    }
}

/// Checks that `path`, the value of `field`, is absolute. The shim runs in the container's
/// bundle directory, which is deleted with the container, so a relative path would put the
/// store or the alert log there and lose it; SQLite also gives an empty name, `:memory:` and
/// `file:` URIs meanings of their own (a private temporary database, one in memory), none of
/// which keeps anything. None of those is absolute.
fn absolute_path(field: &'static str, path: &Path) -> Result<()> {
    if path.as_os_str().is_empty() {
        return Err(ConfigError::Invalid {
            field,
            reason: "\"\" is empty; give an absolute path".to_owned(),
        });
    }
    if !path.is_absolute() {
        return Err(ConfigError::Invalid {
            field,
            reason: format!(
                "{:?} is not an absolute path (the shim's working directory is the container's \
                 bundle, deleted with it)",
                path.as_os_str()
            ),
        });
    }
    Ok(())
}

impl ModelConfig {
    /// Checks every value's range.
    pub fn validate(&self) -> Result<()> {
        if !(1..=MAX_ORDER).contains(&self.order) {
            return Err(ConfigError::Invalid {
                field: "model.order",
                reason: format!("{} is not between 1 and {MAX_ORDER}", self.order),
            });
        }
        if !(self.target_far > 0.0 && self.target_far <= 0.5) {
            return Err(ConfigError::Invalid {
                field: "model.target_far",
                reason: format!("{} is not in (0, 0.5]", self.target_far),
            });
        }
        Ok(())
    }
}

/// `time` as RFC 3339 UTC with nanoseconds, as Falco writes it: the time of alerts, and of
/// what the CLI reports.
pub fn rfc3339(time: SystemTime) -> String {
    let d = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
    }

    #[test]
    fn names_round_trip() {
        for m in [Mode::Off, Mode::Learn, Mode::Monitor, Mode::Enforce] {
            assert_eq!(m.as_str().parse::<Mode>().unwrap(), m);
        }
        for a in [Action::Alert, Action::Deny, Action::Pause, Action::Kill] {
            assert_eq!(a.to_string().parse::<Action>().unwrap(), a);
        }
    }

    #[test]
    fn unknown_mode_names_the_choices() {
        let err = "enforcing".parse::<Mode>().unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown mode \"enforcing\"; expected one of: off, learn, monitor, enforce"
        );
    }

    #[test]
    fn unknown_field_is_an_error() {
        let err = Config::parse("mod = \"learn\"").unwrap_err();
        assert!(matches!(err, ConfigError::Parse { .. }), "{err:?}");
    }

    #[test]
    fn a_file_that_cannot_be_used_is_named_with_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let chain = |err: &ConfigError| {
            let mut text = err.to_string();
            let mut cause = std::error::Error::source(err);
            while let Some(c) = cause {
                text.push_str(&format!(": {c}"));
                cause = c.source();
            }
            text
        };
        let err = Config::load(&path).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
        assert!(
            chain(&err).contains(&path.display().to_string()),
            "{}",
            chain(&err)
        );
        let cases = [
            ("mdoe = \"learn\"", "mdoe"),
            ("mode = learn", "mode = learn"),
            ("[model]\ntarget_far = 0.9", "model.target_far"),
            ("mode = \"lurn\"", "unknown variant `lurn`"),
            ("action = \"kil\"", "unknown variant `kil`"),
        ];
        for (text, named) in cases {
            std::fs::write(&path, text).unwrap();
            let err = Config::load(&path).unwrap_err();
            let chain = chain(&err);
            assert!(
                chain.contains(&path.display().to_string()) && chain.contains(named),
                "{text:?}: {chain}"
            );
        }
    }

    /// A file that is not UTF-8 says where its first invalid byte is (until 2026-12-07 only
    /// "stream did not contain valid UTF-8").
    #[test]
    fn a_file_that_is_not_utf8_names_the_first_bad_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, b"mode = \"learn\"\n# caf\xe9\n").unwrap();
        let err = Config::load(&path).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::NotUtf8 {
                    offset: 20,
                    line: 2,
                    ..
                }
            ),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains(&path.display().to_string())
                && text.contains("offset 20")
                && text.contains("line 2"),
            "{text}"
        );
    }

    #[test]
    fn out_of_range_values_are_errors() {
        let err = Config::parse("[model]\norder = 0").unwrap_err();
        assert!(err.to_string().contains("model.order"), "{err}");
        let err = Config::parse("[model]\ntarget_far = 0.9").unwrap_err();
        assert!(err.to_string().contains("model.target_far"), "{err}");
        let err = Config::parse("[filter]\nhot_coverage = 1.5").unwrap_err();
        assert!(err.to_string().contains("filter.hot_coverage"), "{err}");
        let err = Config::parse("[filter]\nunseen = \"deny\"").unwrap_err();
        let chain = format!("{err} {:?}", std::error::Error::source(&err));
        assert!(chain.contains("notify"), "{chain}");
    }

    /// An empty or relative store or alert log would be lost with the shim (SQLite keeps an
    /// empty name in a temporary file and `:memory:` in memory; a relative path resolves
    /// against the shim's working directory, the container's bundle).
    #[test]
    fn store_and_alert_paths_must_be_absolute() {
        for (text, field, value) in [
            ("db_path = \"\"", "db_path", "\"\""),
            ("db_path = \":memory:\"", "db_path", "\":memory:\""),
            ("db_path = \"profiles.db\"", "db_path", "\"profiles.db\""),
            (
                "db_path = \"file:/tmp/p.db\"",
                "db_path",
                "\"file:/tmp/p.db\"",
            ),
            ("alerts_path = \"\"", "alerts_path", "\"\""),
            (
                "alerts_path = \"log/a.jsonl\"",
                "alerts_path",
                "\"log/a.jsonl\"",
            ),
        ] {
            let err = Config::parse(text).unwrap_err();
            assert!(
                matches!(err, ConfigError::Invalid { .. }),
                "{text}: {err:?}"
            );
            let err = err.to_string();
            assert!(err.contains(field) && err.contains(value), "{text}: {err}");
        }
        let c = Config::parse("db_path = \"/tmp/p.db\"\nalerts_path = \"/tmp/a.jsonl\"").unwrap();
        assert_eq!(c.db_path, Path::new("/tmp/p.db"));
        Config::default().validate().unwrap();
    }

    #[test]
    fn webhook_urls() {
        let u = HttpUrl::parse("http://falcosidekick:2801/").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("falcosidekick", 2801, "/")
        );
        let u = HttpUrl::parse("http://10.0.0.1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("10.0.0.1", 80, "/")
        );
        let u = HttpUrl::parse("http://[::1]:9/a/b?c=d").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("::1", 9, "/a/b?c=d")
        );
        for bad in [
            "https://x/",
            "ftp://x",
            "http://",
            "http://:80/",
            "http://x:0/",
            "http://x:y/",
            "http://u@x/",
            "http://[::1/",
            // A ':' in an unbracketed host: until 2026-12-07 this one was host "host:80".
            "http://host:80:90/",
            "http://::1/",
            // Something between the bracketed host and its port: until 2026-12-07 ignored.
            "http://[::1]junk/",
            "http://[::1]80/",
        ] {
            assert!(HttpUrl::parse(bad).is_err(), "{bad}");
        }
        let err = HttpUrl::parse("http://host:80:90/").unwrap_err();
        assert!(err.contains("\"host:80\"") && err.contains("["), "{err}");
        let c = Config::parse("alerts_webhook = \"http://127.0.0.1:2801/\"").unwrap();
        assert_eq!(c.alerts_webhook.as_deref(), Some("http://127.0.0.1:2801/"));
        let err = Config::parse("alerts_webhook = \"https://x/\"").unwrap_err();
        assert!(
            err.to_string().contains("alerts_webhook")
                && err.to_string().contains("https is not supported"),
            "names the field and why: {err}"
        );
    }

    #[test]
    fn filter_section_parses() {
        let c = Config::parse(
            "[filter]\nhot_coverage = 0.5\nunseen = \"kill\"\nalways_traced = [\"clone\"]\n",
        )
        .unwrap();
        assert_eq!(c.filter.always_traced, ["clone"]);
        assert_eq!(c.filter.hot_coverage, 0.5);
        assert_eq!(c.filter.unseen, Unseen::Kill);
        assert_eq!(Config::default().filter.unseen, Unseen::Notify);
        assert_eq!(Config::default().filter.unnamed, Unnamed::Enosys);
        let allow = Config::parse("[filter]\nunnamed = \"allow\"\n").unwrap();
        assert_eq!(allow.filter.unnamed, Unnamed::Allow);
        let err = Config::parse("[filter]\nunnamed = \"deny\"").unwrap_err();
        let chain = format!("{err} {:?}", std::error::Error::source(&err));
        assert!(
            chain.contains("enosys") && chain.contains("allow"),
            "{chain}"
        );
    }

    #[test]
    fn full_file_parses() {
        let c = Config::parse(
            "mode = \"enforce\"\naction = \"kill\"\nfail_mode = \"open\"\n\
             db_path = \"/tmp/p.db\"\n[model]\norder = 4\ntarget_far = 0.01\n",
        )
        .unwrap();
        assert_eq!(c.mode, Mode::Enforce);
        assert_eq!(c.action, Action::Kill);
        assert_eq!(c.fail_mode, FailMode::Open);
        assert_eq!(c.model.order, 4);
        assert_eq!(c.promotion, None);
    }

    #[test]
    fn promotion_section_enables_the_policy() {
        let c = Config::parse("[promotion]\nmin_containers = 5\nto = \"enforce\"\n").unwrap();
        let p = c.promotion.unwrap();
        assert_eq!((p.min_containers, p.to), (5, Mode::Enforce));
        assert_eq!(p.min_events, PromotionPolicy::default().min_events);
        let err = Config::parse("[promotion]\nto = \"learn\"\n").unwrap_err();
        assert!(err.to_string().contains("promotion.to"), "{err}");
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        // 2000-02-29 is a leap day; 2100-03-01 follows a non-leap February.
        assert_eq!(
            rfc3339(UNIX_EPOCH + std::time::Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000000000Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + std::time::Duration::from_secs(4_107_542_400)),
            "2100-03-01T00:00:00.000000000Z"
        );
    }
}
