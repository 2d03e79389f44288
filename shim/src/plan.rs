//! What chaperone does with one container, resolved on Create: the profile it belongs to, its
//! mode (annotation > per-image setting in the store > config default), the action on a
//! deviation, the model it learns against or is scored by, and in monitor and enforce mode the
//! tiers of its seccomp filter.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use chaperone_config::{Action, Config, ConfigError, FailMode, Mode, Unseen, DEFAULT_CONFIG_PATH};
use chaperone_profiler::model::{NgramCounts, NgramScorer, Smoothing};
use chaperone_profiler::store::{Store, StoreError, Workload};
use chaperone_profiler::supervisor::Detect;
use chaperone_profiler::syscalls::Sym;
use chaperone_profiler::tiers::{hot_set, named_syscalls, train_projected};
use chaperone_seccomp_gen::Tiers;
use serde_json::Value;
use tracing::{info, warn};

use crate::bundle::annotation;
use crate::error::{chain, Result, ShimError};
use crate::image::{ContainerImage, ImageError};

/// The annotation choosing the mode of a container (`off`, `learn`, `monitor`, `enforce`).
pub const MODE_ANNOTATION: &str = "chaperone.io/mode";
/// The annotation choosing the action on a deviation (`alert`, `deny`, `pause`, `kill`).
pub const ACTION_ANNOTATION: &str = "chaperone.io/action";
/// The annotation naming the profile a container learns into and is scored by.
pub const PROFILE_ANNOTATION: &str = "chaperone.io/profile";
/// The image reference CRI puts on every container.
pub const CRI_IMAGE_ANNOTATION: &str = "io.kubernetes.cri.image-name";
/// CRI's kind of container: `sandbox` (the pod's pause container) or `container`.
pub const CRI_CONTAINER_TYPE_ANNOTATION: &str = "io.kubernetes.cri.container-type";
/// The pod's namespace, as CRI gives it.
pub const CRI_POD_NAMESPACE_ANNOTATION: &str = "io.kubernetes.cri.sandbox-namespace";
/// The pod's name, as CRI gives it.
pub const CRI_POD_NAME_ANNOTATION: &str = "io.kubernetes.cri.sandbox-name";
/// The container's name in its pod, as CRI gives it.
pub const CRI_CONTAINER_NAME_ANNOTATION: &str = "io.kubernetes.cri.container-name";
/// Names the config file when the runtime's options do not (default [`DEFAULT_CONFIG_PATH`]).
pub const CONFIG_ENV: &str = "CHAPERONE_CONFIG";

/// The node's configuration, read on every Create so edits apply to the next container: the
/// file `named` by the runtime's options (CRI's `ConfigPath`), else the one [`CONFIG_ENV`]
/// names, else [`DEFAULT_CONFIG_PATH`]. A missing default file means the defaults; a missing
/// named file is an error.
pub fn load_config(named: Option<&Path>) -> Result<Config> {
    let named = named
        .map(Path::to_owned)
        .or_else(|| std::env::var_os(CONFIG_ENV).map(PathBuf::from));
    match named {
        Some(path) => Config::load(&path),
        None if !Path::new(DEFAULT_CONFIG_PATH).exists() => Ok(Config::default()),
        None => Config::load(Path::new(DEFAULT_CONFIG_PATH)),
    }
    .map_err(|source| ShimError::Config { source })
}

/// The model a traced container runs with.
#[derive(Debug, Clone)]
pub enum Model {
    /// Nothing to score against (mode off, or the first container of a profile).
    None,
    /// Learn mode: the profile as it was, to score held-out data for calibration.
    Reference(Arc<NgramScorer>),
    /// Monitor and enforce: the scorer with the calibrated threshold.
    Detect(Detect),
}

/// Everything the shim and the container's supervisor need to know about one container.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The container id.
    pub id: String,
    /// The profile key: image digest or name.
    pub key: String,
    /// The image name CRI gives (`io.kubernetes.cri.image-name`), else containerd's, for
    /// alerts.
    pub image: Option<String>,
    /// The pod and container CRI names, for alerts and the profile's list of workloads.
    pub workload: Option<Workload>,
    /// The resolved mode.
    pub mode: Mode,
    /// The action on a deviation in enforce mode (monitor only alerts).
    pub action: Action,
    /// The model.
    pub model: Model,
    /// Monitor and enforce: the tiers of the seccomp filter, the model being trained on the
    /// syscalls they trace. `None`: every syscall is traced (learn mode, and profiles without
    /// recorded runs to train a model of the traced syscalls on).
    pub tiers: Option<Tiers>,
    /// The node's configuration when the container was created.
    pub config: Arc<Config>,
}

