//! A discrete hidden Markov model: trained offline with Baum-Welch, scored online with the
//! (scaled) forward algorithm.
//!
//! The alphabet is the syscalls seen in training plus one "never seen" symbol. Rows of the
//! initial, transition and emission matrices start as draws from a symmetric Dirichlet (through
//! `rv`) and the M-step adds the same Dirichlet's pseudo-counts, so nothing has probability zero.
//! A thread's online state is the normalized forward vector: `states` floats, fixed at creation.

use rand::rngs::SmallRng;
use rand::SeedableRng;
use rustc_hash::FxHashMap;
use rv::dist::SymmetricDirichlet;
use rv::traits::Sampleable;

use super::{ModelError, Result};
use crate::syscalls::Sym;

/// The most hidden states supported (the online forward step keeps two vectors on the stack).
pub const MAX_STATES: usize = 64;

/// Training settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HmmConfig {
    /// Hidden states, 1 to `MAX_STATES`.
    pub states: usize,
    /// Baum-Welch iterations at most.
    pub iterations: usize,
    /// Stop when the mean log-likelihood per event improves by less than this.
    pub tolerance: f64,
    /// Dirichlet pseudo-count added to every probability's expected count.
    pub prior: f64,
    /// Seed of the initial draw (training is deterministic for a seed).
    pub seed: u64,
}

impl Default for HmmConfig {
    fn default() -> Self {
        Self {
            states: 16,
            iterations: 30,
            tolerance: 1e-4,
            prior: 0.01,
            seed: 0x6368_6170,
        }
    }
}

/// A trained HMM.
#[derive(Debug, Clone)]
pub struct Hmm {
    states: usize,
    /// Dense index of each learned syscall; the rest map to `unseen`.
    index: FxHashMap<Sym, u32>,
    unseen: u32,
    initial: Vec<f64>,
    /// Transposed transitions: `trans_t[j * states + i] = P(j | i)`.
    trans_t: Vec<f64>,
    /// Emissions: `emit[o * states + j] = P(o | j)` (symbol-major for the forward step).
    emit: Vec<f64>,
}

/// One thread's forward vector.
#[derive(Debug, Clone)]
pub struct HmmState {
    alpha: [f64; MAX_STATES],
    started: bool,
}

fn draw_rows(rng: &mut SmallRng, rows: usize, k: usize) -> Vec<f64> {
    let dir = SymmetricDirichlet::new_unchecked(1.0, k);
    (0..rows)
        .flat_map(|_| {
            let row: Vec<f64> = dir.draw(rng);
            row
        })
        .collect()
}

impl Hmm {
    /// Trains on normal sequences.
    pub fn train(training: &[&[Sym]], config: HmmConfig) -> Result<Self> {
        let s = config.states;
        if !(1..=MAX_STATES).contains(&s) {
            return Err(ModelError::Hmm {
                reason: "states must be between 1 and 64",
            });
        }
        if !(config.prior > 0.0 && config.prior.is_finite()) {
            return Err(ModelError::Hmm {
                reason: "prior must be a positive number",
            });
        }
        let mut index = FxHashMap::default();
        for &sym in training.iter().flat_map(|t| t.iter()) {
            let next = u32::try_from(index.len()).unwrap_or(u32::MAX);
            index.entry(sym).or_insert(next);
        }
        if index.is_empty() {
            return Err(ModelError::Hmm {
                reason: "no training events",
            });
        }
        let unseen = u32::try_from(index.len()).unwrap_or(u32::MAX);
        let v = index.len() + 1;
        let mut rng = SmallRng::seed_from_u64(config.seed);
        let initial = draw_rows(&mut rng, 1, s);
        let trans = draw_rows(&mut rng, s, s);
        let emit_rows = draw_rows(&mut rng, s, v);
        let mut hmm = Self {
            states: s,
            index,
            unseen,
            initial,
            trans_t: transpose(&trans, s, s),
            emit: transpose(&emit_rows, s, v),
        };
        let seqs: Vec<Vec<u32>> = training
            .iter()
            .filter(|t| !t.is_empty())
            .map(|t| t.iter().map(|&x| hmm.symbol(x)).collect())
            .collect();
        let mut last = f64::NEG_INFINITY;
        for _ in 0..config.iterations {
            let ll = hmm.baum_welch_step(&seqs, config.prior);
            if ll - last < config.tolerance {
                break;
            }
            last = ll;
        }
        Ok(hmm)
    }

