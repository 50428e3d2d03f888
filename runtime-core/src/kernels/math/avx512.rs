//! The transcendental activations on sixteen lanes (AVX-512F); method and error bounds in the
//! parent module's doc.

use std::arch::x86_64::*;

use super::*;
use crate::kernels::Activation;

#[inline]
#[target_feature(enable = "avx512f")]
fn splat(v: f32) -> __m512 {
    _mm512_set1_ps(v)
}

/// `c[0] + r·(c[1] + r·(…))`.
#[inline]
#[target_feature(enable = "avx512f")]
fn horner<const N: usize>(r: __m512, c: &[f32; N]) -> __m512 {
    let mut p = splat(c[N - 1]);
    for &k in c[..N - 1].iter().rev() {
        p = _mm512_fmadd_ps(p, r, splat(k));
    }
    p
}

/// `|x|` and `x`'s sign bit (as integers: AVX-512F has no float logic).
#[inline]
#[target_feature(enable = "avx512f")]
fn abs_sign(x: __m512) -> (__m512, __m512i) {
    let sign = _mm512_set1_epi32(i32::MIN);
    (
        _mm512_abs_ps(x),
        _mm512_and_si512(sign, _mm512_castps_si512(x)),
    )
}

/// `t` with the sign bit `sign` or-ed in.
#[inline]
#[target_feature(enable = "avx512f")]
fn with_sign(t: __m512, sign: __m512i) -> __m512 {
    _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(t), sign))
}

#[inline]
#[target_feature(enable = "avx512f")]
fn negate(x: __m512) -> __m512 {
    _mm512_castsi512_ps(_mm512_xor_si512(
        _mm512_castps_si512(x),
        _mm512_set1_epi32(i32::MIN),
    ))
}

/// `n = round(x·log₂e)` and `r = x − n·ln2` (two-constant Cody–Waite) for a clamped `x`.
#[inline]
#[target_feature(enable = "avx512f")]
fn reduce(x: __m512) -> (__m512, __m512) {
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_ps(x, splat(LOG2E)),
    );
    let r = _mm512_fnmadd_ps(n, splat(LN2_HI), x);
    (n, _mm512_fnmadd_ps(n, splat(LN2_LO), r))
}

/// `e^x`, saturating to 0 and ∞.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn exp(x: __m512) -> __m512 {
    // `max`/`min` return their second operand on NaN, so a NaN `x` stays NaN.
    let x = _mm512_min_ps(splat(EXP_HI), _mm512_max_ps(splat(EXP_LO), x));
    let (n, r) = reduce(x);
    let p = horner(r, &EXP_POLY);
    // `p·2^n`, overflowing to ∞ and underflowing through the denormals as IEEE does.
    _mm512_scalef_ps(p, n)
}

/// `e^x − 1`, relative near 0, saturating below −88 (to −1) and above 88.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn expm1(x: __m512) -> __m512 {
    let x = _mm512_min_ps(splat(EXPM1_LIM), _mm512_max_ps(splat(-EXPM1_LIM), x));
    let (n, r) = reduce(x);
    // e^r − 1 = r·(1 + r·(1/2 + r·(1/6 + …))).
    let p = horner(r, &EXPM1_POLY);
    let q = _mm512_mul_ps(r, _mm512_fmadd_ps(p, r, splat(1.0)));
    let s = _mm512_scalef_ps(splat(1.0), n);
    _mm512_fmadd_ps(s, q, _mm512_sub_ps(s, splat(1.0)))
}

/// `1 / (1 + e^−x)`.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn sigmoid(x: __m512) -> __m512 {
    let e = exp(negate(x));
    _mm512_div_ps(splat(1.0), _mm512_add_ps(splat(1.0), e))
}

/// `x / (1 + e^−x)`.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn silu(x: __m512) -> __m512 {
    let e = exp(negate(x));
    _mm512_div_ps(x, _mm512_add_ps(splat(1.0), e))
}

