//! Which SIMD tier the fast kernels use: detected once per process from the CPU, overridable with
//! `RESNEXT_ISA=generic|avx2|avx512` so tests can exercise every tier the machine supports.

use std::sync::OnceLock;

/// A kernel tier. Every tier reads the same prepacked weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Portable Rust, auto-vectorised at best.
    Generic,
    /// x86-64 AVX2 + FMA (256-bit).
    Avx2,
    /// x86-64 AVX-512F (512-bit), with AVX2 and FMA.
    Avx512,
}

impl Isa {
    pub fn name(self) -> &'static str {
        match self {
            Isa::Generic => "generic",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// Whether this CPU can run the tier.
    pub fn supported(self) -> bool {
        match self {
            Isa::Generic => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            // The AVX-512 tier also runs some AVX2+FMA kernels (narrow GEMM tiles).
            Isa::Avx512 => {
                is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The best supported tier.
    pub fn detect() -> Isa {
        [Isa::Avx512, Isa::Avx2]
            .into_iter()
            .find(|i| i.supported())
            .unwrap_or(Isa::Generic)
    }

    /// Every tier this CPU supports, best last.
    pub fn all_supported() -> Vec<Isa> {
        [Isa::Generic, Isa::Avx2, Isa::Avx512]
            .into_iter()
            .filter(|i| i.supported())
            .collect()
    }

    fn parse(s: &str) -> Option<Isa> {
        match s {
            "generic" => Some(Isa::Generic),
            "avx2" => Some(Isa::Avx2),
            "avx512" => Some(Isa::Avx512),
            _ => None,
        }
    }
}

/// The tier for this process: `RESNEXT_ISA` if set (an unsupported or unknown value falls back to
/// detection, with a warning on stderr), else the best the CPU has. Decided once; logged on stderr
/// when `RESNEXT_LOG` is set.
pub fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        let chosen = match std::env::var("RESNEXT_ISA") {
            Ok(v) => match Isa::parse(&v) {
                Some(i) if i.supported() => i,
                Some(i) => {
                    eprintln!("resnext-runtime: RESNEXT_ISA={v}: this CPU lacks {}; detecting", i.name());
                    Isa::detect()
                }
                None => {
                    eprintln!("resnext-runtime: RESNEXT_ISA={v} is not one of generic|avx2|avx512; detecting");
                    Isa::detect()
                }
            },
            Err(_) => Isa::detect(),
        };
        if std::env::var_os("RESNEXT_LOG").is_some() {
            eprintln!("resnext-runtime: kernels use {}", chosen.name());
        }
        chosen
    })
}
