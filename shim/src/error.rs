//! The shim's one error type, and its one mapping to ttrpc at the service boundary.

use std::path::PathBuf;

use chaperone_config::{ConfigError, Mode};
use chaperone_profiler::store::StoreError;
use chaperone_profiler::supervisor::filter::FilterError;
use chaperone_profiler::supervisor::listener::ListenerError;
use containerd_shim::protos::ttrpc;

/// Everything the shim can fail at.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    /// No container (task) with this id in this shim.
    #[error("container {id} not found")]
    NotFound {
        /// The container id.
        id: String,
    },
    /// No exec process with this id in the container.
    #[error("process {exec_id} not found in container {id}")]
    ProcessNotFound {
        /// The container id.
        id: String,
        /// The exec id.
        exec_id: String,
    },
    /// The container's cgroup could not be found when it was created, so it has no metrics.
    #[error("container {id} has no cgroup the shim could find")]
    NoCgroup {
        /// The container id.
        id: String,
    },
    /// The id is already taken.
    #[error("{what} {id} already exists")]
    AlreadyExists {
        /// Container or exec process.
        what: &'static str,
        /// The id.
        id: String,
    },
    /// The process is not in a state that allows the request.
    #[error("cannot {op} process {id}: it is {state}")]
    FailedPrecondition {
        /// What was asked.
        op: &'static str,
        /// The container or exec id.
        id: String,
        /// Its state.
        state: &'static str,
    },
    /// The process has already exited (for kill: containerd treats this as not found).
    #[error("process {id} already finished")]
    ProcessFinished {
        /// The container or exec id.
        id: String,
    },
    /// The caller of a Create went before it ended; what it had set up is undone.
    #[error(
        "the create of container {id} was abandoned: its deadline passed or its connection closed"
    )]
    Abandoned {
        /// The container id.
        id: String,
    },
    /// A request field is malformed.
    #[error("invalid request: {reason}")]
    InvalidRequest {
        /// What is wrong.
        reason: &'static str,
    },
    /// A process's stdio names a URI that cannot be used.
    #[error("invalid stdio URI {uri:?}: {reason}")]
    StdioUri {
        /// The URI as the request gave it.
        uri: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A request chaperone does not support yet.
    #[error("{what} is not supported by chaperone yet")]
    Unimplemented {
        /// The request.
        what: &'static str,
    },
    /// A `chaperone.io/*` annotation has a bad value.
    #[error("invalid annotation {key}={value:?}")]
    Annotation {
        /// The annotation key.
        key: &'static str,
        /// Its value.
        value: String,
        /// Why it is refused.
        source: ConfigError,
    },
    /// The node's config file is missing (when named explicitly) or invalid.
    #[error("chaperone's configuration")]
    Config {
        /// Why.
        source: ConfigError,
    },
    /// The profile store cannot be used (and the fail mode is `closed`).
    #[error("the profile store is unusable and fail_mode is closed")]
    Store {
        /// Why.
        source: StoreError,
    },
    /// containerd could not say which image the container runs, so its profile is unknown
    /// (and the fail mode is `closed`).
    #[error(
        "cannot look up the container's image in containerd, so its profile is unknown, and fail_mode is closed"
    )]
    ImageLookup {
        /// Why.
        source: crate::image::ImageError,
    },
    /// Monitor or enforce mode for a profile that cannot detect yet.
    #[error("chaperone mode {mode} needs a learned profile, but profile {key:?} {reason}")]
    NotLearned {
        /// The mode asked for.
        mode: Mode,
        /// The profile.
        key: String,
        /// What is missing.
        reason: &'static str,
    },
    /// The profile's model cannot be turned into a scorer.
    #[error("profile {key:?} cannot be used for detection")]
    Model {
        /// The profile.
        key: String,
        /// Why.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The learn filter cannot be built from the container's own seccomp profile.
    #[error("cannot build the learn-mode seccomp filter for container {id}")]
    Filter {
        /// The container id.
        id: String,
        /// Why.
        source: FilterError,
    },
    /// A request's JSON field (an exec process spec, update resources) is malformed.
    #[error("invalid {what} in the request")]
    RequestJson {
        /// The field.
        what: &'static str,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// The bundle's `config.json` is not what the OCI runtime spec describes.
    #[error("invalid bundle config {path:?}")]
    Spec {
        /// The file.
        path: PathBuf,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// The seccomp listener socket could not be set up.
    #[error("cannot listen for seccomp notify fds")]
    Listener {
        /// Why.
        source: ListenerError,
    },
    /// A runc command failed.
    #[error("runc {op} failed for {id}: {detail}")]
    Runc {
        /// The runc subcommand.
        op: &'static str,
        /// The container id.
        id: String,
        /// runc's last error message from its log, or its output.
        detail: String,
    },
    /// A file operation failed.
    #[error("cannot {op} {path:?}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A logging binary (a `binary://` stdio URI) could not serve its process.
    #[error("the logging binary {path:?} {reason}")]
    Logger {
        /// The binary.
        path: PathBuf,
        /// What went wrong.
        reason: &'static str,
    },
    /// A system call failed.
    #[error("{op} failed")]
    Sys {
        /// What was being done.
        op: &'static str,
        /// The errno.
        source: nix::Error,
    },
    /// A protobuf message could not be decoded or encoded.
    #[error("cannot decode or encode {what}")]
    Protobuf {
        /// Which message.
        what: &'static str,
        /// The error.
        source: containerd_shim::protos::protobuf::Error,
    },
    /// A helper of the containerd-shim library failed.
    #[error("{op} failed")]
    Shim {
        /// What was being done.
        op: &'static str,
        /// The library's error.
        source: containerd_shim::Error,
    },
    /// The ttrpc server failed.
    #[error("ttrpc server: {op} failed")]
    Server {
        /// What was being done.
        op: &'static str,
        /// The error.
        source: ttrpc::Error,
    },
}

/// `Result` with the shim's error.
pub type Result<T> = std::result::Result<T, ShimError>;

/// An error's message with every source appended (`a: b: c`).
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl ShimError {
    /// The message with every source appended (`a: b: c`), as containerd shows it.
    pub fn chain(&self) -> String {
        chain(self)
    }

    pub(crate) fn code(&self) -> ttrpc::Code {
        match self {
            Self::NotFound { .. }
            | Self::ProcessNotFound { .. }
            | Self::ProcessFinished { .. }
            | Self::NoCgroup { .. } => ttrpc::Code::NOT_FOUND,
            Self::AlreadyExists { .. } => ttrpc::Code::ALREADY_EXISTS,
            Self::FailedPrecondition { .. } => ttrpc::Code::FAILED_PRECONDITION,
            Self::InvalidRequest { .. }
            | Self::Annotation { .. }
            | Self::Config { .. }
            | Self::NotLearned { .. }
            | Self::Filter { .. }
            | Self::Spec { .. }
            | Self::StdioUri { .. }
            | Self::RequestJson { .. } => ttrpc::Code::INVALID_ARGUMENT,
            Self::Unimplemented { .. } => ttrpc::Code::UNIMPLEMENTED,
            Self::Abandoned { .. } => ttrpc::Code::CANCELLED,
            Self::Listener { .. }
            | Self::Store { .. }
            | Self::ImageLookup { .. }
            | Self::Model { .. }
            | Self::Runc { .. }
            | Self::Io { .. }
            | Self::Logger { .. }
            | Self::Sys { .. }
            | Self::Protobuf { .. }
            | Self::Shim { .. }
            | Self::Server { .. } => ttrpc::Code::UNKNOWN,
        }
    }
}

impl From<ShimError> for ttrpc::Error {
    fn from(e: ShimError) -> Self {
        ttrpc::Error::RpcStatus(ttrpc::get_status(e.code(), e.chain()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ttrpc_status_carries_the_code_and_the_whole_chain() {
        let e = ShimError::Io {
            op: "read",
            path: PathBuf::from("/x"),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        let ttrpc::Error::RpcStatus(status) = ttrpc::Error::from(e) else {
            panic!("not a status");
        };
        assert_eq!(status.code(), ttrpc::Code::UNKNOWN);
        assert!(
            status.message().starts_with("cannot read \"/x\": "),
            "{status:?}"
        );
        let missing = ShimError::NotFound { id: "c1".into() };
        let ttrpc::Error::RpcStatus(status) = ttrpc::Error::from(missing) else {
            panic!("not a status");
        };
        assert_eq!(status.code(), ttrpc::Code::NOT_FOUND);
    }
}
