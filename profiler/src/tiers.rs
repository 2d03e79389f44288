//! The tiers of monitor and enforce mode (DESIGN.md, "tiered filter"): the syscalls a profile
//! saw most often are allowed in the kernel (the hot set), the rest of what it saw is traced and
//! scored, and what it never saw gets an in-kernel action or is traced to alert.
//!
//! The supervisor of a tiered container sees only the traced syscalls, so its model must be
//! trained on the learned threads projected onto that alphabet (the hot syscalls removed), not
//! on the whole stream: [`train_projected`] does that from the threads the store keeps, and
//! calibrates the projected model's threshold on runs it did not learn from.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::detector::stats;
use crate::model::{ModelError, NgramCounts, NgramScorer, Smoothing};
use crate::store::Run;
use crate::supervisor::filter::never_notified_syms;
use crate::supervisor::{max_window_from, window_threshold, Piece};
use crate::syscalls::{sym_of, Sym};

/// Syscalls never put in the hot set: program execution. The supervisor needs the container's
/// `execve` to tell runc's prelude from the container (see `supervisor::run`), and running a
/// program it never ran is how a compromise shows. Users add others with `[filter]
/// always_traced` (process creation, for one: see docs/adr/0009).
pub const ALWAYS_TRACED: &[&str] = &["execve", "execveat"];

/// The syscalls of `[filter] always_traced`; `Err` gives the first name that is no syscall.
pub fn named_syscalls(names: &[String]) -> Result<BTreeSet<Sym>, &str> {
    names.iter().map(|n| sym_of(n).ok_or(n.as_str())).collect()
}

/// How often each syscall was learned (the model's unigrams), most frequent first; ties by
/// symbol.
pub fn frequencies(counts: &NgramCounts) -> Vec<(Sym, u64)> {
    let mut freq: Vec<(Sym, u64)> = counts.unigrams().collect();
    freq.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    freq
}

/// The hot set: the most frequent learned syscalls, added in order of frequency until they
/// cover `coverage` of the learned events (0 gives the empty set: everything seen is traced).
/// A syscall tied in frequency with the last one taken is taken too, so the set does not
/// depend on the order of equals. [`ALWAYS_TRACED`] syscalls and those in `traced` are never
/// hot, nor are those no filter notifies (`NEVER_NOTIFIED`: they run in the kernel in every
/// tier, and only a profile learned from a trace file has them); the events of all of these do
/// not count towards the coverage.
pub fn hot_set(counts: &NgramCounts, coverage: f64, traced: &BTreeSet<Sym>) -> BTreeSet<Sym> {
    let always: Vec<Sym> = ALWAYS_TRACED.iter().filter_map(|n| sym_of(n)).collect();
    let never: BTreeSet<Sym> = never_notified_syms().collect();
    let mut freq = frequencies(counts);
    freq.retain(|(s, _)| !always.contains(s) && !traced.contains(s) && !never.contains(s));
    let total: u64 = freq.iter().map(|&(_, c)| c).sum();
    let mut hot = BTreeSet::new();
    if total == 0 || coverage <= 0.0 {
        return hot;
    }
    #[allow(clippy::cast_precision_loss)] // a share
    let goal = coverage.min(1.0) * total as f64;
    let mut covered = 0_u64;
    let mut last = None;
    for (sym, count) in freq {
        #[allow(clippy::cast_precision_loss)]
        let done = covered as f64 >= goal;
        if done && last != Some(count) {
            break;
        }
        hot.insert(sym);
        covered += count;
        last = Some(count);
    }
    hot
}

/// A thread with the `untraced` syscalls removed: what a tiered supervisor sees of it when
/// those are the hot set and `NEVER_NOTIFIED` ([`untraced`]).
pub fn project(thread: &[Sym], untraced: &BTreeSet<Sym>) -> Vec<Sym> {
    thread
        .iter()
        .copied()
        .filter(|s| !untraced.contains(s))
        .collect()
}

/// What a tiered filter with the `hot` set lets run in the kernel, unseen by the supervisor:
/// the hot syscalls and those no filter notifies.
pub fn untraced(hot: &BTreeSet<Sym>) -> BTreeSet<Sym> {
    hot.iter().copied().chain(never_notified_syms()).collect()
}

/// A model of the traced alphabet and its calibrated window threshold.
#[derive(Debug, Clone)]
pub struct Projected {
    /// The scorer of the projected threads.
    pub scorer: Arc<NgramScorer>,
    /// The window threshold at the target false-alarm rate (at least one millinat).
    pub threshold: f32,
    /// Projected events learned.
    pub events: u64,
    /// Held-out threads the threshold was calibrated on.
    pub calibration: usize,
}

