//! The image a container was created from, as containerd's own stores know it: the container
//! record's image name, and that image's digest (the target of the name in the image store,
//! what `ctr images ls` shows as DIGEST and Kubernetes as the repo digest).
//!
//! Asked on Create, over containerd's gRPC socket (the shim's `-address`), only when the OCI
//! config names neither a profile nor a digest: a `ctr run` container, or a CRI container
//! whose image CRI names by tag only. One connection per shim, made when its task service
//! starts (else by the first lookup); each lookup is bounded by [`LOOKUP_TIMEOUT`]. A failed
//! lookup follows the fail mode (`crate::plan::image_lookup_failed`): `closed` fails the
//! container, `open` keys its profile by the name CRI gives, or the container's command.

use std::path::{Path, PathBuf};
use std::time::Duration;

use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::{GetContainerRequest, GetImageRequest};
use containerd_client::tonic::metadata::MetadataValue;
use containerd_client::tonic::transport::Channel;
use containerd_client::tonic::Request;
use tokio::sync::OnceCell;

/// How long one lookup (both requests, and connecting the first time) may take.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);
/// Debug builds only, for tests: the lookup of a container whose id contains this variable's
/// value fails as if containerd had not answered in time.
pub const LOOKUP_FAULT_ENV: &str = "CHAPERONE_TEST_FAIL_IMAGE_LOOKUP";

/// The header containerd reads a request's namespace from.
const NAMESPACE_HEADER: &str = "containerd-namespace";

/// A container's image: its name, and the digest that name resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerImage {
    /// The image name of the container record (`docker.io/library/nginx:1.27`).
    pub name: String,
    /// The image's digest (`sha256:<hex>`), when the image store still has the name.
    pub digest: Option<String>,
}

/// Why a lookup failed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// containerd's socket could not be reached.
    #[error("cannot connect to containerd at {path:?}")]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: containerd_client::tonic::transport::Error,
    },
    /// containerd answered with an error.
    #[error("containerd refused {what}: {message}", message = .source.message())]
    Rpc {
        /// The request.
        what: &'static str,
        /// containerd's answer.
        source: containerd_client::tonic::Status,
    },
    /// The namespace cannot be sent as a header.
    #[error("namespace {namespace:?} is not a valid header value")]
    Namespace {
        /// The namespace.
        namespace: String,
    },
    /// The lookup took longer than [`LOOKUP_TIMEOUT`].
    #[error("no answer from containerd within {LOOKUP_TIMEOUT:?}")]
    Timeout,
}

/// containerd's image and container stores, as one shim asks them.
#[derive(Debug)]
pub struct Images {
    socket: PathBuf,
    namespace: String,
    channel: OnceCell<Channel>,
}

impl Images {
    /// The stores behind containerd's gRPC `address` (a path, or `unix://` and a path), in
    /// `namespace`.
    pub fn new(address: &str, namespace: &str) -> Self {
        Self {
            socket: PathBuf::from(address.strip_prefix("unix://").unwrap_or(address)),
            namespace: namespace.to_owned(),
            channel: OnceCell::new(),
        }
    }

    /// containerd's socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The image of container `id`: `None` when its record names no image (a container made
    /// from a bare rootfs).
    pub async fn of_container(&self, id: &str) -> Result<Option<ContainerImage>, ImageError> {
        if crate::learn::fault_injected(LOOKUP_FAULT_ENV, id) {
            return Err(ImageError::Timeout);
        }
        tokio::time::timeout(LOOKUP_TIMEOUT, self.lookup(id))
            .await
            .map_err(|_| ImageError::Timeout)?
    }

    /// Connects now, so that the first lookup does not wait for it (a pod's shim starts with
    /// its sandbox, which needs none). A failure here is retried by the next lookup.
    pub async fn connect(&self) -> Result<(), ImageError> {
        tokio::time::timeout(LOOKUP_TIMEOUT, self.channel())
            .await
            .map_err(|_| ImageError::Timeout)?
            .map(drop)
    }