impl Plan {
    /// A plan without a profile behind it (mode off, and tests).
    pub fn fixed(id: &str, key: &str, mode: Mode, config: Arc<Config>) -> Self {
        Self {
            id: id.to_owned(),
            key: key.to_owned(),
            image: None,
            workload: None,
            mode,
            action: config.action,
            model: Model::None,
            tiers: None,
            config,
        }
    }

    /// What the tiered filter does with a syscall the profile never saw: monitor mode notifies
    /// it (to alert); enforce mode applies `[filter] unseen`.
    pub fn unseen(&self) -> Unseen {
        match self.mode {
            Mode::Enforce => self.config.filter.unseen,
            _ => Unseen::Notify,
        }
    }

    /// Resolves the plan of container `id` from its OCI config's annotations, the store and
    /// the node's config. A pod's sandbox (pause) container is never traced, whatever its
    /// annotations (CRI passes the pod's to it too). A bad annotation is an error. An
    /// unusable store is an error when the fail mode is `closed`; with `open` the container
    /// runs untraced, with a warning.
    pub fn resolve(
        spec: &Value,
        id: &str,
        config: Arc<Config>,
        image: Option<&ContainerImage>,
    ) -> Result<Self> {
        if annotation(spec, CRI_CONTAINER_TYPE_ANNOTATION) == Some("sandbox") {
            info!(container = %id, "the pod's sandbox container is not traced");
            return Ok(Self::fixed(id, "sandbox", Mode::Off, config));
        }
        let annotated = parse_annotation::<Mode>(spec, MODE_ANNOTATION)?;
        let action = parse_annotation::<Action>(spec, ACTION_ANNOTATION)?.unwrap_or(config.action);
        let key = profile_key(spec, image)?;
        let mut plan = Self {
            action,
            image: image_name(spec, image),
            workload: workload_of(spec),
            ..Self::fixed(id, &key, Mode::Off, Arc::clone(&config))
        };
        if annotated == Some(Mode::Off) {
            return Ok(plan);
        }
        // Not checked page by page here (that reads the whole file on every container's
        // start); the learning flush, which writes, checks it whole.
        let store = match Store::open_to_read(&config.db_path) {
            Ok(store) => store,
            Err(source) => return plan.store_failed(source),
        };
        // The mode, the model, its runs and its threshold of one state of the store: a
        // learning flush committing between them would pair one with another's.
        let _one_state = match store.snapshot() {
            Ok(s) => s,
            Err(source) => return plan.store_failed(source),
        };
        let summary = match store.summary(&key) {
            Ok(s) => s,
            Err(source) => return plan.store_failed(source),
        };
        plan.mode = annotated
            .or(summary.as_ref().and_then(|s| s.mode))
            .unwrap_or(config.mode);
        match model_for(&store, &key, plan.mode, &config) {
            Ok((model, tiers)) => (plan.model, plan.tiers) = (model, tiers),
            // A stored model that cannot be read is the store failing: the fail mode decides.
            Err(ShimError::Store { source }) => return plan.store_failed(source),
            Err(e) => return Err(e),
        }
        Ok(plan)
    }

    fn store_failed(mut self, source: StoreError) -> Result<Self> {
        match self.config.fail_mode {
            FailMode::Closed => Err(ShimError::Store { source }),
            FailMode::Open => {
                warn!(container = %self.id, error = chain(&source), "profile store unusable; fail_mode is open, so the container runs untraced");
                self.mode = Mode::Off;
                Ok(self)
            }
        }
    }

    /// Where alerts go.
    pub fn alerts_path(&self) -> &PathBuf {
        &self.config.alerts_path
    }
}

