//! Offline evaluation of a detector on labelled traces (`chaperone eval`).
//!
//! Protocol P1 (the honest split): train on the training traces; sort the normal (validation)
//! traces by name; choose the threshold on those at odd positions, measure the false-alarm rate
//! on those at even positions, and the detection rate on every attack trace. ROC AUC compares
//! the attacks with every normal trace.
//!
//! Protocol P2 (closer to a learner that sees many containers): train on the training traces and
//! the normal traces with `i % 3 == 0`, threshold on `i % 3 == 1`, false-alarm rate on
//! `i % 3 == 2`; AUC against the normal traces not trained on.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use serde::Serialize;

use crate::detector::{stats, Kind};
use crate::model::ModelError;
use crate::syscalls::Sym;
use crate::trace::{AdfaData, Trace};

/// Labelled traces to evaluate on.
#[derive(Debug, Clone, Default)]
pub struct EvalSet {
    /// Normal traces to learn from.
    pub training: Vec<Trace>,
    /// Held-back normal traces, in name order.
    pub normal: Vec<Trace>,
    /// Attack traces with their family.
    pub attacks: Vec<(String, Trace)>,
}

impl EvalSet {
    /// Keeps only the syscalls `keep` accepts in every trace (what a live supervisor that does
    /// not trace the others would see); returns how many events were dropped.
    pub fn retain(&mut self, keep: impl Fn(Sym) -> bool) -> u64 {
        let mut dropped = 0_u64;
        let traces = self
            .training
            .iter_mut()
            .chain(self.normal.iter_mut())
            .chain(self.attacks.iter_mut().map(|(_, t)| t));
        for t in traces {
            let before = t.events.len();
            t.events.retain(|&s| keep(s));
            dropped += (before - t.events.len()) as u64;
        }
        dropped
    }
}

impl From<AdfaData> for EvalSet {
    /// ADFA-LD's roles: training, validation (the normal traces), attacks by family.
    fn from(data: AdfaData) -> Self {
        Self {
            training: data.training,
            normal: data.validation,
            attacks: data
                .attacks
                .into_iter()
                .map(|a| (a.family, a.trace))
                .collect(),
        }
    }
}

/// How the normal traces are split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Train on training; threshold on odd normal positions; FAR on even ones.
    P1,
    /// Train on training and `i % 3 == 0`; threshold on `i % 3 == 1`; FAR on `i % 3 == 2`.
    P2,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Protocol::P1 => "p1",
            Protocol::P2 => "p2",
        })
    }
}

impl FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "p1" | "P1" => Ok(Protocol::P1),
            "p2" | "P2" => Ok(Protocol::P2),
            other => Err(format!("unknown protocol {other:?}; expected p1 or p2")),
        }
    }
}

/// The traces each role gets under a protocol.
#[derive(Debug, Default)]
pub struct Split<'a> {
    /// Learned from.
    pub train: Vec<&'a [Sym]>,
    /// The threshold is chosen on these.
    pub calibrate: Vec<&'a [Sym]>,
    /// The false-alarm rate is measured on these.
    pub test: Vec<&'a [Sym]>,
}

impl Protocol {
    /// Splits a set's traces into the protocol's roles.
    pub fn split(self, set: &EvalSet) -> Split<'_> {
        let mut split = Split {
            train: set.training.iter().map(|t| t.events.as_slice()).collect(),
            ..Split::default()
        };
        for (i, t) in set.normal.iter().enumerate() {
            let e = t.events.as_slice();
            match (self, i % 2, i % 3) {
                (Protocol::P1, 1, _) | (Protocol::P2, _, 1) => split.calibrate.push(e),
                (Protocol::P1, _, _) | (Protocol::P2, _, 2) => split.test.push(e),
                (Protocol::P2, _, _) => split.train.push(e),
            }
        }
        split
    }

    /// What an empty calibration or test set needs: P1 takes them from two normal traces
    /// (odd and even positions), P2 from three (positions 1 and 2 mod 3).
    fn normal_traces_needed(self) -> &'static str {
        match self {
            Protocol::P1 => "give at least two normal traces",
            Protocol::P2 => "give at least three normal traces",
        }
    }
}

