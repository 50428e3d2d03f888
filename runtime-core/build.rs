//! Probes the build host's CPU for the kernel tiers' features and sets `host_avx2`,
//! `host_avx512` and `host_avx512bf16`, which only the tests read: a test of a tier the CPU lacks is reported as
//! ignored (`#[cfg_attr(not(host_avx512), ignore = "CPU lacks AVX-512")]`) instead of passing
//! without running. The conditions are those of `resnext_runtime_core::exec::isa::Isa::supported`.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!(
        "cargo::rustc-check-cfg=cfg(host_avx2, host_avx512, host_avx512bf16, host_avx512vnni)"
    );
    // A build script runs on the build host; the probe describes the target only when they match.
    let native = std::env::var("TARGET").ok() == std::env::var("HOST").ok();
    #[cfg(target_arch = "x86_64")]
    if native {
        let avx2 = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
        if avx2 {
            println!("cargo::rustc-cfg=host_avx2");
        }
        if avx2 && std::is_x86_feature_detected!("avx512f") {
            println!("cargo::rustc-cfg=host_avx512");
            // The bf16 GEMM's `vdpbf16ps` path (`gemm::bf16::dot_supported`).
            if std::is_x86_feature_detected!("avx512bf16")
                && std::is_x86_feature_detected!("avx512bw")
            {
                println!("cargo::rustc-cfg=host_avx512bf16");
            }
            // The int8 kernels' VNNI path, which the AVX-512 tier takes where the CPU has it.
            if std::is_x86_feature_detected!("avx512vnni")
                && std::is_x86_feature_detected!("avx512bw")
            {
                println!("cargo::rustc-cfg=host_avx512vnni");
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = native;
}
