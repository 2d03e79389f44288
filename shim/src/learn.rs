//! Tracing in the shim: ONE listener socket per shim, bound on first use, and one supervisor
//! thread per notify fd runc sends there.
//!
//! The supervisor is blocking code (it sleeps in `SECCOMP_IOCTL_NOTIF_RECV`), so it runs on
//! dedicated OS threads, never on the tokio runtime's workers: an acceptor thread takes each
//! connection and starts a `chaperone-sup` thread for its fd, with the [`Plan`] Create
//! registered for the container runc names in the connection's metadata. In learn mode the
//! supervisor counts, and when its filter has no users left (the container's processes exited)
//! merges what it learned into the image's profile in the store. In monitor and enforce mode it
//! scores, and the [`ShimResponder`] alerts and acts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chaperone_config::{FailMode, Mode};
use chaperone_profiler::model::NgramCounts;
use chaperone_profiler::store::{Learning, Store};
use chaperone_profiler::supervisor::listener::{Accepted, Listener, ListenerConfig};
use chaperone_profiler::supervisor::{
    self, kill_pid, Answer, Delivery, Fixed, KernelNotifier, Learn, Notifier, Received, Stats,
    Supervisor, SupervisorConfig, SupervisorError, Verdict, Wait,
};
use chaperone_profiler::syscalls::Arch;
use tracing::{debug, error, info, warn};

use crate::alert::ShimResponder;
use crate::bootstrap::MadePath;
use crate::error::{chain, Result, ShimError};
use crate::plan::{Model, Plan};

/// The listener socket's file name in the shim's state directory.
pub const SOCKET: &str = "chaperone.sock";
/// Overrides [`DEFAULT_RUN_DIR`] (tests point it into their temp dir).
pub const RUN_DIR_ENV: &str = "CHAPERONE_RUN_DIR";
/// Where shims keep their state directories.
pub const DEFAULT_RUN_DIR: &str = "/run/chaperone";

/// The state directory of the shim serving `address` (its ttrpc socket address).
///
/// A Unix socket path must fit in 108 bytes, and a bundle directory under containerd's state
/// dir with a 64-character id does not leave room, so the directory is short:
/// `<run dir>/s/<hash of the address>`, as containerd names shim sockets.
pub fn state_dir(address: &str) -> PathBuf {
    let run = std::env::var_os(RUN_DIR_ENV).map_or_else(|| DEFAULT_RUN_DIR.into(), PathBuf::from);
    run.join("s")
        .join(format!("{:016x}", fnv1a(address.as_bytes())))
}

/// FNV-1a, 64 bits: stable across builds and processes (the delete action recomputes it).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Removes a state directory whose socket nobody serves (best effort).
pub fn remove_stale(dir: &Path) {
    let socket = dir.join(SOCKET);
    if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
        return;
    }
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_dir(dir);
}

/// A supervisor's request to pause a container, answered once it is frozen (or not).
pub type PauseRequest = (
    String,
    std::sync::mpsc::Sender<std::result::Result<(), String>>,
);
/// Where supervisors send [`PauseRequest`]s (the Task service serves them).
pub type Pauser = tokio::sync::mpsc::UnboundedSender<PauseRequest>;

/// A traced container: its plan and who pauses it.
#[derive(Debug, Clone)]
struct Traced {
    plan: Arc<Plan>,
    pauser: Option<Pauser>,
    /// Set once any of the container's supervisors has killed it.
    killed: Arc<std::sync::atomic::AtomicBool>,
}

/// Plans by container id, and the supervisors running per container.
#[derive(Debug, Default)]
struct Registry {
    plans: Mutex<(HashMap<String, Traced>, HashMap<String, usize>)>,
    idle: std::sync::Condvar,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, (HashMap<String, Traced>, HashMap<String, usize>)> {
        self.plans.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The plan of `id`, counting a supervisor as running for it.
    fn start(&self, id: &str) -> Option<Traced> {
        let mut g = self.lock();
        *g.1.entry(id.to_owned()).or_default() += 1;
        g.0.get(id).cloned()
    }

    fn done(&self, id: &str) {
        let mut g = self.lock();
        if let Some(n) = g.1.get_mut(id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                g.1.remove(id);
            }
        }
        self.idle.notify_all();
    }
}

type Plans = Arc<Registry>;

/// The shim's learner: its state directory and, once bound, its listener thread.
#[derive(Debug)]
pub struct Learner {
    dir: PathBuf,
    /// Once bound: the socket and the state directory it made.
    bound: Mutex<Option<[MadePath; 2]>>,
    plans: Plans,
    pauser: Mutex<Option<Pauser>>,
}

