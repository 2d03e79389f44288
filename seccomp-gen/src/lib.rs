#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod allowlist;
pub mod diff;
pub mod docker;
pub mod equivalents;
pub mod merge;
pub mod oci;
pub mod risk;
pub mod runtime;
pub mod spo;
pub mod tiered;
mod yaml;

pub use allowlist::Allowlist;
pub use chaperone_profiler::syscalls::Sym;
pub use oci::{export_oci, DefaultAction, ExportOptions};
pub use tiered::{runtime_filter, Tiers};

/// Errors of the seccomp generator.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    /// A profile (base or exported) is not valid JSON of the expected shape.
    #[error("cannot parse {what} as JSON")]
    Json {
        /// What was being parsed ("base profile", "docker profile", ...).
        what: &'static str,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// A base profile uses an action an exported profile cannot carry.
    #[error("the base profile uses {action} for {name:?}, which an exported profile cannot keep")]
    BaseAction {
        /// The action (`SCMP_ACT_NOTIFY` needs a listener the exported profile does not have).
        action: String,
        /// The first syscall name of the offending rule, or "defaultAction".
        name: String,
    },
    /// A learned profile holds syscalls this build does not know.
    #[error(
        "the profile holds syscalls this chaperone does not know (symbols {}): a newer chaperone \
         learned it; export it with that one",
        join_symbols(symbols)
    )]
    UnknownSymbols {
        /// Their symbols (places in the newer build's alphabet), sorted.
        symbols: Vec<Sym>,
    },
    /// No architecture was asked for.
    #[error("no architecture to export for")]
    NoArchitecture,
    /// A default-action name is not one of errno, log, kill.
    #[error("unknown default action {input:?}: expected errno, log or kill")]
    DefaultAction {
        /// What was given.
        input: String,
    },
    /// An SPO object name is not a valid Kubernetes object name.
    #[error("{name:?} is not a valid Kubernetes object name (lowercase RFC 1123 subdomain)")]
    ObjectName {
        /// The rejected name.
        name: String,
    },
}

fn join_symbols(symbols: &[Sym]) -> String {
    let text: Vec<String> = symbols.iter().map(ToString::to_string).collect();
    text.join(", ")
}

/// `Result` with the generator's error.
pub type Result<T> = std::result::Result<T, GenError>;