/// containerd could not say which image container `id` runs (its profile is keyed by the
/// image's digest, ADR 0011), so its profile, and with it its mode, are unknown. With
/// `fail_mode = "closed"` that fails the container, as an unusable store does: keyed by its
/// image's name instead, a container of an enforced image would run in the node's default
/// mode, unenforced (before 2026-12-07 it did, with a warning). With `"open"` it is keyed by
/// the image's name CRI gives, else its command ([`profile_key`]), with a warning.
pub fn image_lookup_failed(id: &str, error: ImageError, config: &Config) -> Result<()> {
    match config.fail_mode {
        FailMode::Closed => Err(ShimError::ImageLookup { source: error }),
        FailMode::Open => {
            warn!(container = %id, error = chain(&error), "cannot look up the container's image in containerd; fail_mode is open, so its profile is keyed by the image's name CRI gives, else its command");
            Ok(())
        }
    }
}

/// The model a container of profile `key` runs with in `mode`, and in monitor and enforce
/// mode the tiers of its filter.
fn model_for(
    store: &Store,
    key: &str,
    mode: Mode,
    config: &Config,
) -> Result<(Model, Option<Tiers>)> {
    // Read only in the modes that use it (the model is the profile's largest column).
    let counts = || -> Result<Option<NgramCounts>> {
        Ok(store
            .model(key)
            .map_err(|source| ShimError::Store { source })?
            .filter(|c| c.events() > 0))
    };
    match mode {
        Mode::Off => Ok((Model::None, None)),
        Mode::Learn => Ok((
            counts()?
                .map(|c| scorer_of(&c).map(Model::Reference))
                .transpose()
                .map_err(model_error(key))?
                .unwrap_or(Model::None),
            None,
        )),
        Mode::Monitor | Mode::Enforce => {
            let not_learned = |reason| ShimError::NotLearned {
                mode,
                key: key.to_owned(),
                reason,
            };
            let counts = counts()?.ok_or_else(|| not_learned("does not exist"))?;
            let far = config.model.target_far;
            let traced = always_traced(&config.filter.always_traced)?;
            let hot = hot_set(&counts, config.filter.hot_coverage, &traced);
            let runs = store
                .runs(key)
                .map_err(|source| ShimError::Store { source })?;
            if let Some(p) = train_projected(&counts, &runs, &hot, far).map_err(model_error(key))? {
                info!(
                    profile = key,
                    hot = hot.len(),
                    traced_events = p.events,
                    threshold = p.threshold,
                    calibration_threads = p.calibration,
                    "tiered filter: the hot syscalls run in the kernel, the model scores the rest"
                );
                let detect = Detect::new(p.scorer, p.threshold).map_err(model_error(key))?;
                return Ok((Model::Detect(detect), Some(Tiers::new(&counts, &hot))));
            }
            info!(
                profile = key,
                "no recorded runs to train the tiered filter's model on; every syscall is traced"
            );
            let scorer = scorer_of(&counts).map_err(model_error(key))?;
            let threshold = store
                .threshold(key, far)
                .map_err(|source| ShimError::Store { source })?
                .ok_or_else(|| {
                    not_learned("has no calibration data (learn at least two containers)")
                })?;
            let detect = Detect::new(scorer, threshold).map_err(model_error(key))?;
            Ok((Model::Detect(detect), None))
        }
    }
}

/// The profile a container belongs to: the `chaperone.io/profile` annotation, else the image's
/// digest (`sha256:<hex>`) when CRI gives one (an image name pinned `@sha256:`), else the digest containerd's image store gives for the container's image (`image`,
/// see [`crate::image`]), else the image name CRI gives, else the image name of containerd's
/// container record, else the container's executable (`exec:<args[0]>`), so that containers
/// of one command share a profile even when nothing names their image. An empty or blank
/// annotation is an error ([`ShimError::Annotation`]).
pub fn profile_key(spec: &Value, image: Option<&ContainerImage>) -> Result<String> {
    if let Some(key) = annotated_key(spec)? {
        return Ok(key);
    }
    if let Some(digest) = cri_digest(spec).or_else(|| {
        image
            .and_then(|i| i.digest.as_deref())
            .and_then(sha256_digest)
    }) {
        return Ok(digest);
    }
    if let Some(name) = image_name(spec, image) {
        return Ok(name);
    }
    let exe = spec
        .pointer("/process/args/0")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    Ok(format!("exec:{exe}"))
}