/// Trains the model of the traced alphabet of `profile` from its recorded `runs`, with what
/// the filter does not trace removed (the `hot` syscalls and `NEVER_NOTIFIED`: [`untraced`]),
/// in the profile's order, and calibrates its threshold to a per-thread false-alarm rate `far`
/// on held-out data: the runs are grouped by container (a run of no known container is a
/// group of its own), the groups are dealt into two folds of about equal events ([`two_folds`];
/// with one group, or one that outweighs the rest, its threads alternate instead), each fold
/// is scored by a model of the other, and each thread's highest window score is one
/// calibration point. A container's periodic flushes
/// are thus held out together: until 2026-12-07 they alternated between the folds, and the
/// threshold was calibrated on the same processes' other halves. A piece that continues a
/// thread cut by a flush is learned and scored without the start-of-thread context
/// ([`Piece`]). The returned scorer learns from every run, and knows every traced syscall the
/// profile learned: one that the store's runs no longer hold (older runs are trimmed, and a
/// run's recording is capped) is learned once on its own, as a rare syscall at a thread's
/// start. Before 2026-12-07 such a syscall was new to the model, and every container that
/// made it deviated: a long-running container's `execve`, once its first flush was trimmed,
/// on every start. `None` when no projected thread is left to learn from or to calibrate on.
pub fn train_projected(
    profile: &NgramCounts,
    runs: &[Run],
    hot: &BTreeSet<Sym>,
    far: f64,
) -> Result<Option<Projected>, ModelError> {
    let order = profile.order();
    let untraced = untraced(hot);
    let mut groups: Vec<Vec<Piece>> = Vec::new();
    let mut of_container: HashMap<&str, usize> = HashMap::new();
    for run in runs {
        let pieces = run.threads.iter().filter_map(|t| {
            let syms = project(&t.syms, &untraced);
            (!syms.is_empty()).then_some(Piece {
                syms,
                continues: t.continues,
            })
        });
        let group = match run.container.as_deref() {
            Some(c) => *of_container.entry(c).or_insert(groups.len()),
            None => groups.len(),
        };
        if group == groups.len() {
            groups.push(Vec::new());
        }
        groups[group].extend(pieces);
    }
    groups.retain(|g| !g.is_empty());
    let folds = two_folds(&groups);
    if folds.iter().any(Vec::is_empty) {
        return Ok(None);
    }
    let mut maxima = Vec::new();
    for (train, held_out) in [(&folds[0], &folds[1]), (&folds[1], &folds[0])] {
        let scorer = scorer_of(train, order)?;
        maxima.extend(
            held_out
                .iter()
                .map(|t| max_window_from(&scorer, t.start(&scorer), &t.syms)),
        );
    }
    let Some(threshold) = stats::calibrate(&maxima, far) else {
        return Ok(None);
    };
    let mut all: Vec<&Piece> = folds.iter().flatten().copied().collect();
    let events = all.iter().map(|t| t.syms.len() as u64).sum();
    let recorded: BTreeSet<Sym> = all.iter().flat_map(|t| t.syms.iter().copied()).collect();
    let lost: Vec<Piece> = profile
        .alphabet()
        .into_iter()
        .filter(|s| !untraced.contains(s) && !recorded.contains(s))
        .map(|s| Piece::whole(vec![s]))
        .collect();
    all.extend(&lost);
    let scorer = scorer_of(&all, order)?;
    Ok(Some(Projected {
        scorer: Arc::new(scorer),
        threshold: window_threshold(threshold),
        events,
        calibration: maxima.len(),
    }))
}