impl Learner {
    /// A learner keeping its socket in `dir` (nothing is bound until [`Learner::socket`]).
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            bound: Mutex::new(None),
            plans: Arc::default(),
            pauser: Mutex::new(None),
        }
    }

    /// Sets where the supervisors' pause requests go.
    pub fn set_pauser(&self, pauser: Pauser) {
        *self.pauser.lock().unwrap_or_else(|e| e.into_inner()) = Some(pauser);
    }

    /// Registers the plan of a traced container before runc starts it.
    pub fn register(&self, plan: Plan) {
        let pauser = self
            .pauser
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let traced = Traced {
            plan: Arc::new(plan),
            pauser,
            killed: Arc::default(),
        };
        self.plans.lock().0.insert(traced.plan.id.clone(), traced);
    }

    /// Forgets a container (on Delete).
    pub fn forget(&self, id: &str) {
        self.plans.lock().0.remove(id);
    }

    /// Waits up to `timeout` for the supervisors of container `id` to finish (they end when
    /// its processes are gone, then store what they learned); `false` on timeout.
    pub fn wait_idle(&self, id: &str, timeout: std::time::Duration) -> bool {
        let guard = self.plans.lock();
        let (guard, result) = self
            .plans
            .idle
            .wait_timeout_while(guard, timeout, |g| g.1.contains_key(id))
            .unwrap_or_else(|e| e.into_inner());
        drop(guard);
        !result.timed_out()
    }

    /// The listener socket's path, binding it and starting the acceptor thread on first use.
    pub fn socket(&self) -> Result<PathBuf> {
        let path = self.dir.join(SOCKET);
        let mut bound = self.bound.lock().unwrap_or_else(|e| e.into_inner());
        if bound.is_some() {
            return Ok(path);
        }
        create_private_dir(&self.dir)?;
        let dir = MadePath::new(&self.dir);
        let listener = Listener::bind(&path, ListenerConfig::default())
            .map_err(|source| ShimError::Listener { source })?;
        let plans = Arc::clone(&self.plans);
        std::thread::Builder::new()
            .name("chaperone-accept".into())
            .spawn(move || accept_loop(&listener, &plans))
            .map_err(|source| ShimError::Io {
                op: "start the acceptor thread for",
                path: path.clone(),
                source,
            })?;
        *bound = Some([MadePath::new(&path), dir]);
        info!(socket = %path.display(), "seccomp listener bound");
        Ok(path)
    }

    /// Removes the socket and the state directory it made (at shim exit), unless a shim of
    /// the same id has made its own at the same paths since.
    pub fn cleanup(&self) {
        if let Some(made) = self
            .bound
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            for path in made {
                path.remove();
            }
        }
    }
}

fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| ShimError::Io {
            op: "create",
            path: dir.to_owned(),
            source,
        })
}

fn accept_loop(listener: &Listener, plans: &Plans) {
    loop {
        let accepted = match listener.accept() {
            Ok(a) => a,
            Err(e) => {
                warn!(
                    error = chain(&e),
                    "seccomp listener failed; no more containers are traced"
                );
                return;
            }
        };
        // Each supervisor counts for itself: its counters are a plain load and store, and its
        // "supervisor done" line reports its own container's.
        let stats = Arc::new(Stats::default());
        let id = accepted.state.metadata().clone().unwrap_or_default();
        let traced = plans.start(&id);
        let init = init_pid(&accepted);
        let registry = Arc::clone(plans);
        let container = id.clone();
        let spawned = spawn_supervisor(&id, move || {
            supervise(accepted, traced, stats);
            registry.done(&container);
        });
        if let Err(e) = spawned {
            // Every attempt failed: the fd is closed and no thread is left to serve a fail-open
            // fallback. runc init still holds its own copy of the listener while it waits, in a
            // notified `read`, for runc's go-ahead: that syscall is never answered and never
            // fails, so init and its `runc create` would wait forever (ADR 0016). Stop it.
            plans.done(&id);
            error!(container = %id, error = chain(&e), "cannot start a supervisor thread; stopping the container");
            stop(&id, init);
        }
    }
}