    /// Number of hidden states.
    pub fn states(&self) -> usize {
        self.states
    }

    fn symbol(&self, sym: Sym) -> u32 {
        self.index.get(&sym).copied().unwrap_or(self.unseen)
    }

    /// One EM iteration; returns the mean log-likelihood per event before the update.
    fn baum_welch_step(&mut self, seqs: &[Vec<u32>], prior: f64) -> f64 {
        let s = self.states;
        let v = self.unseen as usize + 1;
        let mut init_acc = vec![prior; s];
        let mut trans_acc = vec![prior; s * s]; // [i * s + j]
        let mut emit_acc = vec![prior; s * v]; // [j * v + o]
        let (mut ll, mut n) = (0.0, 0usize);
        let mut fwd: Vec<f64> = Vec::new();
        let mut scale: Vec<f64> = Vec::new();
        let mut beta = vec![0.0; s];
        let mut beta_next = vec![0.0; s];
        for seq in seqs {
            let t_len = seq.len();
            fwd.clear();
            fwd.resize(t_len * s, 0.0);
            scale.clear();
            scale.resize(t_len, 0.0);
            for t in 0..t_len {
                let o = seq[t] as usize;
                let mut sum = 0.0;
                for j in 0..s {
                    let prior_j = if t == 0 {
                        self.initial[j]
                    } else {
                        let prev = &fwd[(t - 1) * s..t * s];
                        let col = &self.trans_t[j * s..(j + 1) * s];
                        prev.iter().zip(col).map(|(a, b)| a * b).sum()
                    };
                    let a = prior_j * self.emit[o * s + j];
                    fwd[t * s + j] = a;
                    sum += a;
                }
                let sum = sum.max(f64::MIN_POSITIVE);
                scale[t] = sum;
                fwd[t * s..(t + 1) * s].iter_mut().for_each(|a| *a /= sum);
                ll += sum.ln();
            }
            n += t_len;
            beta.iter_mut().for_each(|b| *b = 1.0);
            for t in (0..t_len).rev() {
                let o = seq[t] as usize;
                // gamma_t(j) = fwd_t(j) * beta_t(j) (both scaled; they sum to one).
                let mut norm = 0.0;
                for j in 0..s {
                    norm += fwd[t * s + j] * beta[j];
                }
                let norm = norm.max(f64::MIN_POSITIVE);
                for j in 0..s {
                    let g = fwd[t * s + j] * beta[j] / norm;
                    emit_acc[j * v + o] += g;
                    if t == 0 {
                        init_acc[j] += g;
                    }
                }
                if t == 0 {
                    break;
                }
                // xi_{t-1}(i, j) = fwd_{t-1}(i) P(j|i) P(o_t|j) beta_t(j) / scale_t
                let c = scale[t];
                for j in 0..s {
                    let w = self.emit[o * s + j] * beta[j] / c;
                    for i in 0..s {
                        trans_acc[i * s + j] += fwd[(t - 1) * s + i] * self.trans_t[j * s + i] * w;
                    }
                }
                for (i, out) in beta_next.iter_mut().enumerate() {
                    let b: f64 = beta
                        .iter()
                        .enumerate()
                        .map(|(j, bj)| self.trans_t[j * s + i] * self.emit[o * s + j] * bj)
                        .sum();
                    *out = b / c;
                }
                std::mem::swap(&mut beta, &mut beta_next);
            }
        }
        normalize_rows(&mut init_acc, s);
        normalize_rows(&mut trans_acc, s);
        normalize_rows(&mut emit_acc, v);
        self.initial = init_acc;
        self.trans_t = transpose(&trans_acc, s, s);
        self.emit = transpose(&emit_acc, s, v);
        ll / n.max(1) as f64
    }

