//! The transcendental activations on eight lanes (AVX2 + FMA); method and error bounds in the
//! parent module's doc.

use std::arch::x86_64::*;

use super::*;
use crate::kernels::Activation;

#[inline]
#[target_feature(enable = "avx2,fma")]
fn splat(v: f32) -> __m256 {
    _mm256_set1_ps(v)
}

/// `c[0] + r·(c[1] + r·(…))`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn horner<const N: usize>(r: __m256, c: &[f32; N]) -> __m256 {
    let mut p = splat(c[N - 1]);
    for &k in c[..N - 1].iter().rev() {
        p = _mm256_fmadd_ps(p, r, splat(k));
    }
    p
}

/// `|x|` and `x`'s sign bit.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn abs_sign(x: __m256) -> (__m256, __m256) {
    let sign = splat(-0.0);
    (_mm256_andnot_ps(sign, x), _mm256_and_ps(sign, x))
}

/// `n = round(x·log₂e)` and `r = x − n·ln2` (two-constant Cody–Waite) for a clamped `x`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn reduce(x: __m256) -> (__m256, __m256) {
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        splat(LOG2E),
    ));
    let r = _mm256_fnmadd_ps(n, splat(LN2_HI), x);
    (n, _mm256_fnmadd_ps(n, splat(LN2_LO), r))
}

/// `2^n` as a float for an integer `n` in `−127..=127` (`2^−127` reads as 0).
#[inline]
#[target_feature(enable = "avx2,fma")]
fn pow2(n: __m256i) -> __m256 {
    _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
        n,
        _mm256_set1_epi32(127),
    )))
}

/// `e^x`, saturating to 0 and ∞.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) fn exp(x: __m256) -> __m256 {
    // `max`/`min` return their second operand on NaN, so a NaN `x` stays NaN.
    let x = _mm256_min_ps(splat(EXP_HI), _mm256_max_ps(splat(EXP_LO), x));
    let (n, r) = reduce(x);
    let p = horner(r, &EXP_POLY);
    // `2^n` in two factors, each in range for `n` in `−150..=128`.
    let n = _mm256_cvtps_epi32(n);
    let half = _mm256_srai_epi32::<1>(n);
    let rest = _mm256_sub_epi32(n, half);
    _mm256_mul_ps(_mm256_mul_ps(p, pow2(half)), pow2(rest))
}

/// `e^x − 1`, relative near 0, saturating below −88 (to −1) and above 88.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) fn expm1(x: __m256) -> __m256 {
    let x = _mm256_min_ps(splat(EXPM1_LIM), _mm256_max_ps(splat(-EXPM1_LIM), x));
    let (n, r) = reduce(x);
    // e^r − 1 = r·(1 + r·(1/2 + r·(1/6 + …))).
    let p = horner(r, &EXPM1_POLY);
    let q = _mm256_mul_ps(r, _mm256_fmadd_ps(p, r, splat(1.0)));
    let s = pow2(_mm256_cvtps_epi32(n));
    _mm256_fmadd_ps(s, q, _mm256_sub_ps(s, splat(1.0)))
}

/// `1 / (1 + e^−x)`.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) fn sigmoid(x: __m256) -> __m256 {
    let e = exp(_mm256_xor_ps(x, splat(-0.0)));
    _mm256_div_ps(splat(1.0), _mm256_add_ps(splat(1.0), e))
}

/// `x / (1 + e^−x)`.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) fn silu(x: __m256) -> __m256 {
    let e = exp(_mm256_xor_ps(x, splat(-0.0)));
    _mm256_div_ps(x, _mm256_add_ps(splat(1.0), e))
}

#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) fn tanh(x: __m256) -> __m256 {
    let (ax, sign) = abs_sign(x);
    let x2 = _mm256_mul_ps(x, x);
    let small = _mm256_fmadd_ps(_mm256_mul_ps(x, x2), horner(x2, &TANH_POLY), x);
    let e = exp(_mm256_add_ps(ax, ax));
    let t = _mm256_sub_ps(
        splat(1.0),
        _mm256_div_ps(splat(2.0), _mm256_add_ps(e, splat(1.0))),
    );
    let large = _mm256_or_ps(t, sign);
    // A NaN compares false and takes the `exp` side, which carries it.
    let is_small = _mm256_cmp_ps::<_CMP_LT_OQ>(ax, splat(TANH_SMALL));
    _mm256_blendv_ps(large, small, is_small)
}

