//! Threshold calibration and ROC AUC.

/// Fewer held-out scores than this and a target below one in their number gets the highest
/// score as its threshold: too few for a tail fit.
pub const TAIL_MIN_SCORES: usize = 20;

/// The alarm threshold for a false-alarm rate of `far` on data like `normal` (alarm: `score >
/// threshold`). `None` when there are no finite normal scores.
///
/// When `far` allows at least one of the `n` scores above the threshold (`far * n >= 1`), the
/// threshold is the smallest at which at most `floor(far * n)` of them alarm. A smaller target
/// is beyond what `n` scores can show: the highest of them alone would alarm on about one new
/// score in `n + 1`. There the tail above the highest tenth of the scores (at least 10 of them)
/// is fitted with a generalised Pareto distribution (probability-weighted moments, Hosking and
/// Wallis 1987) and the threshold is the fitted quantile for `far`, never below the highest
/// score. With fewer than [`TAIL_MIN_SCORES`] scores, or `far <= 0`, it is the highest score.
pub fn calibrate(normal: &[f64], far: f64) -> Option<f64> {
    let mut sorted: Vec<f64> = normal.iter().copied().filter(|s| s.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_unstable_by(f64::total_cmp);
    let n = sorted.len();
    let far = far.clamp(0.0, 1.0);
    let highest = sorted[n - 1];
    match basis(far, n) {
        Basis::Highest => Some(highest),
        Basis::Tail => Some(tail_quantile(&sorted, far).max(highest)),
        Basis::Quantile => {
            // Truncation is the intent: at most floor(far * n) scores may lie above it.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let allowed = ((far * n as f64).floor() as usize).min(n - 1);
            Some(sorted[n - 1 - allowed])
        }
    }
}

/// How [`calibrate`] sets the threshold for target `far` from `n` finite scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// `far * n >= 1`: the scores' own quantile.
    Quantile,
    /// Below one in `n`, with fewer than [`TAIL_MIN_SCORES`] scores or `far <= 0`: the highest.
    Highest,
    /// Below one in `n`: the fitted tail's quantile, never below the highest.
    Tail,
}

/// The [`Basis`] of [`calibrate`]'s threshold for target `far` from `n` finite scores.
pub fn basis(far: f64, n: usize) -> Basis {
    // Precision is moot: score counts are far below 2^52.
    #[allow(clippy::cast_precision_loss)]
    if far.clamp(0.0, 1.0) * n as f64 >= 1.0 {
        Basis::Quantile
    } else if far <= 0.0 || n < TAIL_MIN_SCORES {
        Basis::Highest
    } else {
        Basis::Tail
    }
}

/// The score exceeded with probability `far` (`0 < far * n < 1`) by the generalised Pareto
/// distribution fitted to the excesses over the `(k + 1)`-th highest of the `n >= 20` `sorted`
/// scores, `k = max(10, ceil(n / 10))`.
fn tail_quantile(sorted: &[f64], far: f64) -> f64 {
    let n = sorted.len();
    let k = n.div_ceil(10).max(10);
    let base = sorted[n - 1 - k];
    let excesses = sorted[n - k..].iter().map(|&s| s - base);
    let kf = k as f64;
    // The probability-weighted moments a0 = E[Y] and a1 = E[Y (1 - F(Y))], with the plotting
    // positions (j - 0.35) / k of the excesses in ascending order.
    let (sum0, sum1) = excesses.enumerate().fold((0.0, 0.0), |(s0, s1), (j, y)| {
        let survival = 1.0 - (j as f64 + 0.65) / kf;
        (s0 + y, s1 + survival * y)
    });
    let (a0, a1) = (sum0 / kf, sum1 / kf);
    // Ascending excesses against descending weights keep a1 below a0 / 2, so `spread` is
    // positive whenever an excess is.
    let spread = a0 - 2.0 * a1;
    if a0 <= 0.0 || spread <= 0.0 {
        return base;
    }
    // Hosking's parametrisation: survival (1 - shape * y / scale)^(1 / shape); a positive
    // shape is a bounded tail, a negative one a heavy tail. A tail is never taken as lighter
    // than exponential: from so few excesses a bounded fit too often ends below the truth, so
    // a positive shape becomes the exponential fit (its scale the mean excess), which places
    // the threshold at least as high while `beyond` is below 0.1, as it always is here.
    let (shape, scale) = match a0 / spread - 2.0 {
        shape if shape > 0.0 => (0.0, a0),
        shape => (shape, 2.0 * a0 * a1 / spread),
    };
    // The tail's share above `base` is k / n; the target is `far` of all scores.
    let beyond = far * n as f64 / kf;
    let excess = if shape > -1e-9 {
        -scale * beyond.ln()
    } else {
        scale / shape * (1.0 - beyond.powf(shape))
    };
    base + excess
}

