//! The Kubernetes path: containerd's CRI plugin with the `chaperone` runtime handler from
//! `deploy/containerd-runtime.toml`, driven as the kubelet drives it (RunPodSandbox,
//! CreateContainer, StartContainer, ExecSync, ContainerStatus, StopContainer,
//! RemovePodSandbox). Root, real containerd and runc.

// Integration tests are their own crate: no test module, and they report to the terminal.
#![allow(clippy::tests_outside_test_module, clippy::disallowed_macros)]

use std::path::Path;
use std::time::Duration;

use chaperone_integration::containerd::{
    mounted, mounts_under, prerequisites, processes_with, wait_for, BUSYBOX_IMAGE, CRI_NAMESPACE,
    SHIM_BINARY,
};
use chaperone_integration::cri::{expect_refused, CriContainerd, PodGuard, HANDLER};
use chaperone_profiler::store::{Store, Workload};
use k8s_cri::v1::ContainerState;

const POD_NAMESPACE: &str = "shop";
const POD_NAME: &str = "web-7d4b9";

fn start() -> Option<CriContainerd> {
    let shim_dir = prerequisites()?;
    Some(CriContainerd::start(&shim_dir, "debug", &[BUSYBOX_IMAGE]).expect("CRI containerd starts"))
}

#[test]
fn a_two_container_pod_runs_under_chaperone_and_leaves_nothing() {
    let Some(cri) = start() else { return };
    let ctrd = &cri.containerd;
    // The node's default mode is off: only the pod's annotation, passed through by the
    // fragment's pod_annotations, turns learning on. The store is the one named by the config
    // file the fragment's ConfigPath points to (the shims get no CHAPERONE_CONFIG).
    ctrd.set_chaperone_config("mode = \"off\"\n").unwrap();
    let config = cri.pod_config(
        POD_NAMESPACE,
        POD_NAME,
        &[("chaperone.io/mode", "learn"), ("unrelated.io/note", "x")],
    );
    let job: &[&str] = &[
        "/bin/sh",
        "-c",
        "echo done > /tmp/out; cat /tmp/out; ls / > /dev/null",
    ];
    let web: &[&str] = &[
        "/bin/sh",
        "-c",
        "trap 'exit 0' TERM; while :; do sleep 1 & wait; done",
    ];
    let (pod, steps) = cri
        .start_pod(
            HANDLER,
            &config,
            BUSYBOX_IMAGE,
            &[("job", job), ("web", web)],
        )
        .unwrap_or_else(|e| panic!("{}", ctrd.explain(format!("{e:#}"))));
    let _guard = PodGuard(&cri, pod.id.clone());
    eprintln!("pod started in {:?}", steps.total());
    let (job_id, web_id) = (&pod.containers[0], &pod.containers[1]);

    let code = cri
        .wait_state(
            job_id,
            ContainerState::ContainerExited,
            Duration::from_secs(30),
        )
        .unwrap();
    assert_eq!(code, 0, "the job's exit code");
    assert_eq!(
        cri.container_state(web_id).unwrap().0,
        ContainerState::ContainerRunning
    );
    let (code, out) = cri
        .exec_sync(web_id, &["/bin/sh", "-c", "echo hello; exit 3"])
        .unwrap();
    assert_eq!(
        (code, out.as_str()),
        (3, "hello\n"),
        "ExecSync's exit code and output"
    );

    // One shim serves the whole pod (grouped by the CRI sandbox id), as runc-v2 does.
    let socket = ctrd.socket().display().to_string();
    let shims = processes_with(&[SHIM_BINARY, "-address", &socket]);
    assert_eq!(shims.len(), 1, "shims of the pod: {shims:?}");
    assert_eq!(
        processes_with(&[SHIM_BINARY, "-id", &pod.id]),
        shims,
        "the pod's shim is named by its sandbox"
    );

    // A grace long enough for a traced shell's trap on a loaded machine; StopContainer
    // returns as soon as the container exits.
    cri.stop_container(web_id, 30).unwrap();
    let code = cri
        .wait_state(
            web_id,
            ContainerState::ContainerExited,
            Duration::from_secs(30),
        )
        .unwrap();
    assert_eq!(
        code, 0,
        "StopContainer's SIGTERM reaches the container's trap"
    );
    cri.remove_pod(&pod.id).unwrap();

    // Nothing left: no shim, no mount, no runc state, no shim socket.
    wait_for("the pod's shim to exit", Duration::from_secs(15), || {
        processes_with(&[SHIM_BINARY, "-address", &socket])
            .is_empty()
            .then_some(())
    })
    .unwrap();
    for id in [&pod.id, job_id, web_id] {
        assert!(!mounted(id), "a mount of {id} is left");
        let runc_state = Path::new("/run/containerd/runc/k8s.io").join(id);
        assert!(
            !runc_state.exists(),
            "runc state left: {}",
            runc_state.display()
        );
    }
    let sockets: Vec<_> = std::fs::read_dir(ctrd.run_dir().join("s"))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    assert!(sockets.is_empty(), "shim state left: {sockets:?}");
    let rootfs: Vec<_> = mounts_under(ctrd.dir())
        .into_iter()
        .filter(|m| m.ends_with("rootfs"))
        .collect();
    assert!(rootfs.is_empty(), "rootfs mounts left: {rootfs:?}");

    // Learned: both containers, into the image's profile, named by their pod; the sandbox
    // (pause) container got the pod's annotation too but is never traced. CRI names the
    // image by tag only: the key is the digest the shim got from containerd's image store.
    let digest = ctrd.image_digest_in(CRI_NAMESPACE, BUSYBOX_IMAGE).unwrap();
    let store = Store::open(&ctrd.db_path()).unwrap();
    let profiles = store.list().unwrap();
    let keys: Vec<&str> = profiles.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, [digest.as_str()], "{}", ctrd.explain("profiles"));
    assert_eq!(profiles[0].containers, 2, "{:?}", profiles[0]);
    assert!(profiles[0].events > 0);
    let mut containers: Vec<Workload> = store
        .workloads(&digest)
        .unwrap()
        .into_iter()
        .map(|s| s.workload)
        .collect();
    containers.sort_by(|a, b| a.container.cmp(&b.container));
    let expected = |container: &str| Workload {
        namespace: POD_NAMESPACE.into(),
        pod: POD_NAME.into(),
        container: container.into(),
    };
    assert_eq!(containers, [expected("job"), expected("web")]);
}

