//! Vectorised f32 transcendentals for the SIMD tiers' activations: `exp`, `expm1`, and from them
//! sigmoid, tanh, SiLU, ELU, erf, exact GELU and tanh-GELU, once per ISA (`avx2`, `avx512`). The
//! generic tier keeps the scalar f64 [`Activation::apply`](super::Activation::apply), the oracle.
//!
//! # Method
//! - `exp(x)`: `x` clamped to `[-104, 89]` (outside, the result is already 0 or ∞ in f32), then
//!   `n = round(x·log₂e)`, `r = x − n·ln2_hi − n·ln2_lo` (Cody–Waite: `ln2_hi` has 9 significant
//!   bits, so `n·ln2_hi` is exact and `|r| ≤ ln2/2`), `e^r` by its degree-7 Taylor polynomial
//!   (truncation below 5.2e-9 relative), scaled by `2^n` (AVX-512 `scalef`; AVX2 two exponent-bit
//!   factors `2^⌊n/2⌋·2^⌈n/2⌉`, so that `n` = 128 overflows and `n` < −126 gives denormals
//!   correctly). NaN in gives NaN out (the clamp keeps a NaN and the polynomial carries it).
//! - `expm1(x)` (ELU's negative side): the same reduction with `e^r − 1` as `r·(1 + r/2 + …)`
//!   (degree 8, truncation below 6e-10 relative) and `2^n·(e^r − 1) + (2^n − 1)` in one FMA, so
//!   that `|x| < ln2/2` (where `n` = 0) keeps full relative accuracy; saturates to −1 below −88
//!   and to `e^88 − 1` above 88 (ELU never uses that side).
//! - sigmoid `1 / (1 + e^−x)`, SiLU `x / (1 + e^−x)`, tanh-GELU `x / (1 + e^−2u)` with
//!   `u = √(2/π)·(x + 0.044715·x³)` (the same value as `x/2·(1 + tanh u)`, without its cancellation
//!   for negative `x`), all with true division.
//! - tanh: the odd Taylor polynomial to `x¹⁷` for `|x| < 0.5` (truncation below 5e-10 relative),
//!   else `±(1 − 2 / (e^{2|x|} + 1))`.
//! - erf: the reference's own split, so that both tiers follow the oracle: the Maclaurin series to
//!   `x¹⁵` for `|x| < 0.5`, else `1 − erfc(|x|)` with Numerical Recipes' `erfc = t·exp(−z² + P(t))`,
//!   `t = 1 / (1 + z/2)`. Exact GELU takes `1 + erf(z)` as `erfc(−z)` for `z ≤ −0.5`, which keeps
//!   its left tail relative rather than absolute.
//!
//! # Error bounds
//! Against the f64 oracle, for every finite f32 `x` (`ε` = |got − want|); asserted by
//! `tests/activation_simd.rs` over a sweep of the whole f32 range and random inputs, with the
//! largest measured relative error (both tiers alike) in the last column:
//!
//! | function | bound | measured |
//! |---|---|---|
//! | sigmoid | `ε ≤ 3e-7·|want| + 4e-39` | 1.7e-7 |
//! | SiLU | `ε ≤ 3e-7·|want| + 1e-36` | 2.2e-7 |
//! | tanh | `ε ≤ 3e-7·|want|` | 2.4e-7 |
//! | ELU | `ε ≤ 3e-7·|want|` | 2.0e-7 |
//! | erf | `ε ≤ 4e-7·|want| + 2e-45` | 3.4e-7 |
//! | GELU, tanh-GELU | `ε ≤ 4e-7·(1 + x²/3)·|want| + 1e-15·max(1, |x|)` | 1.0e-7·x² |
//!
//! The relative parts come from `exp`'s rounding (about 2 ulp: the reduction and the Horner
//! steps; the truncations above are below 5e-9), and one or two rounded operations after it
//! (`1 + e`, the division, `1 − erfc`); erf's largest error is just above 0.5, where the
//! `erfc` fit's polynomial cancels. GELU's relative error grows with `x²` in its left tail because
//! its `exp` argument (`−x²/2`, or `−2u` ≈ `−0.07·x³`) is rounded to f32 (relative `u`, absolute
//! `u·|arg|`); there `want` is below `1e-7·|x|`. The absolute floors are where the result leaves
//! f32's normal range (`e^−x` overflows for sigmoid and SiLU below −88.7) or where the f64 oracle
//! itself loses GELU's left tail to its `1 + erf` / `1 + tanh` cancellation (about `|x|·1e-16`).
//! Special values agree with the oracle exactly: ±∞ give the limits (NaN where the oracle's
//! `x·0` is NaN: SiLU, GELU and tanh-GELU at −∞), NaN gives NaN.

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;

use std::f64::consts::{FRAC_2_SQRT_PI, LN_2, LOG2_E};

