//! x86-64 GEMM micro-kernels: AVX-512F (8 × 48 tiles in 24 zmm accumulators) and AVX2+FMA
//! (4 × 24 sub-tiles in 12 ymm accumulators), both reading the ISA-independent packed layouts.

pub(crate) mod amx;
pub(crate) mod avx2;
pub(crate) mod avx512;