/// The outcome of evaluating one detector (one JSON line with `--json`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The detector's name.
    pub detector: String,
    /// The protocol.
    pub protocol: Protocol,
    /// ROC AUC of attacks against normal traces not trained on (ties count half).
    pub auc: f64,
    /// The calibrated alarm threshold (alarm: score above it).
    pub threshold: f64,
    /// False-alarm rate measured on the held-out normal traces.
    pub far: f64,
    /// Detection rate on every attack trace.
    pub dr: f64,
    /// Detection rate per attack family.
    pub families: BTreeMap<String, f64>,
    /// Syscalls learned from.
    pub train_events: u64,
    /// Syscalls scored (calibration, test and attack traces).
    pub eval_events: u64,
    /// Wall time of training and scoring, seconds.
    pub seconds: f64,
}

/// Errors of the evaluation.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Training failed.
    #[error("training the {detector} detector failed")]
    Train {
        /// The detector.
        detector: &'static str,
        /// Why.
        source: ModelError,
    },
    /// A role of the split has no traces.
    #[error("the {role} set is empty under protocol {protocol}: {hint}")]
    Empty {
        /// Which role.
        role: &'static str,
        /// The protocol.
        protocol: Protocol,
        /// What to do about it.
        hint: &'static str,
    },
}

fn events(traces: &[&[Sym]]) -> u64 {
    traces.iter().map(|t| t.len() as u64).sum()
}