/// The two calibration folds of `groups` (each a container's pieces, or a run's of no known
/// container): whole groups, the largest first, each into the fold with fewer events so far,
/// when that leaves each fold at least a quarter of the events; else (one group, or one that
/// outweighs the rest) the threads alternate. Folds of very unequal size would train one model
/// on little and calibrate against it: a profile of one long-running container and a 32-syscall
/// window `alerts allow` had added got a threshold eight times as high, and its windows were no
/// longer seen (found by review before it shipped).
fn two_folds(groups: &[Vec<Piece>]) -> [Vec<&Piece>; 2] {
    let events = |g: &[Piece]| g.iter().map(|t| t.syms.len()).sum::<usize>();
    let total: usize = groups.iter().map(|g| events(g)).sum();
    let mut order: Vec<&Vec<Piece>> = groups.iter().collect();
    order.sort_by_key(|g| std::cmp::Reverse(events(g)));
    let mut folds: [Vec<&Piece>; 2] = [Vec::new(), Vec::new()];
    let mut weight = [0_usize; 2];
    for group in order {
        let lighter = usize::from(weight[1] < weight[0]);
        weight[lighter] += events(group);
        folds[lighter].extend(group.iter());
    }
    if groups.len() >= 2 && weight.iter().all(|&w| w * 4 >= total) {
        return folds;
    }
    let fold = |parity| {
        groups
            .iter()
            .flatten()
            .enumerate()
            .filter(|(i, _)| i % 2 == parity)
            .map(|(_, t)| t)
            .collect()
    };
    [fold(0), fold(1)]
}

