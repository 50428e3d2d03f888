//! The elementwise loops on eight lanes (AVX2 + FMA).

use std::arch::x86_64::*;

use super::BinaryKind;
use crate::kernels::Activation;
use crate::kernels::math::avx2 as math;

/// `y[i] = f(x[i])`; the tail through a zero-padded vector.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn each(x: &[f32], y: &mut [f32], f: impl Fn(__m256) -> __m256) {
    let n = x.len().min(y.len());
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: `i + 8 ≤ n` floats of both slices.
        unsafe { _mm256_storeu_ps(y.as_mut_ptr().add(i), f(_mm256_loadu_ps(x.as_ptr().add(i)))) };
        i += 8;
    }
    if i < n {
        let mut tail = [0.0f32; 8];
        tail[..n - i].copy_from_slice(&x[i..n]);
        // SAFETY: `tail` holds 8 floats.
        unsafe { _mm256_storeu_ps(tail.as_mut_ptr(), f(_mm256_loadu_ps(tail.as_ptr()))) };
        y[i..n].copy_from_slice(&tail[..n - i]);
    }
}

/// `y[i] = f(a[i], b[i])`; the tail through zero-padded vectors.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn each2(a: &[f32], b: &[f32], y: &mut [f32], f: impl Fn(__m256, __m256) -> __m256) {
    let n = a.len().min(b.len()).min(y.len());
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: `i + 8 ≤ n` floats of all three slices.
        unsafe {
            let v = f(
                _mm256_loadu_ps(a.as_ptr().add(i)),
                _mm256_loadu_ps(b.as_ptr().add(i)),
            );
            _mm256_storeu_ps(y.as_mut_ptr().add(i), v);
        }
        i += 8;
    }
    if i < n {
        let (mut ta, mut tb) = ([0.0f32; 8], [0.0f32; 8]);
        ta[..n - i].copy_from_slice(&a[i..n]);
        tb[..n - i].copy_from_slice(&b[i..n]);
        // SAFETY: `ta` and `tb` hold 8 floats.
        unsafe {
            let v = f(_mm256_loadu_ps(ta.as_ptr()), _mm256_loadu_ps(tb.as_ptr()));
            _mm256_storeu_ps(ta.as_mut_ptr(), v);
        }
        y[i..n].copy_from_slice(&ta[..n - i]);
    }
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn op(kind: BinaryKind, a: __m256, b: __m256) -> __m256 {
    match kind {
        BinaryKind::Add => _mm256_add_ps(a, b),
        BinaryKind::Sub => _mm256_sub_ps(a, b),
        BinaryKind::Mul => _mm256_mul_ps(a, b),
        BinaryKind::Div => _mm256_div_ps(a, b),
    }
}

/// `y = act(x)`, one loop per activation so that its math inlines.
#[target_feature(enable = "avx2,fma")]
pub(super) fn map(activation: Activation, x: &[f32], y: &mut [f32]) {
    match activation {
        Activation::Sigmoid => each(x, y, |v| math::sigmoid(v)),
        Activation::Tanh => each(x, y, |v| math::tanh(v)),
        Activation::Silu => each(x, y, |v| math::silu(v)),
        Activation::Elu { alpha } => each(x, y, |v| math::elu(v, alpha)),
        Activation::Gelu => each(x, y, |v| math::gelu(v)),
        Activation::GeluTanh => each(x, y, |v| math::gelu_tanh(v)),
        Activation::Erf => each(x, y, |v| math::erf(v)),
        Activation::None => y.copy_from_slice(x),
        _ => each(x, y, |v| math::activate(activation, v)),
    }
}

/// `y = act(a ∘ b)`.
#[target_feature(enable = "avx2,fma")]
pub(super) fn zip(kind: BinaryKind, activation: Activation, a: &[f32], b: &[f32], y: &mut [f32]) {
    match (kind, activation) {
        (BinaryKind::Add, Activation::None) => each2(a, b, y, |u, v| _mm256_add_ps(u, v)),
        (BinaryKind::Sub, Activation::None) => each2(a, b, y, |u, v| _mm256_sub_ps(u, v)),
        (BinaryKind::Mul, Activation::None) => each2(a, b, y, |u, v| _mm256_mul_ps(u, v)),
        (BinaryKind::Div, Activation::None) => each2(a, b, y, |u, v| _mm256_div_ps(u, v)),
        (BinaryKind::Add, Activation::Relu) => each2(a, b, y, |u, v| {
            _mm256_max_ps(_mm256_setzero_ps(), _mm256_add_ps(u, v))
        }),
        _ => each2(a, b, y, |u, v| math::activate(activation, op(kind, u, v))),
    }
}

/// `y = x ∘ s`, or `s ∘ x` if `scalar_first`.
#[target_feature(enable = "avx2,fma")]
pub(super) fn scalar(kind: BinaryKind, x: &[f32], s: f32, scalar_first: bool, y: &mut [f32]) {
    let s = _mm256_set1_ps(s);
    match (kind, scalar_first) {
        (BinaryKind::Add, _) => each(x, y, |v| _mm256_add_ps(v, s)),
        (BinaryKind::Mul, _) => each(x, y, |v| _mm256_mul_ps(v, s)),
        (_, false) => each(x, y, |v| op(kind, v, s)),
        (_, true) => each(x, y, |v| op(kind, s, v)),
    }
}

/// `y = act(x · s + b)`, the product rounded before the sum (as the reference computes it).
#[target_feature(enable = "avx2,fma")]
pub(super) fn affine(activation: Activation, x: &[f32], s: f32, b: f32, y: &mut [f32]) {
    let (s, b) = (_mm256_set1_ps(s), _mm256_set1_ps(b));
    match activation {
        Activation::None => each(x, y, |v| _mm256_add_ps(_mm256_mul_ps(v, s), b)),
        _ => each(x, y, |v| {
            math::activate(activation, _mm256_add_ps(_mm256_mul_ps(v, s), b))
        }),
    }
}