/// `exp`'s input range: below, `e^x` is 0 in f32; above, ∞.
pub(crate) const EXP_LO: f32 = -104.0;
pub(crate) const EXP_HI: f32 = 89.0;
/// `expm1`'s input range (see the module doc).
pub(crate) const EXPM1_LIM: f32 = 88.0;
pub(crate) const LOG2E: f32 = LOG2_E as f32;
/// `ln 2 = LN2_HI + LN2_LO`, `LN2_HI = 355/512` (9 significant bits).
pub(crate) const LN2_HI: f32 = 355.0 / 512.0;
pub(crate) const LN2_LO: f32 = (LN_2 - 355.0 / 512.0) as f32;

/// `e^r ≈ Σ r^k / k!` for `k` in `0..8`: the coefficients, constant term first.
pub(crate) const EXP_POLY: [f32; 8] = [
    1.0,
    1.0,
    1.0 / 2.0,
    (1.0 / 6.0f64) as f32,
    (1.0 / 24.0f64) as f32,
    (1.0 / 120.0f64) as f32,
    (1.0 / 720.0f64) as f32,
    (1.0 / 5040.0f64) as f32,
];
/// `(e^r − 1 − r) / r² ≈ Σ r^(k−2) / k!` for `k` in `2..=8`.
pub(crate) const EXPM1_POLY: [f32; 7] = [
    1.0 / 2.0,
    (1.0 / 6.0f64) as f32,
    (1.0 / 24.0f64) as f32,
    (1.0 / 120.0f64) as f32,
    (1.0 / 720.0f64) as f32,
    (1.0 / 5040.0f64) as f32,
    (1.0 / 40320.0f64) as f32,
];

/// Where tanh switches from its polynomial to its `exp` form.
pub(crate) const TANH_SMALL: f32 = 0.5;
/// tanh's Taylor coefficients of `x³, x⁵, …, x¹⁷`.
pub(crate) const TANH_POLY: [f32; 8] = [
    (-1.0 / 3.0f64) as f32,
    (2.0 / 15.0f64) as f32,
    (-17.0 / 315.0f64) as f32,
    (62.0 / 2835.0f64) as f32,
    (-1382.0 / 155_925.0f64) as f32,
    (21844.0 / 6_081_075.0f64) as f32,
    (-929_569.0 / 638_512_875.0f64) as f32,
    (6_404_582.0 / 10_854_718_875.0f64) as f32,
];

/// Where erf switches from its series to `1 − erfc` (as [`erf_f64`](super::erf_f64)).
pub(crate) const ERF_SMALL: f32 = 0.5;
/// erf's Maclaurin coefficients: `2/√π · (−1)^n / (n!·(2n + 1))` of `x^(2n+1)`, `n` in `0..8`.
pub(crate) const ERF_SERIES: [f32; 8] = [
    FRAC_2_SQRT_PI as f32,
    (-FRAC_2_SQRT_PI / 3.0) as f32,
    (FRAC_2_SQRT_PI / 10.0) as f32,
    (-FRAC_2_SQRT_PI / 42.0) as f32,
    (FRAC_2_SQRT_PI / 216.0) as f32,
    (-FRAC_2_SQRT_PI / 1320.0) as f32,
    (FRAC_2_SQRT_PI / 9360.0) as f32,
    (-FRAC_2_SQRT_PI / 75600.0) as f32,
];
/// Numerical Recipes' `erfc(z) = t·exp(−z² + P(t))`, `t = 1 / (1 + z/2)`: `P`'s coefficients of
/// `t⁰ … t⁹` (those of [`erf_f64`](super::erf_f64)).
pub(crate) const ERFC_POLY: [f32; 10] = [
    -1.265_512_2,
    1.000_023_7,
    0.374_091_96,
    0.096_784_18,
    -0.186_288_06,
    0.278_868_07,
    -1.135_204,
    1.488_515_9,
    -0.822_152_2,
    0.170_872_77,
];

pub(crate) const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// tanh-GELU's `2u = x·(GELU_TANH_K0 + GELU_TANH_K1·x²)`.
pub(crate) const GELU_TANH_K0: f32 = (2.0 * 0.797_884_560_802_865_4f64) as f32;
pub(crate) const GELU_TANH_K1: f32 = (2.0 * 0.797_884_560_802_865_4f64 * 0.044715) as f32;

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    #[test]
    fn constants_match_their_definitions() {
        assert_eq!(LN2_HI as f64 * 512.0, 355.0);
        // The split carries ln 2 to about 2^-36, twelve bits beyond f32.
        assert!(((LN2_HI as f64 + LN2_LO as f64) - LN_2).abs() < 2e-11);
        assert!((GELU_TANH_K0 as f64 - 2.0 * (2.0 / PI).sqrt()).abs() < 1e-7);
    }
}