    /// A thread that has made no syscall yet.
    pub fn start(&self) -> HmmState {
        HmmState {
            alpha: [0.0; MAX_STATES],
            started: false,
        }
    }

    /// Scores one syscall (`-ln P(sym | history)`, nats) and advances the forward vector.
    /// No allocation.
    pub fn step(&self, state: &mut HmmState, sym: Sym) -> f64 {
        let s = self.states;
        let o = self.symbol(sym) as usize;
        let emit = &self.emit[o * s..(o + 1) * s];
        let mut next = [0.0f64; MAX_STATES];
        let mut sum = 0.0;
        for (j, (out, e)) in next.iter_mut().zip(emit).enumerate() {
            let p = if state.started {
                let col = &self.trans_t[j * s..(j + 1) * s];
                state.alpha[..s].iter().zip(col).map(|(a, b)| a * b).sum()
            } else {
                self.initial[j]
            };
            *out = p * e;
            sum += *out;
        }
        let sum = sum.max(f64::MIN_POSITIVE);
        for (a, n) in state.alpha.iter_mut().zip(&next).take(s) {
            *a = n / sum;
        }
        state.started = true;
        -sum.ln()
    }
}

fn transpose(m: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut t = vec![0.0; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = m[r * cols + c];
        }
    }
    t
}

fn normalize_rows(m: &mut [f64], cols: usize) {
    for row in m.chunks_mut(cols) {
        let sum: f64 = row.iter().sum();
        row.iter_mut().for_each(|x| *x /= sum);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_periodic_sequence() {
        let seq: Vec<Sym> = (0..300).map(|i| [1, 2, 3][i % 3]).collect();
        let hmm = Hmm::train(
            &[&seq],
            HmmConfig {
                states: 4,
                ..HmmConfig::default()
            },
        )
        .unwrap();
        let mean = |s: &[Sym]| {
            let mut st = hmm.start();
            s.iter().map(|&x| hmm.step(&mut st, x)).sum::<f64>() / s.len() as f64
        };
        let normal = mean(&[1, 2, 3, 1, 2, 3, 1, 2, 3]);
        let shuffled = mean(&[1, 3, 2, 2, 1, 3, 3, 2, 1]);
        let novel = mean(&[1, 2, 9, 1, 2, 9]);
        assert!(normal < 0.3, "periodic stream is predictable: {normal}");
        assert!(shuffled > normal + 1.0, "{shuffled} vs {normal}");
        assert!(novel > normal + 1.0, "{novel} vs {normal}");
    }

    #[test]
    fn probabilities_are_normalized() {
        let hmm = Hmm::train(&[&[1, 2, 2, 3, 1]], HmmConfig::default()).unwrap();
        let total: f64 = [1, 2, 3, 77]
            .iter()
            .map(|&x| {
                let mut st = hmm.start();
                hmm.step(&mut st, 1);
                (-hmm.step(&mut st, x)).exp()
            })
            .sum();
        assert!((total - 1.0).abs() < 1e-9, "{total}");
    }

    #[test]
    fn bad_configs_are_errors() {
        for states in [0, MAX_STATES + 1] {
            let c = HmmConfig {
                states,
                ..HmmConfig::default()
            };
            let err = Hmm::train(&[&[1]], c).unwrap_err();
            assert!(matches!(err, ModelError::Hmm { .. }), "{err:?}");
        }
        let err = Hmm::train(&[&[]], HmmConfig::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid hmm configuration: no training events"
        );
    }
}