fn supervise(accepted: Accepted, traced: Option<Traced>, stats: Arc<Stats>) {
    let id = accepted.state.metadata().clone().unwrap_or_default();
    let pid = u32::try_from(*accepted.state.pid()).unwrap_or_default();
    let Some(traced) = traced else {
        // runc only connects for bundles this shim rewrote, so this is a stray connection:
        // serve it (the process would otherwise fail with ENOSYS) but keep nothing.
        warn!(container = %id, pid, "no plan for this container; its syscalls are allowed and not learned");
        if let Err(e) = allow_all(accepted.seccomp_fd, None, stats) {
            warn!(container = %id, pid, error = chain(&e), "supervisor failed");
        }
        return;
    };
    let init = init_pid(&accepted);
    // A second descriptor of the listener keeps it open when the supervisor fails, so the
    // fail mode decides what the container's syscalls get, not ENOSYS.
    let spare = accepted.seccomp_fd.try_clone();
    let plan = traced.plan;
    let fault = fault_injected(FAULT_ENV, &id);
    let result = match (&plan.mode, &plan.model) {
        (Mode::Monitor | Mode::Enforce, Model::Detect(detect)) => {
            let responder = ShimResponder::new(
                Arc::clone(&plan),
                traced.pauser,
                pid,
                init,
                Some(Arc::clone(detect.scorer())),
            )
            .sharing_kill(traced.killed);
            detect_run(accepted, fault, detect.clone(), responder, Arc::clone(&stats)).map(|deviations| {
                let s = stats.snapshot();
                info!(container = %id, pid, deviations, notifications = s.events, prelude = s.prelude, restarts = s.restarts, denied = s.denied, gone = s.gone, paused = s.paused, action_failures = s.action_failures, "supervisor done");
            })
        }
        _ => {
            // An exec process's run is learned too, but it is not another container.
            let containers = u64::from(init == pid);
            learn_run(accepted, fault, &plan, pid, Arc::clone(&stats), containers)
                .map(|learning| store_learning(&plan, pid, &learning, "exit"))
        }
    };
    if let Err(e) = result {
        fail(&plan, pid, init, spare, stats, &e);
    }
}

/// A supervisor's error, with the notification it left unanswered (its thread waits in the
/// kernel until someone answers it).
#[derive(Debug)]
struct Failed {
    error: SupervisorError,
    held: Option<u64>,
}

impl From<SupervisorError> for Failed {
    fn from(error: SupervisorError) -> Self {
        Self { error, held: None }
    }
}

impl Failed {
    /// Turns an error of `sup`'s run into a [`Failed`] with what `sup` held then.
    fn of<N: Notifier, M: supervisor::Mode, R: supervisor::Responder>(
        sup: &Supervisor<N, M, R>,
    ) -> impl FnOnce(SupervisorError) -> Self + '_ {
        |error| Self {
            error,
            held: sup.held(),
        }
    }
}

impl From<chaperone_profiler::model::ModelError> for Failed {
    fn from(error: chaperone_profiler::model::ModelError) -> Self {
        SupervisorError::from(error).into()
    }
}

/// A supervisor failed: what `fail_mode` says. Closed stops the container (its init is
/// killed, so containerd reports it exited); open answers everything it calls with "continue",
/// untraced, until it exits. Either way the container is never left running with its traced
/// syscalls failing.
fn fail(
    plan: &Plan,
    pid: u32,
    init: u32,
    spare: std::io::Result<std::os::fd::OwnedFd>,
    stats: Arc<Stats>,
    failed: &Failed,
) {
    let id = &plan.id;
    let error = chain(&failed.error);
    match (plan.config.fail_mode, spare) {
        (FailMode::Open, Ok(fd)) => {
            error!(container = %id, pid, error, "supervisor failed; fail_mode is open, so the container's syscalls are allowed, untraced, until it exits");
            if let Err(e) = allow_all(fd, failed.held, stats) {
                error!(container = %id, pid, error = chain(&e), "the untraced fallback failed too; stopping the container");
                stop(id, init);
            }
        }
        (FailMode::Open, Err(e)) => {
            error!(container = %id, pid, error, dup_error = chain(&e), "supervisor failed and its listener could not be kept; stopping the container although fail_mode is open");
            stop(id, init);
        }
        (FailMode::Closed, _) => {
            error!(container = %id, pid, error, "supervisor failed; fail_mode is closed, so the container is stopped");
            stop(id, init);
        }
    }
}

/// The container's init: killing it ends the container (the first process of a pid namespace
/// takes the others with it).
fn init_pid(accepted: &Accepted) -> u32 {
    let init = accepted.state.state().pid().or(Some(*accepted.state.pid()));
    init.and_then(|p| u32::try_from(p).ok()).unwrap_or_default()
}

