//! Rules shared by the sources that read partitioned logs (the on-disk log
//! and Kafka): how a per-trigger record cap is shared out over partitions.
//! Pure functions; no I/O.

/// Shares `cap` records out over partitions with backlogs `lags` (summing to
/// more than `cap`) in proportion to the backlogs, largest remainders first;
/// at least one record in all when `cap > 0`.
pub(crate) fn share_out(lags: &[u64], cap: u64) -> Vec<u64> {
    let total: u128 = lags.iter().map(|&l| u128::from(l)).sum();
    let mut take: Vec<u64> = lags
        .iter()
        .map(|&l| (u128::from(l) * u128::from(cap) / total) as u64)
        .collect();
    let mut left = cap - take.iter().sum::<u64>();
    // Hand out what rounding left over, to the partitions with most left.
    while left > 0 {
        let Some((i, _)) = lags
            .iter()
            .zip(&take)
            .enumerate()
            .filter(|(_, (l, t))| *t < *l)
            .max_by_key(|(i, (l, t))| (*l - *t, std::cmp::Reverse(*i)))
        else {
            break;
        };
        take[i] += 1;
        left -= 1;
    }
    take
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_out_is_proportional_and_exact() {
        assert_eq!(share_out(&[100, 100, 100], 30), vec![10, 10, 10]);
        assert_eq!(share_out(&[90, 10, 0], 10), vec![9, 1, 0]);
        let t = share_out(&[5, 5, 5], 4);
        assert_eq!(t.iter().sum::<u64>(), 4);
        assert!(t.iter().all(|&x| x <= 5));
        assert_eq!(share_out(&[1000, 1, 1], 1), vec![1, 0, 0]);
    }
}