/// Trains `kind`, calibrates its threshold to `far` and measures it on the set.
pub fn evaluate(
    kind: Kind,
    set: &EvalSet,
    protocol: Protocol,
    far: f64,
) -> Result<Report, EvalError> {
    let started = Instant::now();
    let split = protocol.split(set);
    for (role, list, hint) in [
        ("training", &split.train, "give normal traces to learn from"),
        (
            "calibration",
            &split.calibrate,
            protocol.normal_traces_needed(),
        ),
        (
            "false-alarm test",
            &split.test,
            protocol.normal_traces_needed(),
        ),
    ] {
        if list.is_empty() {
            return Err(EvalError::Empty {
                role,
                protocol,
                hint,
            });
        }
    }
    if set.attacks.is_empty() {
        return Err(EvalError::Empty {
            role: "attack",
            protocol,
            hint: "give attack traces",
        });
    }
    let mut detector = kind
        .train(&split.train)
        .map_err(|source| EvalError::Train {
            detector: kind.as_str(),
            source,
        })?;
    detector.calibrate(&split.calibrate, far);
    let score = |list: &[&[Sym]]| -> Vec<f64> { list.iter().map(|t| detector.score(t)).collect() };
    let calibration = score(&split.calibrate);
    let test = score(&split.test);
    let attacks: Vec<(&str, f64)> = set
        .attacks
        .iter()
        .map(|(family, t)| (family.as_str(), detector.score(&t.events)))
        .collect();
    let attack_scores: Vec<f64> = attacks.iter().map(|a| a.1).collect();
    // The empty-set checks above make calibration and AUC defined.
    let threshold = stats::calibrate(&calibration, far).unwrap_or(f64::INFINITY);
    let normal: Vec<f64> = calibration.iter().chain(&test).copied().collect();
    let auc = stats::roc_auc(&attack_scores, &normal).unwrap_or(f64::NAN);

    let mut per_family: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for &(family, s) in &attacks {
        let e = per_family.entry(family.to_owned()).or_default();
        e.0 += usize::from(s > threshold);
        e.1 += 1;
    }
    let attack_events: u64 = set.attacks.iter().map(|(_, t)| t.events.len() as u64).sum();
    Ok(Report {
        detector: kind.as_str().to_owned(),
        protocol,
        auc,
        threshold,
        far: stats::alarm_rate(&test, threshold),
        dr: stats::alarm_rate(&attack_scores, threshold),
        families: per_family
            .into_iter()
            .map(|(f, (hit, n))| (f, hit as f64 / n as f64))
            .collect(),
        train_events: events(&split.train),
        eval_events: events(&split.calibrate) + events(&split.test) + attack_events,
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {

    #[test]
    fn retain_drops_from_every_role() {
        let t = |e: &[Sym]| Trace {
            source: String::new(),
            events: e.to_vec(),
        };
        let mut set = EvalSet {
            training: vec![t(&[1, 2, 3])],
            normal: vec![t(&[2, 2])],
            attacks: vec![("f".into(), t(&[2, 4]))],
        };
        assert_eq!(set.retain(|s| s != 2), 4);
        assert_eq!(set.training[0].events, [1, 3]);
        assert!(set.normal[0].events.is_empty());
        assert_eq!(set.attacks[0].1.events, [4]);
    }

    use super::*;

    fn trace(name: &str, events: &[Sym]) -> Trace {
        Trace {
            source: name.to_owned(),
            events: events.to_vec(),
        }
    }

    fn set() -> EvalSet {
        let normal = |i: u16| trace(&format!("n{i:02}"), &[1, 2, 3, 1, 2, 3 + i % 2]);
        EvalSet {
            training: (0..20).map(normal).collect(),
            normal: (20..40).map(normal).collect(),
            attacks: vec![
                ("Bad".into(), trace("a1", &[9, 9, 8, 7, 9])),
                ("Bad".into(), trace("a2", &[1, 2, 3, 1, 2, 3])),
                ("Worse".into(), trace("a3", &[7, 7, 7, 7])),
            ],
        }
    }

    #[test]
    fn p1_splits_odd_and_even() {
        let s = set();
        let split = Protocol::P1.split(&s);
        assert_eq!(
            (split.train.len(), split.calibrate.len(), split.test.len()),
            (20, 10, 10)
        );
        let split = Protocol::P2.split(&s);
        assert_eq!(
            (split.train.len(), split.calibrate.len(), split.test.len()),
            (27, 7, 6)
        );
    }

    #[test]
    fn evaluation_separates_obvious_attacks() {
        let r = evaluate(Kind::Ngram, &set(), Protocol::P1, 0.05).unwrap();
        assert_eq!(r.far, 0.0);
        assert!(r.auc > 0.6, "{r:?}");
        assert_eq!(r.families["Worse"], 1.0);
        assert_eq!(r.train_events, 120);
        assert_eq!(r.eval_events, 120 + 15);
    }

    #[test]
    fn a_detector_is_calibrated_on_the_calibration_traces_before_it_scores() {
        // The attack joins two whole training traces: `cover` scores it as the normal traces
        // (two pieces in four syscalls against one in two); its syscall set is past the cut.
        let known = |i: u16| trace(&format!("t{i:02}"), &[1 + 4 * (i % 2), 2 + 4 * (i % 2)]);
        let s = EvalSet {
            training: (0..10).map(known).collect(),
            normal: (10..30).map(known).collect(),
            attacks: vec![("Mix".into(), trace("a", &[1, 2, 5, 6]))],
        };
        let cover = evaluate(Kind::Cover, &s, Protocol::P1, 0.05).unwrap();
        assert_eq!(cover.dr, 0.0, "{cover:?}");
        let sets = evaluate(Kind::Sets, &s, Protocol::P1, 0.05).unwrap();
        assert_eq!((sets.dr, sets.far, sets.auc), (1.0, 0.0, 1.0), "{sets:?}");
    }

    #[test]
    fn empty_roles_are_errors() {
        let mut s = set();
        s.attacks.clear();
        let err = evaluate(Kind::Stide, &s, Protocol::P1, 0.05).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the attack set is empty under protocol p1: give attack traces"
        );
        s.normal.truncate(1);
        let err = evaluate(Kind::Stide, &s, Protocol::P1, 0.05).unwrap_err();
        assert!(
            matches!(
                err,
                EvalError::Empty {
                    role: "calibration",
                    ..
                }
            ),
            "{err:?}"
        );
    }
}