fn scorer_of(threads: &[&Piece], order: usize) -> Result<NgramScorer, ModelError> {
    let mut counts = NgramCounts::new(order)?;
    for t in threads {
        t.learn_into(&mut counts);
    }
    NgramScorer::new(&counts, Smoothing::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::max_window;

    /// The profile that learned `runs`, order 3.
    fn profile(runs: &[Vec<Vec<Sym>>]) -> NgramCounts {
        counts(&runs.iter().flatten().map(Vec::as_slice).collect::<Vec<_>>())
    }

    /// Runs of whole threads, of no known container.
    fn stored(runs: &[Vec<Vec<Sym>>]) -> Vec<Run> {
        runs.iter()
            .map(|r| Run {
                container: None,
                threads: r.iter().cloned().map(Piece::whole).collect(),
            })
            .collect()
    }

    fn counts(threads: &[&[Sym]]) -> NgramCounts {
        let mut c = NgramCounts::new(3).unwrap();
        for t in threads {
            c.learn_sequence(t);
        }
        c
    }

    #[test]
    fn the_hot_set_covers_the_share_asked_for_with_ties_kept_together() {
        // 1: 6 times, 2: 2 times, 3: 2 times, 4: once (11 events).
        let c = counts(&[&[1, 1, 1, 2, 3, 1], &[1, 1, 2, 3, 4]]);
        let none = BTreeSet::new();
        assert_eq!(frequencies(&c)[0], (1, 6));
        assert_eq!(hot_set(&c, 0.0, &none), BTreeSet::new());
        assert_eq!(hot_set(&c, 0.5, &none), BTreeSet::from([1]));
        // 6/11 < 0.6: one more is needed, and 3 ties with 2.
        assert_eq!(hot_set(&c, 0.6, &none), BTreeSet::from([1, 2, 3]));
        assert_eq!(hot_set(&c, 1.0, &none), BTreeSet::from([1, 2, 3, 4]));
        assert_eq!(
            hot_set(&c, 1.0, &BTreeSet::from([2])),
            BTreeSet::from([1, 3, 4])
        );
        assert_eq!(
            hot_set(&NgramCounts::new(3).unwrap(), 0.9, &none),
            BTreeSet::new()
        );
    }

    #[test]
    fn exec_and_what_the_user_names_are_never_hot() {
        let execve = sym_of("execve").unwrap();
        let clone = sym_of("clone").unwrap();
        let c = counts(&[&[clone, execve, clone, execve, clone, 7]]);
        assert_eq!(
            hot_set(&c, 1.0, &BTreeSet::new()),
            BTreeSet::from([clone, 7])
        );
        assert_eq!(
            hot_set(&c, 1.0, &BTreeSet::from([clone])),
            BTreeSet::from([7])
        );
        assert!(ALWAYS_TRACED.iter().all(|n| sym_of(n).is_some()));
    }

    #[test]
    fn projection_removes_the_hot_syscalls_and_those_never_notified() {
        assert_eq!(project(&[1, 5, 1, 6, 1], &BTreeSet::from([1])), vec![5, 6]);
        let getpid = sym_of("getpid").unwrap();
        let untraced = untraced(&BTreeSet::from([1]));
        assert!(untraced.contains(&1) && untraced.contains(&getpid));
        assert_eq!(project(&[getpid, 5, 1, 6], &untraced), vec![5, 6]);
    }

    #[test]
    fn the_projected_model_learns_the_traced_sequence_and_calibrates_on_held_out_runs() {
        // Normal threads: the traced syscalls 10 and 11 alternate between hot ones.
        let thread: Vec<Sym> = (0..200).map(|i| [1, 10, 2, 11][i % 4]).collect();
        let runs = vec![vec![thread.clone()], vec![thread.clone()], vec![thread]];
        let hot = BTreeSet::from([1, 2]);
        let p = train_projected(&profile(&runs), &stored(&runs), &hot, 0.01)
            .unwrap()
            .unwrap();
        assert_eq!(p.events, 300);
        assert_eq!(p.calibration, 3);
        let normal: Vec<Sym> = (0..100).map(|i| [10, 11][i % 2]).collect();
        assert!(max_window(&p.scorer, &normal) <= f64::from(p.threshold));
        let odd: Vec<Sym> = (0..100).map(|i| [10, 10, 11][i % 3]).collect();
        assert!(max_window(&p.scorer, &odd) > f64::from(p.threshold));
    }

    #[test]
    fn the_projected_model_is_every_runs_threads_learned_together() {
        let runs: Vec<Vec<Vec<Sym>>> = vec![
            vec![vec![1, 10, 2, 11, 10], vec![12, 1, 13]],
            vec![vec![10, 10, 1, 12]],
            vec![vec![2, 13, 11, 1, 10, 12], vec![11]],
        ];
        let hot = BTreeSet::from([1, 2]);
        let p = train_projected(&profile(&runs), &stored(&runs), &hot, 0.01)
            .unwrap()
            .unwrap();
        let projected: Vec<Vec<Sym>> = runs.iter().flatten().map(|t| project(t, &hot)).collect();
        let together = counts(&projected.iter().map(Vec::as_slice).collect::<Vec<_>>());
        assert_eq!(p.events, together.events());
        let want = NgramScorer::new(&together, Smoothing::default()).unwrap();
        let probe: [Sym; 8] = [10, 11, 12, 13, 10, 10, 14, 12];
        let (mut a, mut b) = (p.scorer.start(), want.start());
        for s in probe {
            assert_eq!(p.scorer.step(&mut a, s), want.step(&mut b, s));
        }
    }

    /// A container's flushes are held out together: calibrated on a container the folds'
    /// model has not seen, the threshold is higher than when each flush of a container is
    /// scored by a model of its other flushes (the runs of no known container, as before
    /// 2026-12-07).
    #[test]
    fn a_containers_runs_are_held_out_together() {
        let a: Vec<Sym> = (0..120).map(|i| [10, 11][i % 2]).collect();
        let b: Vec<Sym> = (0..120).map(|i| [10, 10, 12][i % 3]).collect();
        let raw = vec![vec![a.clone()], vec![a], vec![b.clone()], vec![b]];
        let mut runs = stored(&raw);
        let unknown = train_projected(&profile(&raw), &runs, &BTreeSet::new(), 0.01)
            .unwrap()
            .unwrap();
        for (run, c) in runs.iter_mut().zip(["a", "a", "b", "b"]) {
            run.container = Some(c.into());
        }
        let known = train_projected(&profile(&raw), &runs, &BTreeSet::new(), 0.01)
            .unwrap()
            .unwrap();
        assert_eq!(known.calibration, 4);
        assert!(
            known.threshold > unknown.threshold,
            "{} against {}",
            known.threshold,
            unknown.threshold
        );
        assert_eq!(
            known.events, unknown.events,
            "every run is learned either way"
        );
    }

    /// Groups go whole into the fold with fewer events, largest first; a group that outweighs
    /// the rest (three times the others together) makes the threads alternate instead.
    #[test]
    fn folds_take_whole_groups_of_about_equal_events_or_else_alternate_threads() {
        let group = |len: usize, threads: usize| -> Vec<Piece> {
            (0..threads).map(|_| Piece::whole(vec![7; len])).collect()
        };
        let sizes =
            |folds: [Vec<&Piece>; 2]| folds.map(|f| f.iter().map(|t| t.syms.len()).sum::<usize>());
        assert_eq!(
            sizes(two_folds(&[group(20, 3), group(50, 1), group(40, 1)])),
            [60, 90]
        );
        // 100 events against 5: the threads alternate, the small group's included.
        let unequal = [group(10, 10), group(5, 1)];
        let folds = two_folds(&unequal);
        assert_eq!(folds.each_ref().map(Vec::len), [6, 5]);
        assert_eq!(sizes(two_folds(&[group(10, 4)])), [20, 20]);
    }

    /// One long-running container and the short window `alerts allow` added beside it: the
    /// threshold stays about what the container alone gives (it was eight times as high when
    /// the window was a fold of its own, found by review before it shipped).
    #[test]
    fn a_short_run_beside_one_container_does_not_skew_the_threshold() {
        let thread = |i: usize| -> Vec<Sym> {
            (0..200)
                .map(|j| [10, 11, 12, 10, 13][(i + j) % 5])
                .collect()
        };
        let mut raw: Vec<Vec<Vec<Sym>>> = (0..6)
            .map(|r| (0..20).map(|t| thread(r + t)).collect())
            .collect();
        let mut runs = stored(&raw);
        for run in &mut runs {
            run.container = Some("c".into());
        }
        let alone = train_projected(&profile(&raw), &runs, &BTreeSet::new(), 0.05)
            .unwrap()
            .unwrap();
        let window: Vec<Sym> = (0..32).map(|j| [14, 15, 10][j % 3]).collect();
        raw.push(vec![window.clone()]);
        runs.push(Run {
            container: None,
            threads: vec![Piece::continuation(window)],
        });
        let with = train_projected(&profile(&raw), &runs, &BTreeSet::new(), 0.05)
            .unwrap()
            .unwrap();
        assert!(
            with.threshold < alone.threshold * 2.0,
            "{} against {}",
            with.threshold,
            alone.threshold
        );
    }

    /// The part of a thread after a flush is not a thread's start: its first syscall is not
    /// learned after the start-of-thread marker.
    #[test]
    fn a_continuation_is_learned_without_the_thread_start() {
        // 40 syscalls, so that the smoothing's prior does not drown a single start.
        let thread: Vec<Sym> = (10..50).cycle().take(400).collect();
        let mut rest = vec![60];
        rest.extend(&thread);
        let raw = vec![vec![thread.clone()], vec![thread], vec![rest.clone()]];
        let surprisal_at_start = |continues| {
            let mut runs = stored(&raw);
            runs[2].threads[0].continues = continues;
            let p = train_projected(&profile(&raw), &runs, &BTreeSet::new(), 0.01)
                .unwrap()
                .unwrap();
            let mut state = p.scorer.start();
            let step = p.scorer.step(&mut state, 60);
            assert!(!step.novel, "60 is learned either way");
            step.surprisal
        };
        let (cut, whole) = (surprisal_at_start(true), surprisal_at_start(false));
        assert!(cut > whole + 1.0, "{cut} against {whole}");
    }

    #[test]
    fn nothing_to_learn_or_calibrate_on_gives_none() {
        let hot = BTreeSet::from([1]);
        let none = |runs: &[Vec<Vec<Sym>>]| {
            train_projected(&profile(runs), &stored(runs), &hot, 0.01)
                .unwrap()
                .is_none()
        };
        assert!(none(&[]));
        // Everything hot: no projected thread is left.
        assert!(none(&[vec![vec![1, 1, 1]], vec![vec![1]]]));
        // One run with one thread: nothing held out.
        assert!(none(&[vec![vec![5, 6, 7]]]));
    }

    /// A traced syscall the profile learned but its recorded runs no longer hold (trimmed,
    /// or past a run's recording cap) is known to the projected model, as a rare syscall at
    /// a thread's start, not new to it: before 2026-12-07 it deviated on every container.
    #[test]
    fn a_learned_syscall_the_runs_no_longer_hold_is_known_to_the_projected_model() {
        let execve = sym_of("execve").unwrap();
        let getpid = sym_of("getpid").unwrap();
        let thread: Vec<Sym> = (0..200).map(|i| [1, 10, 2, 11][i % 4]).collect();
        let runs = vec![
            vec![thread.clone()],
            vec![thread.clone()],
            vec![thread.clone()],
        ];
        let mut started = vec![execve, getpid];
        started.extend(&thread);
        // The profile also learned a run that began with `execve`: the store trimmed it.
        let mut learned = profile(&runs);
        learned.learn_sequence(&started);
        let hot = BTreeSet::from([1, 2]);
        let p = train_projected(&learned, &stored(&runs), &hot, 0.01)
            .unwrap()
            .unwrap();
        let mut state = p.scorer.start();
        let first = p.scorer.step(&mut state, execve);
        assert!(!first.novel, "execve, learned by the profile, is not new");
        // Only what the live supervisor sees is added: not a never-notified syscall.
        assert!(p.scorer.step(&mut p.scorer.start(), getpid).novel);
        assert_eq!(p.events, 300, "the events learned from the runs");
    }
}