fn stop(id: &str, init: u32) {
    if init == 0 {
        error!(container = %id, "cannot stop the container: runc named no pid");
    } else if let Err(e) = kill_pid(init) {
        error!(container = %id, pid = init, error = chain(&e), "cannot kill the container's init");
    }
}

/// Answers every notification on `fd` with "continue" until the filter has no users, first
/// `held`, one a failed supervisor received and did not answer.
fn allow_all(
    fd: std::os::fd::OwnedFd,
    held: Option<u64>,
    stats: Arc<Stats>,
) -> std::result::Result<(), SupervisorError> {
    let mut notifier = KernelNotifier::new(fd, Wait::default())?;
    if let Some(id) = held {
        // Gone is fine: the thread was interrupted or died meanwhile.
        notifier.send(id, Answer::Continue)?;
    }
    let mode = Learn::new(NgramCounts::new(1)?);
    Supervisor::new(
        notifier,
        mode,
        Fixed::new(Verdict::Continue),
        supervisor_config(),
        stats,
    )?
    .run()
}

/// Debug builds only: containers whose id contains this variable's value (in the shim's
/// environment, inherited from containerd) get a supervisor that fails while they run, so
/// the integration tests can check the fail mode on a real container. Release builds ignore
/// it.
pub const FAULT_ENV: &str = "CHAPERONE_TEST_FAIL_SUPERVISOR";

/// Debug builds only, like [`FAULT_ENV`]: containers whose id contains this variable's value
/// get no supervisor thread, as when the shim cannot start one (out of threads: EAGAIN).
pub const SPAWN_FAULT_ENV: &str = "CHAPERONE_TEST_FAIL_SUPERVISOR_THREAD";

/// Debug builds only, like [`SPAWN_FAULT_ENV`], but only the first attempt fails: the retry
/// starts the thread.
pub const SPAWN_ONCE_FAULT_ENV: &str = "CHAPERONE_TEST_FAIL_SUPERVISOR_THREAD_ONCE";

/// The pauses before each new attempt at starting a supervisor thread. A thread limit that is
/// reached (EAGAIN: `pids.max`, `RLIMIT_NPROC`, `threads-max`) often clears within moments, as
/// threads of other containers end; meanwhile the container waits in runc create, and the
/// shim's next connections wait in the listener's backlog.
const SPAWN_RETRY_PAUSES: [Duration; 3] = [
    Duration::from_millis(10),
    Duration::from_millis(50),
    Duration::from_millis(250),
];

/// Whether the fault `variable` names is injected into container `id` (debug builds only).
pub(crate) fn fault_injected(variable: &str, id: &str) -> bool {
    cfg!(debug_assertions)
        && std::env::var(variable).is_ok_and(|v| !v.is_empty() && id.contains(v.as_str()))
}

/// Starts the thread that runs `run` for container `id`, trying again after each of
/// [`SPAWN_RETRY_PAUSES`]. `run` (and the notify fd it owns) is kept between attempts: a failed
/// spawn drops only the thread's closure, which holds a share of it. On the last failure `run`
/// is dropped unrun.
fn spawn_supervisor(
    id: &str,
    run: impl FnOnce() + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let slot = Arc::new(Mutex::new(Some(run)));
    let mut attempt = 0;
    loop {
        let mine = Arc::clone(&slot);
        let spawned = if fault_injected(SPAWN_FAULT_ENV, id)
            || (attempt == 0 && fault_injected(SPAWN_ONCE_FAULT_ENV, id))
        {
            Err(std::io::Error::from_raw_os_error(libc::EAGAIN))
        } else {
            std::thread::Builder::new()
                .name("chaperone-sup".into())
                .spawn(move || {
                    let taken = mine.lock().unwrap_or_else(PoisonError::into_inner).take();
                    if let Some(run) = taken {
                        run();
                    }
                })
        };
        let Err(e) = spawned else { return spawned };
        let Some(&pause) = SPAWN_RETRY_PAUSES.get(attempt) else {
            return Err(e);
        };
        attempt += 1;
        warn!(container = %id, attempt, error = chain(&e), "cannot start a supervisor thread; trying again");
        std::thread::sleep(pause);
    }
}

/// The kernel's notifier, or with an injected fault ([`FAULT_ENV`]) one that fails to answer
/// the first syscall after the container's `execve`: the container has started (runc's
/// Start), and that syscall is left held for the fail mode to deal with.
#[derive(Debug)]
struct MaybeFaulty {
    inner: KernelNotifier,
    fault: bool,
    exec_seen: bool,
    fail_send: bool,
}