#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn tanh(x: __m512) -> __m512 {
    let (ax, sign) = abs_sign(x);
    let x2 = _mm512_mul_ps(x, x);
    let small = _mm512_fmadd_ps(_mm512_mul_ps(x, x2), horner(x2, &TANH_POLY), x);
    let e = exp(_mm512_add_ps(ax, ax));
    let t = _mm512_sub_ps(
        splat(1.0),
        _mm512_div_ps(splat(2.0), _mm512_add_ps(e, splat(1.0))),
    );
    // A NaN compares false and takes the `exp` side, which carries it.
    let is_small = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(ax, splat(TANH_SMALL));
    _mm512_mask_blend_ps(is_small, with_sign(t, sign), small)
}

/// `x` for `x > 0`, else `alpha·(e^x − 1)`.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn elu(x: __m512, alpha: f32) -> __m512 {
    let negative = _mm512_mul_ps(splat(alpha), expm1(x));
    let positive = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, _mm512_setzero_ps());
    _mm512_mask_blend_ps(positive, negative, x)
}

/// erfc(z) for `z ≥ 0` by Numerical Recipes' fit (used from `z` = 0.5 on).
#[inline]
#[target_feature(enable = "avx512f")]
fn erfc_nr(z: __m512) -> __m512 {
    let t = _mm512_div_ps(splat(1.0), _mm512_fmadd_ps(z, splat(0.5), splat(1.0)));
    let arg = _mm512_fnmadd_ps(z, z, horner(t, &ERFC_POLY));
    _mm512_mul_ps(t, exp(arg))
}

/// erf's odd series for `|x| < 0.5`.
#[inline]
#[target_feature(enable = "avx512f")]
fn erf_series(x: __m512) -> __m512 {
    _mm512_mul_ps(x, horner(_mm512_mul_ps(x, x), &ERF_SERIES))
}

#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn erf(x: __m512) -> __m512 {
    let (z, sign) = abs_sign(x);
    let large = with_sign(_mm512_sub_ps(splat(1.0), erfc_nr(z)), sign);
    let is_small = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(z, splat(ERF_SMALL));
    _mm512_mask_blend_ps(is_small, large, erf_series(x))
}

/// `x/2 · (1 + erf(x/√2))`, with `1 + erf(z)` as `erfc(−z)` for `z ≤ −0.5`.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn gelu(x: __m512) -> __m512 {
    let z = _mm512_mul_ps(x, splat(FRAC_1_SQRT_2));
    let az = _mm512_abs_ps(z);
    let c = erfc_nr(az);
    let positive = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(z, _mm512_setzero_ps());
    let large = _mm512_mask_blend_ps(positive, c, _mm512_sub_ps(splat(2.0), c));
    let small = _mm512_add_ps(splat(1.0), erf_series(z));
    let is_small = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(az, splat(ERF_SMALL));
    let one_plus_erf = _mm512_mask_blend_ps(is_small, large, small);
    _mm512_mul_ps(_mm512_mul_ps(splat(0.5), x), one_plus_erf)
}

/// `x / (1 + e^−2u)`, `2u = x·(k0 + k1·x²)`: GELU's tanh form.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn gelu_tanh(x: __m512) -> __m512 {
    let inner = _mm512_fmadd_ps(
        _mm512_mul_ps(x, x),
        splat(GELU_TANH_K1),
        splat(GELU_TANH_K0),
    );
    let minus_2u = _mm512_mul_ps(negate(x), inner);
    _mm512_div_ps(x, _mm512_add_ps(splat(1.0), exp(minus_2u)))
}

/// `activation` on sixteen lanes: the transcendental ones here, the others by the epilogues' own
/// `activate512` (which sends the transcendental ones here).
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn activate(activation: Activation, x: __m512) -> __m512 {
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
            crate::kernels::gemm::x86_64::avx512::activate512(activation, x)
        }
    }
}