/// Fraction of `scores` above `threshold`.
pub fn alarm_rate(scores: &[f64], threshold: f64) -> f64 {
    if scores.is_empty() {
        return 0.0;
    }
    scores.iter().filter(|&&s| s > threshold).count() as f64 / scores.len() as f64
}

/// ROC AUC of `positive` against `negative` (Mann-Whitney U; ties count half).
/// `None` when either side is empty.
pub fn roc_auc(positive: &[f64], negative: &[f64]) -> Option<f64> {
    if positive.is_empty() || negative.is_empty() {
        return None;
    }
    let mut all: Vec<(f64, bool)> = positive
        .iter()
        .map(|&s| (s, true))
        .chain(negative.iter().map(|&s| (s, false)))
        .collect();
    all.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    // Sum of the positives' mid-ranks (1-based).
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j < all.len() && all[j].0.total_cmp(&all[i].0).is_eq() {
            j += 1;
        }
        let mid = (i + 1 + j) as f64 / 2.0;
        rank_sum += mid * all[i..j].iter().filter(|x| x.1).count() as f64;
        i = j;
    }
    let (np, nn) = (positive.len() as f64, negative.len() as f64);
    Some((rank_sum - np * (np + 1.0) / 2.0) / (np * nn))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_hits_the_target_rate() {
        let normal: Vec<f64> = (0..100).map(f64::from).collect();
        let t = calibrate(&normal, 0.05).unwrap();
        assert_eq!(t, 94.0);
        assert_eq!(alarm_rate(&normal, t), 0.05);
        // Any lower threshold would alarm more.
        assert!(alarm_rate(&normal, t - 0.5) > 0.05);
        assert_eq!(calibrate(&normal, 0.0).unwrap(), 99.0);
        assert_eq!(calibrate(&[], 0.05), None);
    }

    #[test]
    fn calibration_with_ties_never_exceeds_the_rate() {
        let normal = [1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 3.0];
        for far in [0.0, 0.05, 0.1, 0.3, 0.5, 0.9] {
            let t = calibrate(&normal, far).unwrap();
            assert!(alarm_rate(&normal, t) <= far + 1e-12, "far {far}: t {t}");
        }
    }

    /// A fixed stream of uniform draws in [0, 1) (xorshift64).
    fn uniforms(mut x: u64) -> impl FnMut() -> f64 {
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// `n` draws of the exponential distribution with mean 1.
    fn exponential(seed: u64, n: usize) -> Vec<f64> {
        let mut next = uniforms(seed);
        (0..n).map(|_| -(1.0 - next()).ln()).collect()
    }

    #[test]
    fn calibration_on_synthetic_gaussian_generalises() {
        // Two halves of the same distribution: the rate measured on the other half is close.
        let mut next = uniforms(0x2545_f491_4f6c_dd1d);
        let sample: Vec<f64> = (0..20_000)
            .map(|_| (0..12).map(|_| next()).sum::<f64>() - 6.0)
            .collect();
        let (a, b) = sample.split_at(10_000);
        let t = calibrate(a, 0.05).unwrap();
        let far = alarm_rate(b, t);
        assert!((far - 0.05).abs() < 0.01, "held-out far {far}");
    }

    #[test]
    fn a_target_below_one_in_n_extrapolates_the_tail() {
        // Exponential scores: the score exceeded with probability p is -ln p. The fit is never
        // below the highest score, is near the truth in the middle of 20 samples, and is never
        // far below it (a heavy-tailed fit of a few excesses may overshoot: fewer alarms).
        for far in [1e-4_f64, 1e-5] {
            let truth = -far.ln();
            let mut ratios: Vec<f64> = (1..=20)
                .map(|seed| {
                    let sample = exponential(seed, 1_000);
                    let highest = sample.iter().copied().fold(f64::MIN, f64::max);
                    let t = calibrate(&sample, far).unwrap();
                    assert!(t >= highest, "seed {seed} far {far}: {t} below {highest}");
                    t / truth
                })
                .collect();
            ratios.sort_unstable_by(f64::total_cmp);
            assert!(ratios[0] > 0.7 && ratios[19] < 3.0, "far {far}: {ratios:?}");
            assert!((0.85..1.15).contains(&ratios[10]), "far {far}: {ratios:?}");
        }
    }

    #[test]
    fn the_tail_fit_holds_the_rate_better_than_the_highest_score() {
        // 200 held-out scores and a target of 1 in 1,000: the highest alone alarms on about 1
        // in 200 new scores; the fitted threshold comes near the target.
        let fresh = exponential(99, 1_000_000);
        let (mut highest_rate, mut fit_rate) = (0.0, 0.0);
        for seed in 1..=20 {
            let sample = exponential(seed, 200);
            let highest = sample.iter().copied().fold(f64::MIN, f64::max);
            highest_rate += alarm_rate(&fresh, highest) / 20.0;
            fit_rate += alarm_rate(&fresh, calibrate(&sample, 0.001).unwrap()) / 20.0;
        }
        assert!(highest_rate > 0.0025, "highest {highest_rate}");
        assert!((0.0004..0.003).contains(&fit_rate), "fit {fit_rate}");
        assert!(
            fit_rate < highest_rate,
            "fit {fit_rate}, highest {highest_rate}"
        );
    }

    #[test]
    fn a_bounded_tail_is_extrapolated_as_exponential() {
        // Uniform scores end at 1. The fit never assumes a tail that ends, so the threshold
        // lies past 1 (no false alarm at all), by about the mean excess (0.05 here) times
        // ln(k / (far n)).
        let mut next = uniforms(7);
        let sample: Vec<f64> = (0..1_000).map(|_| next()).collect();
        let t = calibrate(&sample, 1e-6).unwrap();
        assert!((1.0..1.0 + 0.08 * (1e5_f64).ln()).contains(&t), "{t}");
    }

    #[test]
    fn the_basis_names_the_branch_calibrate_takes() {
        assert_eq!(basis(0.05, 20), Basis::Quantile);
        assert_eq!(basis(0.05, 19), Basis::Highest);
        assert_eq!(basis(0.001, TAIL_MIN_SCORES - 1), Basis::Highest);
        assert_eq!(basis(0.001, TAIL_MIN_SCORES), Basis::Tail);
        assert_eq!(basis(0.0, 1_000), Basis::Highest);
        assert_eq!(basis(2.0, 1), Basis::Quantile);
    }

    #[test]
    fn too_few_scores_or_no_spread_keep_the_highest() {
        let few: Vec<f64> = (0..TAIL_MIN_SCORES - 1).map(|i| i as f64).collect();
        assert_eq!(calibrate(&few, 1e-4), Some((TAIL_MIN_SCORES - 2) as f64));
        assert_eq!(calibrate(&[2.5; 100], 1e-4), Some(2.5));
        let many = exponential(5, 100);
        let highest = many.iter().copied().fold(f64::MIN, f64::max);
        assert_eq!(calibrate(&many, 0.0), Some(highest));
        // A tie among the top scores only: the excesses over the base are all zero but one.
        // (101 scores: the top k = 11 over the 12th highest, a 3.0 like the 10 above it.)
        let mut ties = vec![1.0; 80];
        ties.extend([3.0; 20]);
        ties.push(3.5);
        let t = calibrate(&ties, 1e-4).unwrap();
        assert!(t.is_finite() && t >= 3.5, "{t}");
    }

    #[test]
    fn auc_counts_ties_half() {
        assert_eq!(roc_auc(&[3.0, 4.0], &[1.0, 2.0]), Some(1.0));
        assert_eq!(roc_auc(&[1.0, 2.0], &[3.0, 4.0]), Some(0.0));
        assert_eq!(roc_auc(&[1.0], &[1.0]), Some(0.5));
        assert_eq!(roc_auc(&[2.0, 1.0], &[1.0, 0.0]), Some(0.875));
        assert_eq!(roc_auc(&[], &[1.0]), None);
    }
}
