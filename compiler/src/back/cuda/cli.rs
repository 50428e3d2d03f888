//! The `--device` part of an emitted CLI whose crate embeds the CUDA model: which device the
//! arguments ask for, and the whole run on the GPU (read `.npy`, forward, write, `--bench`).

use proc_macro2::TokenStream;
use quote::quote;

use super::Target;

/// The pieces `back::rust`'s CLI splices in for a CUDA target: items (`requested_device`,
/// `run_cuda`), the statement starting `run()` that dispatches on the device, and the
/// `parse_args` match arm that accepts `--device D`. All empty for [`Target::Cpu`].
pub fn cli_tokens(lib: &syn::Ident, target: Target) -> (TokenStream, TokenStream, TokenStream) {
    if !target.has_cuda() {
        return (TokenStream::new(), TokenStream::new(), TokenStream::new());
    }
    let default = if target == Target::Cuda {
        "cuda"
    } else {
        "cpu"
    };
    let items = quote! {
        /// The `--device` the arguments name (the crate was compiled with a default).
        fn requested_device() -> String {
            let args: Vec<String> = std::env::args().collect();
            args.windows(2)
                .rev()
                .find(|w| w[0] == "--device")
                .map(|w| w[1].clone())
                .unwrap_or_else(|| #default.to_string())
        }

        /// The whole run on GPU 0: `--threads` does not apply; `--weights` names the GPU weights.
        fn run_cuda(args: &Args) -> Result<(), Failure> {
            let weights = if args.weights == WEIGHTS_PATH { #lib::cuda::WEIGHTS_PATH.to_string() } else { args.weights.clone() };
            let mut model = #lib::cuda::load(&weights, 0).map_err(|e| fail(1, e))?;
            model.set_graphs(true);
            let (shape, data) = ::resnext_runtime::npy::read_f32(&args.input).map_err(|e| {
                let code = if matches!(e, ::resnext_runtime::npy::NpyError::Io { .. }) { 3 } else { 1 };
                fail(code, e)
            })?;
            let batch = match shape.split_first() {
                Some((&batch, item)) if item == INPUT_SHAPE => batch,
                _ => {
                    return Err(fail(1, format!(
                        "{}: shape {shape:?} is not [batch, {}]",
                        args.input,
                        INPUT_SHAPE.map(|d| d.to_string()).join(", ")
                    )));
                }
            };
            let logits = model.forward(&data, batch).map_err(|e| fail(1, e))?;
            let mut out_shape = vec![batch];
            out_shape.extend(OUTPUT_SHAPE);
            ::resnext_runtime::npy::write_f32(&args.output, &out_shape, &logits).map_err(|e| fail(3, e))?;
            if let Some(runs) = args.bench {
                for _ in 0..runs.clamp(1, 3) {
                    model.forward(&data, batch).map_err(|e| fail(1, e))?;
                }
                let mut times = Vec::with_capacity(runs);
                for _ in 0..runs {
                    let start = Instant::now();
                    model.forward(&data, batch).map_err(|e| fail(1, e))?;
                    times.push(start.elapsed().as_secs_f64() * 1e3);
                }
                times.sort_by(f64::total_cmp);
                println!("device=cuda batch={batch} runs={runs} min_ms={:.3} max_ms={:.3}", times[0], times[runs - 1]);
                println!("median_ms={:.3}", times[runs / 2]);
            }
            Ok(())
        }
    };
    let dispatch = quote! {
        match requested_device().as_str() {
            "cuda" => return run_cuda(&args),
            "cpu" => {}
            other => return Err(fail(2, format!("--device takes `cpu` or `cuda`, not `{other}`"))),
        }
    };
    let arm = quote! {
        "--device" => {
            value("--device")?;
        }
    };
    (items, dispatch, arm)
}