impl MaybeFaulty {
    fn new(fd: std::os::fd::OwnedFd, fault: bool) -> std::result::Result<Self, SupervisorError> {
        Ok(Self {
            inner: KernelNotifier::new(fd, Wait::default())?,
            fault,
            exec_seen: false,
            fail_send: false,
        })
    }
}

impl Notifier for MaybeFaulty {
    fn recv(&mut self) -> std::result::Result<Received, SupervisorError> {
        let received = self.inner.recv()?;
        if let (true, Received::Event(n)) = (self.fault, &received) {
            self.fail_send = self.exec_seen;
            let name =
                Arch::from_audit_arch(n.arch).and_then(|a| a.name(u32::try_from(n.nr).ok()?));
            self.exec_seen |= name == Some("execve");
        }
        Ok(received)
    }

    fn send(&mut self, id: u64, answer: Answer) -> std::result::Result<Delivery, SupervisorError> {
        if self.fail_send {
            return Err(SupervisorError::Config {
                reason: "fault injected for a test",
            });
        }
        self.inner.send(id, answer)
    }

    fn id_valid(&mut self, id: u64) -> bool {
        self.inner.id_valid(id)
    }

    fn kill_process(&mut self, tid: u32, id: u64) -> std::result::Result<bool, SupervisorError> {
        self.inner.kill_process(tid, id)
    }

    fn thread_alive(&mut self, tid: u32) -> bool {
        self.inner.thread_alive(tid)
    }
}

/// Supervisors in the shim ignore runc init's own syscalls (see
/// [`SupervisorConfig::skip_until_exec`]).
fn supervisor_config() -> SupervisorConfig {
    SupervisorConfig {
        skip_until_exec: true,
        ..SupervisorConfig::default()
    }
}

fn detect_run(
    accepted: Accepted,
    fault: bool,
    detect: chaperone_profiler::supervisor::Detect,
    responder: ShimResponder,
    stats: Arc<Stats>,
) -> std::result::Result<u64, Failed> {
    let notifier = MaybeFaulty::new(accepted.seccomp_fd, fault)?;
    let mut sup = Supervisor::new(notifier, detect, responder, supervisor_config(), stats)?;
    sup.run().map_err(Failed::of(&sup))?;
    Ok(sup.into_parts().1.deviations)
}

fn learn_run(
    accepted: Accepted,
    fault: bool,
    plan: &Arc<Plan>,
    pid: u32,
    stats: Arc<Stats>,
    containers: u64,
) -> std::result::Result<Learning, Failed> {
    let notifier = MaybeFaulty::new(accepted.seccomp_fd, fault)?;
    let mode = match &plan.model {
        // Count in the profile's own order so the counts merge.
        Model::Reference(scorer) => {
            Learn::with_reference(NgramCounts::new(scorer.order())?, Arc::clone(scorer))
        }
        _ => Learn::new(NgramCounts::new(plan.config.model.order)?),
    }
    // The store keeps the threads: the tiered filter's model is trained from them.
    .recording();
    let mut sup = Supervisor::new(
        notifier,
        mode,
        Fixed::new(Verdict::Continue),
        supervisor_config(),
        stats,
    )?;
    let ran = match plan.config.learn_flush_seconds {
        0 => sup.run(),
        every => {
            let mut flusher = Flusher::new(Arc::clone(plan), pid);
            let ran = sup.run_ticking(Duration::from_secs(every), |learn| flusher.tick(learn));
            flusher.wait();
            ran
        }
    };
    ran.map_err(Failed::of(&sup))?;
    Ok(Learning {
        container: Some(plan.id.clone()),
        workload: plan.workload.clone(),
        ..Learning::new(sup.into_parts().0.into_parts(), containers)
    })
}

/// The periodic flushes of one learning run (`learn_flush_seconds`): what was learned since
/// the last one is merged on a thread of its own, so the supervisor never waits for the store,
/// one flush at a time. Such a merge counts no container and names no workload: the run's last
/// merge, at exit, does.
struct Flusher {
    plan: Arc<Plan>,
    pid: u32,
    pending: Option<std::thread::JoinHandle<()>>,
}

impl Flusher {
    fn new(plan: Arc<Plan>, pid: u32) -> Self {
        Self {
            plan,
            pid,
            pending: None,
        }
    }

