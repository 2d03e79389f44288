//! Threshold calibration and ROC AUC.

/// The smallest threshold at which at most `far` of `normal` scores alarm (alarm: `score >
/// threshold`). `None` when there are no finite normal scores.
pub fn calibrate(normal: &[f64], far: f64) -> Option<f64> {
    let mut sorted: Vec<f64> = normal.iter().copied().filter(|s| s.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_unstable_by(f64::total_cmp);
    let n = sorted.len();
    // Truncation is the intent: at most floor(far * n) scores may lie above the threshold.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let allowed = ((far.clamp(0.0, 1.0) * n as f64).floor() as usize).min(n - 1);
    Some(sorted[n - 1 - allowed])
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

    #[test]
    fn calibration_on_synthetic_gaussian_generalises() {
        // Two halves of the same distribution: the rate measured on the other half is close.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        };
        let sample: Vec<f64> = (0..20_000)
            .map(|_| (0..12).map(|_| next()).sum::<f64>() - 6.0)
            .collect();
        let (a, b) = sample.split_at(10_000);
        let t = calibrate(a, 0.05).unwrap();
        let far = alarm_rate(b, t);
        assert!((far - 0.05).abs() < 0.01, "held-out far {far}");
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
