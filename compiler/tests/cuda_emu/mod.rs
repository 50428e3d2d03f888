//! Runs a model emitted by `back::cuda` on the CPU: its CUDA C source is compiled by g++ over
//! `cuda_emu.h` with a `main` generated from the launch plan, and run on raw f32 files.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use resnext_runtime_core::cuda::plan::{Buf, CudaPlan};

/// The C++ compiler (`CXX`, else `g++`). The emulation tests need one: without it they fail.
pub fn compiler() -> String {
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "g++".into());
    match Command::new(&cxx).arg("--version").output() {
        Ok(o) if o.status.success() => cxx,
        _ => panic!("no C++ compiler (`{cxx}`, set CXX) to emulate the CUDA kernels"),
    }
}

fn pointer(b: Buf) -> String {
    match b {
        Buf::Null => "nullptr".into(),
        Buf::Input => "input.data()".into(),
        Buf::Arena(o) => format!("arena.data() + (size_t)batch * {o}"),
        Buf::Weight(o) => format!("weights.data() + {o}"),
    }
}

/// The harness: reads `weights.bin` and `input.bin`, runs every launch, writes `output.bin`.
fn harness(plan: &CudaPlan, batch: usize) -> String {
    let mut s = String::from(
        "#include \"cuda_emu.h\"\n#include \"model.cu\"\n#include <limits>\n\n\
         static std::vector<float> read(const char* path, size_t n) {\n  \
         std::vector<float> v(n);\n  FILE* f = std::fopen(path, \"rb\");\n  \
         if (!f || std::fread(v.data(), 4, n, f) != n) { std::fprintf(stderr, \"cannot read %s\\n\", path); std::exit(3); }\n  \
         std::fclose(f);\n  return v;\n}\n\nint main() {\n",
    );
    let _ = writeln!(s, "  const int batch = {batch};");
    let _ = writeln!(
        s,
        "  std::vector<float> weights = read(\"weights.bin\", {});",
        plan.weights_len
    );
    let _ = writeln!(
        s,
        "  std::vector<float> input = read(\"input.bin\", (size_t)batch * {});",
        plan.input_len_per_item
    );
    // NaN everywhere, so a kernel reading a value nobody wrote shows in the output.
    let _ = writeln!(
        s,
        "  std::vector<float> arena((size_t)batch * {}, std::numeric_limits<float>::quiet_NaN());",
        plan.arena_len_per_item
    );
    for l in &plan.launches {
        let g: Vec<u32> = l
            .grid
            .iter()
            .map(|e| e.eval(batch).expect("grid fits u32"))
            .collect();
        let args: Vec<String> = l.args.iter().map(|&a| pointer(a)).collect();
        let _ = writeln!(
            s,
            "  rx_emu::launch(\"{k}\", {k}, {{{}, {}, {}}}, {{{}, {}, {}}}, {}, batch);",
            g[0],
            g[1],
            g[2],
            l.block[0],
            l.block[1],
            l.block[2],
            args.join(", "),
            k = l.kernel
        );
    }
    let _ = writeln!(
        s,
        "  FILE* out = std::fopen(\"output.bin\", \"wb\");\n  \
         std::fwrite(arena.data() + (size_t)batch * {}, 4, (size_t)batch * {}, out);\n  \
         std::fclose(out);\n  return 0;\n}}",
        plan.output.0, plan.output.1
    );
    s
}

fn write_f32(path: &Path, data: &[f32]) {
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).expect("write f32 file");
}

/// Compiles `source` + the harness in a temp dir with `cxx`, runs it and returns the output.
pub fn run(
    cxx: &str,
    source: &str,
    plan: &CudaPlan,
    weights: &[f32],
    input: &[f32],
    batch: usize,
) -> Vec<f32> {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let header = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/cuda_emu/cuda_emu.h");
    std::fs::copy(header, d.join("cuda_emu.h")).expect("copy header");
    std::fs::write(d.join("model.cu"), source).expect("write source");
    std::fs::write(d.join("main.cpp"), harness(plan, batch)).expect("write harness");
    write_f32(&d.join("weights.bin"), weights);
    write_f32(&d.join("input.bin"), input);
    let started = std::time::Instant::now();
    let mut cmd = Command::new(cxx);
    cmd.current_dir(d).args([
        "-std=c++17",
        "-O2",
        "-Wall",
        "-Wno-unknown-pragmas",
        "-Werror",
    ]);
    if cfg!(target_arch = "x86_64") {
        // The fibers switch stacks by hand (`rx_emu_switch`), which a CET shadow stack would
        // reject: do not mark the program as shadow-stack compatible.
        cmd.arg("-fcf-protection=none");
    }
    let out = cmd
        .args(["-x", "c++", "main.cpp", "-o", "emu"])
        .output()
        .expect("run the C++ compiler");
    assert!(
        out.status.success(),
        "g++ rejects the generated CUDA source:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let compiled = started.elapsed();
    let run = Command::new(d.join("emu"))
        .current_dir(d)
        .output()
        .expect("run the emulation");
    assert!(
        run.status.success(),
        "the emulation failed ({}):\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    eprintln!(
        "emulation: {cxx} {:.1} s, run {:.1} s",
        compiled.as_secs_f64(),
        (started.elapsed() - compiled).as_secs_f64()
    );
    let bytes = std::fs::read(d.join("output.bin")).expect("read output");
    assert_eq!(bytes.len(), 4 * batch * plan.output.1, "output length");
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}