/// `x` for `x > 0`, else `alpha·(e^x − 1)`.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) fn elu(x: __m256, alpha: f32) -> __m256 {
    let negative = _mm256_mul_ps(splat(alpha), expm1(x));
    let positive = _mm256_cmp_ps::<_CMP_GT_OQ>(x, _mm256_setzero_ps());
    _mm256_blendv_ps(negative, x, positive)
}

/// erfc(z) for `z ≥ 0` by Numerical Recipes' fit (used from `z` = 0.5 on).
#[inline]
#[target_feature(enable = "avx2,fma")]
fn erfc_nr(z: __m256) -> __m256 {
    let t = _mm256_div_ps(splat(1.0), _mm256_fmadd_ps(z, splat(0.5), splat(1.0)));
    let arg = _mm256_fnmadd_ps(z, z, horner(t, &ERFC_POLY));
    _mm256_mul_ps(t, exp(arg))
}

/// erf's odd series for `|x| < 0.5`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn erf_series(x: __m256) -> __m256 {
    _mm256_mul_ps(x, horner(_mm256_mul_ps(x, x), &ERF_SERIES))
}

#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) fn erf(x: __m256) -> __m256 {
    let (z, sign) = abs_sign(x);
    let large = _mm256_or_ps(_mm256_sub_ps(splat(1.0), erfc_nr(z)), sign);
    let is_small = _mm256_cmp_ps::<_CMP_LT_OQ>(z, splat(ERF_SMALL));
    _mm256_blendv_ps(large, erf_series(x), is_small)
}

/// `x/2 · (1 + erf(x/√2))`, with `1 + erf(z)` as `erfc(−z)` for `z ≤ −0.5`.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) fn gelu(x: __m256) -> __m256 {
    let z = _mm256_mul_ps(x, splat(FRAC_1_SQRT_2));
    let (az, _) = abs_sign(z);
    let c = erfc_nr(az);
    let positive = _mm256_cmp_ps::<_CMP_GE_OQ>(z, _mm256_setzero_ps());
    let large = _mm256_blendv_ps(c, _mm256_sub_ps(splat(2.0), c), positive);
    let small = _mm256_add_ps(splat(1.0), erf_series(z));
    let is_small = _mm256_cmp_ps::<_CMP_LT_OQ>(az, splat(ERF_SMALL));
    let one_plus_erf = _mm256_blendv_ps(large, small, is_small);
    _mm256_mul_ps(_mm256_mul_ps(splat(0.5), x), one_plus_erf)
}

/// `x / (1 + e^−2u)`, `2u = x·(k0 + k1·x²)`: GELU's tanh form.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) fn gelu_tanh(x: __m256) -> __m256 {
    let inner = _mm256_fmadd_ps(
        _mm256_mul_ps(x, x),
        splat(GELU_TANH_K1),
        splat(GELU_TANH_K0),
    );
    let minus_2u = _mm256_mul_ps(_mm256_xor_ps(x, splat(-0.0)), inner);
    _mm256_div_ps(x, _mm256_add_ps(splat(1.0), exp(minus_2u)))
}

/// `activation` on eight lanes: the transcendental ones here, the others by the epilogues' own
/// `activate` (which sends the transcendental ones here).
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) fn activate(activation: Activation, x: __m256) -> __m256 {
    match activation {
        Activation::Sigmoid => sigmoid(x),
        Activation::Tanh => tanh(x),
        Activation::Silu => silu(x),
        Activation::Elu { alpha } => elu(x, alpha),
        Activation::Gelu => gelu(x),
        Activation::GeluTanh => gelu_tanh(x),
        Activation::Erf => erf(x),
        Activation::None
        | Activation::Relu
        | Activation::Clip { .. }
        | Activation::HardSigmoid { .. }
        | Activation::HardSwish
        | Activation::LeakyRelu { .. } => {
            crate::kernels::gemm::x86_64::avx2::activate(activation, x)
        }
    }
}
