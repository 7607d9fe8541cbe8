//! Running means and co-moments of a few variables at once (Welford's update,
//! Chan's merge), so that arms and logs can be summarised in one pass.
//! Holds no observations: only `n`, the means and the centred cross-products.

/// Count, means and centred cross-products `C[i][j] = Σ (v_i − mean_i)(v_j − mean_j)`
/// of `D` variables observed together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Moments<const D: usize> {
    n: u64,
    mean: [f64; D],
    cross: [[f64; D]; D],
}

impl<const D: usize> Default for Moments<D> {
    fn default() -> Self {
        Self {
            n: 0,
            mean: [0.0; D],
            cross: [[0.0; D]; D],
        }
    }
}

impl<const D: usize> Moments<D> {
    pub(crate) fn push(&mut self, v: [f64; D]) {
        self.n += 1;
        let n = self.n as f64;
        let before: [f64; D] = std::array::from_fn(|i| v[i] - self.mean[i]);
        for (mean, d) in self.mean.iter_mut().zip(before) {
            *mean += d / n;
        }
        let after: [f64; D] = std::array::from_fn(|i| v[i] - self.mean[i]);
        for (row, d) in self.cross.iter_mut().zip(before) {
            for (c, a) in row.iter_mut().zip(after) {
                // The old-mean deviation times the new-mean deviation: Welford's
                // update, exact and free of the cancellation of raw sums of squares.
                *c += d * a;
            }
        }
    }

    pub(crate) fn merge(&mut self, other: &Self) {
        if other.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = *other;
            return;
        }
        let (na, nb) = (self.n as f64, other.n as f64);
        let n = na + nb;
        let delta: [f64; D] = std::array::from_fn(|i| other.mean[i] - self.mean[i]);
        for ((row, other_row), di) in self.cross.iter_mut().zip(&other.cross).zip(delta) {
            for ((c, oc), dj) in row.iter_mut().zip(other_row).zip(delta) {
                *c += oc + di * dj * na * nb / n;
            }
        }
        for (mean, d) in self.mean.iter_mut().zip(delta) {
            *mean += d * nb / n;
        }
        self.n += other.n;
    }

    pub(crate) fn n(&self) -> u64 {
        self.n
    }

    pub(crate) fn mean(&self, i: usize) -> f64 {
        self.mean[i]
    }

    /// Sample covariance of variables `i` and `j` (divisor `n − 1`); 0 below two observations.
    pub(crate) fn cov(&self, i: usize, j: usize) -> f64 {
        if self.n < 2 {
            0.0
        } else {
            self.cross[i][j] / (self.n - 1) as f64
        }
    }

    pub(crate) fn var(&self, i: usize) -> f64 {
        self.cov(i, i).max(0.0)
    }

    /// `Σ v_i²` over every observation.
    pub(crate) fn sum_of_squares(&self, i: usize) -> f64 {
        self.cross[i][i] + self.n as f64 * self.mean[i] * self.mean[i]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
    }

    #[test]
    fn moments_match_the_textbook_formulas() {
        let rows = [[1.0, 10.0], [2.0, 12.0], [4.0, 11.0], [7.0, 20.0]];
        let mut m = Moments::<2>::default();
        for r in rows {
            m.push(r);
        }
        let mx = 14.0 / 4.0;
        let my = 53.0 / 4.0;
        let cxy: f64 = rows.iter().map(|r| (r[0] - mx) * (r[1] - my)).sum::<f64>() / 3.0;
        let vx: f64 = rows.iter().map(|r| (r[0] - mx).powi(2)).sum::<f64>() / 3.0;
        assert!(close(m.mean(0), mx) && close(m.mean(1), my));
        assert!(close(m.cov(0, 1), cxy) && close(m.var(0), vx));
        assert!(close(m.sum_of_squares(1), 100.0 + 144.0 + 121.0 + 400.0));
    }

    #[test]
    fn merging_two_halves_equals_pushing_everything_into_one() {
        let rows: Vec<[f64; 3]> = (0..50)
            .map(|i| {
                let x = f64::from(i);
                [x, (x * 0.37).sin() * 100.0 + 1e6, (x * x) % 17.0]
            })
            .collect();
        let mut whole = Moments::<3>::default();
        let (mut a, mut b) = (Moments::<3>::default(), Moments::<3>::default());
        for (k, r) in rows.iter().enumerate() {
            whole.push(*r);
            if k < 20 { a.push(*r) } else { b.push(*r) }
        }
        a.merge(&b);
        assert_eq!(a.n(), whole.n());
        for i in 0..3 {
            assert!(close(a.mean(i), whole.mean(i)));
            for j in 0..3 {
                assert!(close(a.cov(i, j), whole.cov(i, j)), "cov {i},{j}");
            }
        }
        let mut empty = Moments::<3>::default();
        empty.merge(&whole);
        assert_eq!(empty, whole);
    }
}
