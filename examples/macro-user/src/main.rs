//! `resnext-macro-user WEIGHTS.safetensors INPUT.npy OUTPUT.npy`: runs the declared model on a
//! batch from a `.npy` file and writes its logits to another.

use std::process::ExitCode;

use resnext_macro_user::Small;
use resnext_runtime::formats::npy;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [weights, input, output] = args.as_slice() else {
        eprintln!("usage: resnext-macro-user WEIGHTS.safetensors INPUT.npy OUTPUT.npy");
        return ExitCode::from(2);
    };
    match run(weights, input, output) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(weights: &str, input: &str, output: &str) -> Result<(), Box<dyn std::error::Error>> {
    let model = Small::load_safetensors(weights)?;
    let (shape, data) = npy::read_f32(input)?;
    let batch = shape
        .first()
        .copied()
        .ok_or("the input .npy has no batch dimension")?;
    let logits = model.forward(&data, batch)?;
    npy::write_f32(output, &[batch, Small::CLASSES], &logits)?;
    Ok(())
}