/// Whether the profile of a container with this OCI config depends on what containerd's
/// stores say of its image: not for a pod's sandbox, a container annotated with its profile
/// (a bad annotation fails its Create: no lookup is worth waiting for), or mode `off`, or one
/// whose image CRI names by digest.
pub fn needs_image(spec: &Value) -> bool {
    annotation(spec, CRI_CONTAINER_TYPE_ANNOTATION) != Some("sandbox")
        && annotation(spec, PROFILE_ANNOTATION).is_none()
        && cri_digest(spec).is_none()
        && !matches!(
            parse_annotation::<Mode>(spec, MODE_ANNOTATION),
            Ok(Some(Mode::Off))
        )
}

/// The profile the annotation names, trimmed. An empty or blank one is refused, as an empty
/// mode or action is: annotations are parsed strictly (docs/threat-model.md), and falling back
/// to the image's profile would learn into, or enforce, a profile nobody asked for.
fn annotated_key(spec: &Value) -> Result<Option<String>> {
    annotation(spec, PROFILE_ANNOTATION)
        .map(|value| match value.trim() {
            "" => Err(ShimError::Annotation {
                key: PROFILE_ANNOTATION,
                value: value.to_owned(),
                source: ConfigError::Invalid {
                    field: PROFILE_ANNOTATION,
                    reason: "a profile name cannot be empty (without the annotation, the \
                             image names the profile)"
                        .to_owned(),
                },
            }),
            key => Ok(key.to_owned()),
        })
        .transpose()
}

/// The digest CRI gives: of an image name pinned `@sha256:`. (Not an image id: containerd's CRI
/// sets no such annotation, and CRI's image id is the digest of the image's config, where
/// profiles are keyed by the repo digest, ADR 0011; until 2026-12-07 an
/// `io.kubernetes.cri.image-id` annotation was taken as the key.)
fn cri_digest(spec: &Value) -> Option<String> {
    annotation(spec, CRI_IMAGE_ANNOTATION)
        .and_then(|name| name.rsplit_once('@'))
        .and_then(|(_, digest)| sha256_digest(digest))
}

/// The image name CRI gives, else the one of containerd's container record.
fn image_name(spec: &Value, image: Option<&ContainerImage>) -> Option<String> {
    annotation(spec, CRI_IMAGE_ANNOTATION)
        .filter(|i| !i.is_empty())
        .map(str::to_owned)
        .or_else(|| image.map(|i| i.name.clone()).filter(|n| !n.is_empty()))
}

/// The pod namespace and name and the container name CRI gives, when it gives all three.
pub fn workload_of(spec: &Value) -> Option<Workload> {
    let named = |key| {
        annotation(spec, key)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    Some(Workload {
        namespace: named(CRI_POD_NAMESPACE_ANNOTATION)?,
        pod: named(CRI_POD_NAME_ANNOTATION)?,
        container: named(CRI_CONTAINER_NAME_ANNOTATION)?,
    })
}

/// `value` when it is a sha256 digest (`sha256:` and 64 hex digits), lowercased.
fn sha256_digest(value: &str) -> Option<String> {
    let hex = value.trim().strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| format!("sha256:{}", hex.to_ascii_lowercase()))
}

fn parse_annotation<T: FromStr<Err = ConfigError>>(
    spec: &Value,
    key: &'static str,
) -> Result<Option<T>> {
    annotation(spec, key)
        .map(|value| {
            T::from_str(value).map_err(|source| ShimError::Annotation {
                key,
                value: value.to_owned(),
                source,
            })
        })
        .transpose()
}

/// The symbols of `[filter] always_traced`; a name no syscall table has is a config error.
fn always_traced(names: &[String]) -> Result<BTreeSet<Sym>> {
    named_syscalls(names).map_err(|n| ShimError::Config {
        source: ConfigError::Invalid {
            field: "filter.always_traced",
            reason: format!("{n:?} is not a syscall name"),
        },
    })
}

/// The error of a model of profile `key` that cannot be used.
fn model_error<E: std::error::Error + Send + Sync + 'static>(
    key: &str,
) -> impl FnOnce(E) -> ShimError + '_ {
    move |e| ShimError::Model {
        key: key.to_owned(),
        source: Box::new(e),
    }
}