    fn tick(&mut self, learn: &mut Learn) {
        if self.pending.as_ref().is_some_and(|h| !h.is_finished()) {
            // The store is slow: keep counting, and flush at a later tick.
            return;
        }
        self.wait();
        let learned = learn.take();
        if learned.counts.events() == 0 && learned.maxima.is_empty() {
            return;
        }
        let learning = Arc::new(Learning {
            container: Some(self.plan.id.clone()),
            ..Learning::new(learned, 0)
        });
        let (plan, pid, shared) = (Arc::clone(&self.plan), self.pid, Arc::clone(&learning));
        let spawned = std::thread::Builder::new()
            .name("chaperone-flush".into())
            .spawn(move || store_learning(&plan, pid, &shared, "periodic"));
        match spawned {
            Ok(handle) => self.pending = Some(handle),
            // No thread: merge here rather than lose it (the syscall was answered already).
            Err(_) => store_learning(&self.plan, self.pid, &learning, "periodic"),
        }
    }

    /// Waits for the flush under way, if any (the run's last merge comes after it).
    fn wait(&mut self) {
        if let Some(handle) = self.pending.take() {
            let _ = handle.join();
        }
    }
}

/// Merges a container's learning into its profile (a failure is logged: the container has
/// already run, and losing one run's counts is better than failing anything now). `when` is
/// `periodic` or `exit`, for the log.
fn store_learning(plan: &Plan, pid: u32, learning: &Learning, when: &'static str) {
    debug!(
        container = %plan.id,
        pid,
        profile = %plan.key,
        events = learning.counts.events(),
        %when,
        "storing what the container learned"
    );
    let merged = Store::open(&plan.config.db_path)
        .and_then(|store| store.merge(&plan.key, learning, plan.config.promotion.as_ref()));
    match merged {
        Ok(m) => {
            info!(
                container = %plan.id,
                pid,
                profile = %plan.key,
                events = m.events,
                new_grams = m.new_grams,
                held_out_threads = learning.maxima.len(),
                %when,
                "learned the container's syscalls into its profile"
            );
            if let Some(mode) = m.promoted {
                info!(profile = %plan.key, %mode, "profile converged and was promoted");
            }
        }
        Err(e) => warn!(
            container = %plan.id,
            profile = %plan.key,
            events = learning.counts.events(),
            %when,
            error = chain(&e),
            "cannot store what the container learned"
        ),
    }
    crate::sys::release_free_heap();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_dirs_are_short_stable_and_distinct() {
        let a = state_dir("unix:///run/containerd/s/0ddfbd72d02b3551e75f3a0ed90b9965b533401be618f43a568bc522764e0ad0");
        let b = state_dir("unix:///run/containerd/s/1ddfbd72d02b3551e75f3a0ed90b9965b533401be618f43a568bc522764e0ad0");
        assert_ne!(a, b);
        assert_eq!(a, state_dir("unix:///run/containerd/s/0ddfbd72d02b3551e75f3a0ed90b9965b533401be618f43a568bc522764e0ad0"));
        if std::env::var_os(RUN_DIR_ENV).is_none() {
            assert!(a.join(SOCKET).as_os_str().len() < 108);
        }
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    /// A learning flush the store refuses is logged with the cause (a full disk, a read-only
    /// mount, here a file where its directory should be), not only "cannot open the profile
    /// store" (until 2026-12-07 `StoreError`'s Display alone was logged).
    #[test]
    fn a_failed_flush_logs_the_cause() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("file");
        std::fs::write(&file, "").unwrap();
        let config = chaperone_config::Config {
            db_path: file.join("profiles.db"),
            ..chaperone_config::Config::default()
        };
        let plan = Plan::fixed("c1", "web", Mode::Learn, Arc::new(config));
        let mut counts = NgramCounts::new(2).unwrap();
        counts.learn_sequence(&[0, 1]);
        let learning = Learning {
            counts,
            containers: 1,
            maxima: Vec::new(),
            threads: Vec::new(),
            container: None,
            workload: None,
        };
        let log = crate::logging::logged(|| store_learning(&plan, 1, &learning, "exit"));
        assert!(
            log.contains("cannot store what the container learned") && log.contains("os error"),
            "{log}"
        );
    }

    #[test]
    fn the_listener_is_bound_once_and_removed_on_cleanup() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("s").join("abc");
        let learner = Learner::new(dir.clone());
        let first = learner.socket().unwrap();
        assert_eq!(learner.socket().unwrap(), first);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&first).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        learner.cleanup();
        assert!(!dir.exists());
    }
}