/// The file the runtime's options name (`ConfigPath`, which `install-node.sh` sets) is
/// required: without it the pod fails, naming the file, instead of running on the defaults;
/// once the file is back, the next pod runs.
#[test]
fn a_missing_config_path_file_fails_the_pod_naming_it() {
    let Some(cri) = start() else { return };
    let file = cri.containerd.chaperone_config();
    cri.containerd.set_chaperone_config("").unwrap();
    std::fs::remove_file(&file).unwrap();
    let config = cri.pod_config(POD_NAMESPACE, "noconfig", &[]);
    let refused = expect_refused(
        cri.run_pod(&config, HANDLER),
        &format!("cannot read config file {}", file.display()),
    )
    .unwrap_or_else(|e| panic!("{}", cri.containerd.explain(format!("{e:#}"))));
    eprintln!("refused: {refused}");
    let socket = cri.containerd.socket().display().to_string();
    wait_for(
        "the refused pod's shim to exit",
        Duration::from_secs(10),
        || {
            processes_with(&["containerd-shim", "-address", &socket])
                .is_empty()
                .then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("{}", cri.containerd.explain(e)));

    cri.containerd.set_chaperone_config("").unwrap();
    let pod = cri
        .run_pod(&config, HANDLER)
        .unwrap_or_else(|e| panic!("{}", cri.containerd.explain(format!("{e:#}"))));
    let _guard = PodGuard(&cri, pod);
}

#[test]
fn an_unknown_runtime_handler_is_refused_as_the_kubelet_sees_it() {
    let Some(cri) = start() else { return };
    let config = cri.pod_config(POD_NAMESPACE, "nohandler", &[]);
    let refused = expect_refused(cri.run_pod(&config, "no-such-handler"), "no runtime for")
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(refused.contains("no-such-handler"), "{refused}");
    // Nothing was started for it.
    let socket = cri.containerd.socket().display().to_string();
    assert!(processes_with(&["containerd-shim", "-address", &socket]).is_empty());
}

/// A kubelet whose cgroup driver is systemd gives slice units as cgroup parents, and CRI turns
/// them into cgroups paths of systemd's form (`<pod>.slice:cri-containerd:<id>`), which only
/// runc's systemd driver takes. Under `io.containerd.chaperone.v2` CRI sends runc no options
/// (no `SystemdCgroup`), so the shim tells runc from the path. Before 2026-12-07 runc's cgroupfs
/// driver made a directory named after the whole path, outside the pod's slice: the pod ran
/// out of its limits and accounting, and nothing said so. Where systemd runs, the container is
/// in its unit under the pod's slice; where it does not (this test machine), runc's systemd
/// driver fails the pod, and the error says why.
#[test]
fn a_slice_cgroup_parent_makes_runc_use_systemd_s_cgroup_driver() {
    let Some(cri) = start() else { return };
    let ctrd = &cri.containerd;
    ctrd.set_chaperone_config("mode = \"off\"\n").unwrap();
    let mut config = cri.pod_config(POD_NAMESPACE, "systemd-driver", &[]);
    let pod_slice = format!("kubepods-besteffort-pod{}.slice", std::process::id());
    if let Some(linux) = config.linux.as_mut() {
        linux.cgroup_parent = format!("/kubepods.slice/kubepods-besteffort.slice/{pod_slice}");
    }
    let web: &[&str] = &[
        "/bin/sh",
        "-c",
        "trap 'exit 0' TERM; while :; do sleep 1; done",
    ];
    let started = cri.start_pod(HANDLER, &config, BUSYBOX_IMAGE, &[("web", web)]);
    if Path::new("/run/systemd/system").is_dir() {
        let (pod, _) = started.unwrap_or_else(|e| panic!("{}", ctrd.explain(format!("{e:#}"))));
        let _guard = PodGuard(&cri, pod.id.clone());
        let (code, cgroups) = cri
            .exec_sync(&pod.containers[0], &["cat", "/proc/self/cgroup"])
            .unwrap_or_else(|e| panic!("{}", ctrd.explain(format!("{e:#}"))));
        assert_eq!(code, 0, "{cgroups}");
        let unit = format!("{pod_slice}/cri-containerd-{}.scope", pod.containers[0]);
        assert!(cgroups.contains(&unit), "not in {unit}:\n{cgroups}");
    } else {
        eprintln!("no systemd on this host: the pod must fail in runc's systemd cgroup driver");
        let Err(error) = started else {
            panic!("the pod started without systemd");
        };
        let error = format!("{error:#}");
        eprintln!("{error}");
        assert!(
            error.contains("systemd") || error.contains("dbus"),
            "{}",
            ctrd.explain(&error)
        );
    }
}