    async fn channel(&self) -> Result<Channel, ImageError> {
        self.channel
            .get_or_try_init(|| async {
                containerd_client::connect(&self.socket)
                    .await
                    .map_err(|source| ImageError::Connect {
                        path: self.socket.clone(),
                        source,
                    })
            })
            .await
            .cloned()
    }

    async fn lookup(&self, id: &str) -> Result<Option<ContainerImage>, ImageError> {
        let channel = self.channel().await?;
        let container = ContainersClient::new(channel.clone())
            .get(self.request(GetContainerRequest { id: id.to_owned() })?)
            .await
            .map_err(|source| ImageError::Rpc {
                what: "the container's record",
                source,
            })?
            .into_inner()
            .container;
        let Some(name) = container.map(|c| c.image).filter(|n| !n.is_empty()) else {
            return Ok(None);
        };
        let image = ImagesClient::new(channel)
            .get(self.request(GetImageRequest { name: name.clone() })?)
            .await;
        let digest = match image {
            Ok(reply) => reply
                .into_inner()
                .image
                .and_then(|i| i.target)
                .map(|t| t.digest)
                .filter(|d| !d.is_empty()),
            // The image was removed (or renamed) since the container was made: the name stays.
            Err(status) if status.code() == containerd_client::tonic::Code::NotFound => None,
            Err(source) => {
                return Err(ImageError::Rpc {
                    what: "the image's record",
                    source,
                })
            }
        };
        Ok(Some(ContainerImage { name, digest }))
    }

    fn request<T>(&self, message: T) -> Result<Request<T>, ImageError> {
        let namespace: MetadataValue<_> =
            self.namespace.parse().map_err(|_| ImageError::Namespace {
                namespace: self.namespace.clone(),
            })?;
        let mut request = Request::new(message);
        request.metadata_mut().insert(NAMESPACE_HEADER, namespace);
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_may_carry_a_scheme() {
        let images = Images::new("unix:///run/containerd/containerd.sock", "k8s.io");
        assert_eq!(
            images.socket(),
            Path::new("/run/containerd/containerd.sock")
        );
        let images = Images::new("/run/c.sock", "default");
        assert_eq!(images.socket(), Path::new("/run/c.sock"));
    }

    #[tokio::test]
    async fn a_missing_socket_is_a_clear_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let images = Images::new(dir.path().join("nope.sock").to_str().unwrap(), "default");
        let err = images.of_container("c1").await.unwrap_err();
        assert!(matches!(err, ImageError::Connect { .. }), "{err:?}");
        assert!(err.to_string().contains("nope.sock"), "{err}");
    }

    /// A socket that takes the connection and never answers (a containerd that hangs): the
    /// lookup gives up after [`LOOKUP_TIMEOUT`].
    #[tokio::test]
    async fn a_containerd_that_never_answers_is_a_timeout_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("silent.sock");
        // Connections wait in the backlog; nothing accepts or answers them.
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let images = Images::new(path.to_str().unwrap(), "default");
        let started = std::time::Instant::now();
        let err = images.of_container("c1").await.unwrap_err();
        let took = started.elapsed();
        assert!(matches!(err, ImageError::Timeout), "{err:?}");
        // The lower bound is the point; the upper one only tells a hang apart (no tight
        // bound: the machines are noisy).
        assert!(
            took >= LOOKUP_TIMEOUT.mul_f32(0.9) && took < Duration::from_secs(60),
            "{took:?}"
        );
        drop(listener);
    }

    #[test]
    fn a_namespace_that_is_no_header_is_refused() {
        let images = Images::new("/run/c.sock", "bad\nnamespace");
        let err = images.request(()).unwrap_err();
        assert!(matches!(err, ImageError::Namespace { .. }), "{err:?}");
        let ok = Images::new("/run/c.sock", "k8s.io").request(()).unwrap();
        assert_eq!(ok.metadata().get(NAMESPACE_HEADER).unwrap(), "k8s.io");
    }
}
