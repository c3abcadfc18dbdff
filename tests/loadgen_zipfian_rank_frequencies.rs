//! The zipfian generator must give rank frequencies close to
//! theory, P(rank i) = (1/(i+1)^θ) / ζ(n, θ), and spread hot keys over the key space.
use corepax::loadgen::workload::{Scramble, Zipfian, zeta};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

#[test]
fn rank_frequencies_match_theory() {
    for &(n, theta) in &[(1000u64, 0.99f64), (100_000, 0.99), (1000, 0.5)] {
        let z = Zipfian::new(n, theta);
        let zeta_n = zeta(n, theta);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let samples = 2_000_000u64;
        let mut counts = vec![0u64; n as usize];
        for _ in 0..samples {
            counts[z.sample(&mut rng) as usize] += 1;
        }
        for (rank, &count) in counts.iter().enumerate().take(10) {
            let p = (1.0 / ((rank + 1) as f64).powf(theta)) / zeta_n;
            let got = count as f64 / samples as f64;
            let rel = (got - p).abs() / p;
            // Sampling noise at 2M draws is under 1% for these ranks.
            let tol = 0.03;
            assert!(
                rel < tol,
                "n={n} θ={theta} rank {rank}: got {got:.5}, theory {p:.5}"
            );
        }
        // The head as a whole: the top 10% of ranks carry the theoretical share.
        let head = (n / 10) as usize;
        let p_head: f64 = (1..=head)
            .map(|i| 1.0 / (i as f64).powf(theta))
            .sum::<f64>()
            / zeta_n;
        let got_head = counts[..head].iter().sum::<u64>() as f64 / samples as f64;
        assert!(
            (got_head - p_head).abs() < 0.02,
            "n={n} θ={theta}: head {got_head:.4} vs {p_head:.4}"
        );
    }
}

#[test]
fn scrambled_hot_keys_are_spread() {
    let n = 100_000;
    let s = Scramble::new(n);
    let top: Vec<u64> = (0..10).map(|r| s.apply(r)).collect();
    // Hot keys must not cluster at the start of the key space.
    assert!(top.iter().filter(|&&k| k < n / 10).count() < 5, "{top:?}");
}