fn scorer_of(
    counts: &NgramCounts,
) -> std::result::Result<Arc<NgramScorer>, chaperone_profiler::model::ModelError> {
    NgramScorer::new(counts, Smoothing::default()).map(Arc::new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaperone_profiler::model::NgramCounts;
    use chaperone_profiler::store::Learning;
    use serde_json::json;

    fn config(dir: &Path) -> Arc<Config> {
        Arc::new(Config {
            db_path: dir.join("profiles.db"),
            ..Config::default()
        })
    }

    #[test]
    fn a_pod_sandbox_is_never_traced_whatever_its_annotations() {
        let tmp = tempfile::tempdir().unwrap();
        let spec = json!({"annotations": {
            CRI_CONTAINER_TYPE_ANNOTATION: "sandbox",
            MODE_ANNOTATION: "enforce",
            ACTION_ANNOTATION: "kill",
        }});
        let plan = Plan::resolve(&spec, "pause1", config(tmp.path()), None).unwrap();
        assert_eq!(plan.mode, Mode::Off);
        // Not even the store is opened for it.
        assert!(!tmp.path().join("profiles.db").exists());
    }

    #[test]
    fn the_workload_needs_all_three_cri_names() {
        let named = json!({"annotations": {
            CRI_CONTAINER_TYPE_ANNOTATION: "container",
            CRI_POD_NAMESPACE_ANNOTATION: "shop",
            CRI_POD_NAME_ANNOTATION: "web-1",
            CRI_CONTAINER_NAME_ANNOTATION: "nginx",
        }});
        assert_eq!(
            workload_of(&named),
            Some(Workload {
                namespace: "shop".into(),
                pod: "web-1".into(),
                container: "nginx".into()
            })
        );
        let tmp = tempfile::tempdir().unwrap();
        let plan = Plan::resolve(&named, "c1", config(tmp.path()), None).unwrap();
        assert_eq!(plan.workload.unwrap().pod, "web-1");
        let partial = json!({"annotations": {CRI_POD_NAME_ANNOTATION: "web-1",
                                             CRI_CONTAINER_NAME_ANNOTATION: "nginx"}});
        assert_eq!(workload_of(&partial), None);
    }

    #[test]
    fn the_key_prefers_the_annotation_then_the_image_then_the_command() {
        let both = json!({"annotations": {PROFILE_ANNOTATION: "web", CRI_IMAGE_ANNOTATION: "nginx:1"},
                          "process": {"args": ["/bin/sh"]}});
        assert_eq!(profile_key(&both, None).unwrap(), "web");
        let cri = json!({"annotations": {CRI_IMAGE_ANNOTATION: "nginx:1"}});
        assert_eq!(profile_key(&cri, None).unwrap(), "nginx:1");
        assert_eq!(
            profile_key(&json!({"process": {"args": ["/bin/sh", "-c"]}}), None).unwrap(),
            "exec:/bin/sh"
        );
        assert_eq!(profile_key(&json!({}), None).unwrap(), "exec:unknown");
        let hex = "ab".repeat(32);
        let pinned = json!({"annotations": {CRI_IMAGE_ANNOTATION: format!("docker.io/library/nginx@sha256:{hex}")}});
        assert_eq!(profile_key(&pinned, None).unwrap(), format!("sha256:{hex}"));
        let upper = json!({"annotations": {CRI_IMAGE_ANNOTATION: format!("nginx@sha256:{}", hex.to_uppercase())}});
        assert_eq!(profile_key(&upper, None).unwrap(), format!("sha256:{hex}"));
        let bad = json!({"annotations": {CRI_IMAGE_ANNOTATION: "nginx@sha256:xyz"}});
        assert_eq!(profile_key(&bad, None).unwrap(), "nginx@sha256:xyz");
        // An image id (the image config's digest) is not the key: profiles go by repo digest.
        let image_id = json!({"annotations": {CRI_IMAGE_ANNOTATION: "nginx:1",
                                              "io.kubernetes.cri.image-id": format!("sha256:{hex}")}});
        assert_eq!(profile_key(&image_id, None).unwrap(), "nginx:1");
        let named = json!({"annotations": {PROFILE_ANNOTATION: "web", CRI_IMAGE_ANNOTATION: format!("nginx@sha256:{hex}")}});
        assert_eq!(profile_key(&named, None).unwrap(), "web");
    }

    #[test]
    fn containerd_s_image_digest_comes_after_cri_s_and_before_any_name() {
        let hex = "ab".repeat(32);
        let known = ContainerImage {
            name: "docker.io/library/busybox:1".into(),
            digest: Some(format!("sha256:{hex}")),
        };
        let removed = ContainerImage {
            digest: None,
            ..known.clone()
        };
        let run = json!({"process": {"args": ["/bin/sh"]}});
        assert_eq!(
            profile_key(&run, Some(&known)).unwrap(),
            format!("sha256:{hex}")
        );
        assert_eq!(
            profile_key(&run, Some(&removed)).unwrap(),
            "docker.io/library/busybox:1"
        );
        let cri = json!({"annotations": {CRI_IMAGE_ANNOTATION: "nginx:1"}});
        assert_eq!(
            profile_key(&cri, Some(&known)).unwrap(),
            format!("sha256:{hex}")
        );
        // CRI's name wins over the record's when neither has a digest.
        assert_eq!(profile_key(&cri, Some(&removed)).unwrap(), "nginx:1");
        let cri_digest = format!("sha256:{}", "cd".repeat(32));
        let pinned = json!({"annotations": {CRI_IMAGE_ANNOTATION: format!("nginx@{cri_digest}")}});
        assert_eq!(profile_key(&pinned, Some(&known)).unwrap(), cri_digest);
        let named = json!({"annotations": {PROFILE_ANNOTATION: "web"}});
        assert_eq!(profile_key(&named, Some(&known)).unwrap(), "web");
        // A malformed digest from the store is not a key.
        let odd = ContainerImage {
            digest: Some("sha512:00".into()),
            ..known.clone()
        };
        assert_eq!(
            profile_key(&run, Some(&odd)).unwrap(),
            "docker.io/library/busybox:1"
        );

        let tmp = tempfile::tempdir().unwrap();
        let plan = Plan::resolve(&run, "c1", config(tmp.path()), Some(&known)).unwrap();
        assert_eq!(plan.key, format!("sha256:{hex}"));
        assert_eq!(plan.image.as_deref(), Some("docker.io/library/busybox:1"));
    }

    #[test]
    fn only_containers_whose_key_depends_on_it_need_the_image_looked_up() {
        assert!(needs_image(&json!({"process": {"args": ["/bin/sh"]}})));
        assert!(needs_image(
            &json!({"annotations": {CRI_IMAGE_ANNOTATION: "nginx:1"}})
        ));
        assert!(needs_image(
            &json!({"annotations": {MODE_ANNOTATION: "enforce"}})
        ));
        for spec in [
            json!({"annotations": {CRI_CONTAINER_TYPE_ANNOTATION: "sandbox"}}),
            json!({"annotations": {PROFILE_ANNOTATION: "web"}}),
            json!({"annotations": {MODE_ANNOTATION: "off"}}),
            json!({"annotations": {CRI_IMAGE_ANNOTATION: format!("nginx@sha256:{}", "ab".repeat(32))}}),
        ] {
            assert!(!needs_image(&spec), "{spec}");
        }
    }

    /// An empty or blank `chaperone.io/profile` is an error, as an empty mode or action is
    /// (until 2026-12-07 it was ignored, and the container learned into its image's profile);
    /// the image is not looked up for it.
    #[test]
    fn an_empty_profile_annotation_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        for value in ["", " ", "\t\n"] {
            let spec = json!({"annotations": {PROFILE_ANNOTATION: value, CRI_IMAGE_ANNOTATION: "nginx:1"}});
            let err = Plan::resolve(&spec, "c1", config(tmp.path()), None).unwrap_err();
            assert!(
                matches!(
                    err,
                    ShimError::Annotation {
                        key: PROFILE_ANNOTATION,
                        ..
                    }
                ),
                "{value:?}: {err:?}"
            );
            assert!(
                err.chain()
                    .contains(&format!("chaperone.io/profile={value:?}")),
                "{}",
                err.chain()
            );
            assert!(!needs_image(&spec), "{value:?}");
        }
        let padded = json!({"annotations": {PROFILE_ANNOTATION: " web "}});
        assert_eq!(profile_key(&padded, None).unwrap(), "web");
    }

    #[test]
    fn mode_resolution_and_bad_annotations() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = config(tmp.path());
        let plain = json!({"annotations": {PROFILE_ANNOTATION: "img"}});
        let plan = Plan::resolve(&plain, "c1", Arc::clone(&cfg), None).unwrap();
        assert_eq!((plan.mode, plan.action), (Mode::Learn, Action::Alert));
        assert!(matches!(plan.model, Model::None));

        let bad = json!({"annotations": {MODE_ANNOTATION: "lurn"}});
        let err = Plan::resolve(&bad, "c1", Arc::clone(&cfg), None)
            .unwrap_err()
            .chain();
        assert!(err.contains("chaperone.io/mode=\"lurn\""), "{err}");
        let bad = json!({"annotations": {ACTION_ANNOTATION: "explode"}});
        let err = Plan::resolve(&bad, "c1", Arc::clone(&cfg), None)
            .unwrap_err()
            .chain();
        assert!(
            err.contains("expected one of: alert, deny, pause, kill"),
            "{err}"
        );

        let enforce =
            json!({"annotations": {PROFILE_ANNOTATION: "img", MODE_ANNOTATION: "enforce"}});
        let err = Plan::resolve(&enforce, "c1", Arc::clone(&cfg), None).unwrap_err();
        assert!(matches!(err, ShimError::NotLearned { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "chaperone mode enforce needs a learned profile, but profile \"img\" does not exist"
        );

        // Two learned containers give a model and calibration data; the store's mode applies.
        // After the first, there is a model but nothing held out to calibrate it on.
        let store = Store::open(&cfg.db_path).unwrap();
        for (n, maxima) in [vec![], vec![0.5_f32, 0.7]].into_iter().enumerate() {
            let mut counts = NgramCounts::new(3).unwrap();
            counts.learn_sequence(&[1, 2, 3, 1, 2, 3]);
            let learning = Learning {
                counts,
                containers: 1,
                maxima,
                threads: Vec::new(),
                container: None,
                workload: None,
            };
            store.merge("img", &learning, None).unwrap();
            let resolved = Plan::resolve(&enforce, "c1", Arc::clone(&cfg), None);
            match (n, resolved) {
                (0, Err(err)) => assert!(
                    err.to_string().ends_with(
                        "profile \"img\" has no calibration data (learn at least two containers)"
                    ),
                    "{err}"
                ),
                (1, Ok(plan)) => assert_eq!(plan.mode, Mode::Enforce),
                (n, other) => panic!("after {} container(s): {other:?}", n + 1),
            }
        }
        let plan = Plan::resolve(&plain, "c1", Arc::clone(&cfg), None).unwrap();
        assert!(matches!(plan.model, Model::Reference(_)));
        store.set_mode("img", Some(Mode::Enforce)).unwrap();
        let plan = Plan::resolve(&plain, "c1", Arc::clone(&cfg), None).unwrap();
        assert_eq!(plan.mode, Mode::Enforce);
        let Model::Detect(detect) = &plan.model else {
            panic!("{:?}", plan.model)
        };
        assert!((detect.threshold() - 0.7).abs() < 1e-6);
        assert!(
            plan.tiers.is_none(),
            "no recorded runs: everything is traced"
        );
        let off = json!({"annotations": {PROFILE_ANNOTATION: "img", MODE_ANNOTATION: "off"}});
        assert_eq!(
            Plan::resolve(&off, "c1", cfg, None).unwrap().mode,
            Mode::Off
        );
    }

    #[test]
    fn recorded_runs_give_the_tiers_and_a_model_of_what_they_trace() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = config(tmp.path());
        let store = Store::open(&cfg.db_path).unwrap();
        let sym = |n| chaperone_profiler::syscalls::sym_of(n).unwrap();
        // read is 99.5 % of what the container does; openat and close are the rest.
        let thread: Vec<_> = (0..4000)
            .map(|i| match i % 400 {
                0 => sym("openat"),
                1 => sym("close"),
                _ => sym("read"),
            })
            .collect();
        for _ in 0..3 {
            let mut counts = NgramCounts::new(3).unwrap();
            counts.learn_sequence(&thread);
            let learning = Learning {
                counts,
                containers: 1,
                maxima: vec![1.0],
                threads: vec![thread.clone().into(), thread.clone().into()],
                container: None,
                workload: None,
            };
            store.merge("img", &learning, None).unwrap();
        }
        let spec =
            |mode: &str| json!({"annotations": {PROFILE_ANNOTATION: "img", MODE_ANNOTATION: mode}});
        let plan = Plan::resolve(&spec("enforce"), "c1", Arc::clone(&cfg), None).unwrap();
        let tiers = plan.tiers.as_ref().expect("tiers");
        assert_eq!(tiers.hot().iter().copied().collect::<Vec<_>>(), ["read"]);
        assert!(tiers.seen().contains("openat") && tiers.seen().contains("close"));
        assert_eq!(plan.unseen(), cfg.filter.unseen);
        let Model::Detect(detect) = &plan.model else {
            panic!("{:?}", plan.model)
        };
        // The threshold is the projected model's, not the stored 1.0.
        assert!(detect.threshold() < 1.0, "{}", detect.threshold());
        let monitor = Plan::resolve(&spec("monitor"), "c1", Arc::clone(&cfg), None).unwrap();
        assert_eq!(monitor.unseen(), Unseen::Notify);
        // No hot set asked for: everything seen is traced, still with the projected model.
        let all = Arc::new(Config {
            filter: chaperone_config::FilterConfig {
                hot_coverage: 0.0,
                ..Default::default()
            },
            ..(*cfg).clone()
        });
        let plan = Plan::resolve(&spec("enforce"), "c1", all, None).unwrap();
        assert!(plan.tiers.unwrap().hot().is_empty());
        // What the user names in always_traced is never hot; a name that is no syscall is a
        // config error.
        let traced = |names: &[&str]| {
            Arc::new(Config {
                filter: chaperone_config::FilterConfig {
                    always_traced: names.iter().map(|&n| n.to_owned()).collect(),
                    ..Default::default()
                },
                ..(*cfg).clone()
            })
        };
        let plan = Plan::resolve(&spec("enforce"), "c1", traced(&["read"]), None).unwrap();
        assert!(!plan.tiers.unwrap().hot().contains("read"));
        let err = Plan::resolve(&spec("enforce"), "c1", traced(&["reed"]), None).unwrap_err();
        assert!(
            err.chain().contains("\"reed\" is not a syscall name"),
            "{err:?}"
        );
    }

    /// With `fail_mode = "open"`, the warning of an unusable store gives its cause (until
    /// 2026-12-07 only `StoreError`'s Display, without its source, was logged).
    #[test]
    fn an_unusable_store_is_logged_with_its_cause() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("file");
        std::fs::write(&file, "").unwrap();
        let open = Arc::new(Config {
            db_path: file.join("profiles.db"),
            fail_mode: FailMode::Open,
            ..Config::default()
        });
        let mut plan = None;
        let log = crate::logging::logged(|| {
            plan = Some(Plan::resolve(&json!({}), "c1", open, None).unwrap());
        });
        assert_eq!(plan.unwrap().mode, Mode::Off);
        assert!(
            log.contains("profile store unusable") && log.contains("os error"),
            "{log}"
        );
    }

    #[test]
    fn a_corrupt_store_follows_the_fail_mode() {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("profiles.db");
        std::fs::write(&db, vec![7_u8; 4096]).unwrap();
        let spec = json!({});
        let closed = Arc::new(Config {
            db_path: db.clone(),
            ..Config::default()
        });
        let err = Plan::resolve(&spec, "c1", closed, None)
            .unwrap_err()
            .chain();
        assert!(
            err.contains("corrupt") && err.contains("profiles.db"),
            "{err}"
        );
        let open = Arc::new(Config {
            db_path: db,
            fail_mode: FailMode::Open,
            ..Config::default()
        });
        assert_eq!(
            Plan::resolve(&spec, "c1", open, None).unwrap().mode,
            Mode::Off
        );
    }
}
