//! Runs the small ResNeXt compiled by `build.rs` on a batch of images from an `.npy` file and prints
//! the top classes of each: `cargo run -p resnext-examples --release [-- INPUT.npy]`.

// A generated module has more API than one program uses.
#[allow(dead_code)]
mod resnext_small {
    include!(concat!(env!("OUT_DIR"), "/resnext_small.rs"));
}

use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let input = std::env::args().nth(1).unwrap_or_else(|| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../testdata/resnext_small_8x4d_bn.input.npy"
        )
        .to_string()
    });
    let model = resnext_small::Model::load(resnext_small::WEIGHTS_PATH)?;
    let (shape, data) = resnext_runtime::formats::npy::read_f32(&input)?;
    let batch = match shape.split_first() {
        Some((&n, item)) if item == resnext_small::INPUT_SHAPE => n,
        _ => return Err(format!("{input}: shape {shape:?} is not [N, 3, 64, 64]").into()),
    };
    let logits = model.forward(&data, batch)?;
    let classes: usize = resnext_small::OUTPUT_SHAPE.iter().product();
    for (i, row) in logits.chunks_exact(classes).enumerate() {
        let mut ranked: Vec<(usize, f32)> = row.iter().copied().enumerate().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        let top: Vec<String> = ranked
            .iter()
            .take(3)
            .map(|(c, l)| format!("class {c} ({l:+.4})"))
            .collect();
        println!("image {i}: {}", top.join(", "));
    }
    Ok(())
}
