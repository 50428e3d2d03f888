//! GPU benchmark of the CUDA back end: ResNeXt-50 (`RESNEXT_MODELS`, else the small test model)
//! latency and throughput at batch 1/8/64/256 with CUDA graphs, and each grouped conv's kernel time.
//!
//! `cargo bench -p resnext-compiler --bench cuda`; prints why it skips where there is no GPU.

use std::path::PathBuf;
use std::time::Instant;

use resnext_compiler::back::cuda;
use resnext_compiler::front::onnx;
use resnext_compiler::ir::{self, Op};
use resnext_compiler::passes::{self, PassOptions};
use resnext_runtime_core::cuda::runner::CudaModel;

fn main() {
    if let Err(e) = resnext_runtime_core::cuda::runner::available() {
        eprintln!("skipping the CUDA benchmark: {e}");
        return;
    }
    let (dir, stem) = match std::env::var_os("RESNEXT_MODELS") {
        // Cargo runs benches in the package directory: a relative path means the workspace root.
        Some(d) => (
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(d),
            "resnext50_32x4d_bn",
        ),
        None => {
            eprintln!("RESNEXT_MODELS not set: benchmarking the small test model");
            (
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata"),
                "resnext_small_8x4d_bn",
            )
        }
    };
    let mut graph = onnx::load(&dir.join(format!("{stem}.onnx"))).expect("load the model");
    let opts = PassOptions {
        select_kernels: false,
        ..PassOptions::default()
    };
    passes::optimize(&mut graph, &opts).expect("passes");
    let info = ir::validate(&graph).expect("valid");
    let emitted = cuda::emit(&graph, &info, &cuda::Options::default()).expect("emit");
    let tmp = tempfile::tempdir().expect("temp dir");
    let weights = tmp.path().join("model.cuda.weights");
    emitted.write_weights(&weights).expect("weights");
    let started = Instant::now();
    let mut model = CudaModel::load(
        &emitted.source,
        &emitted.plan.to_text(),
        &weights,
        emitted.model_hash,
        0,
    )
    .expect("load on the GPU");
    eprintln!(
        "load (NVRTC or PTX cache, upload): {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    model.set_graphs(true);
    let item = emitted.plan.input_len_per_item;
    println!("| batch | median ms | images/s |");
    println!("| ---: | ---: | ---: |");
    for batch in [1usize, 8, 64, 256] {
        let input: Vec<f32> = (0..batch * item)
            .map(|i| ((i % 97) as f32 - 48.0) / 48.0)
            .collect();
        let runs = if batch >= 64 { 10 } else { 50 };
        for _ in 0..3 {
            model.forward(&input, batch).expect("forward");
        }
        let mut times: Vec<f64> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                model.forward(&input, batch).expect("forward");
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let median = times[runs / 2];
        println!(
            "| {batch} | {median:.3} | {:.0} |",
            batch as f64 / median * 1e3
        );
    }
    // Grouped conv layers: the kernels cuDNN is weakest on.
    let grouped: std::collections::HashSet<String> = info
        .order()
        .iter()
        .map(|&id| graph.node(id))
        .filter(|n| matches!(&n.op, Op::Conv(c) if c.group > 1))
        .map(|n| n.name.clone())
        .collect();
    for batch in [1usize, 64] {
        let input: Vec<f32> = (0..batch * item)
            .map(|i| ((i % 89) as f32 - 44.0) / 44.0)
            .collect();
        let times = model.layer_times(&input, batch, 20).expect("layer times");
        println!("\ngrouped convs, batch {batch}: | node | µs |");
        for (node, ms) in times.iter().filter(|(n, _)| grouped.contains(n)) {
            println!("| {node} | {:.1} |", ms * 1e3);
        }
    }
}
