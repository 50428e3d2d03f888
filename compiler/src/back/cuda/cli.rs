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
            let (data, batch) = read_input(&args.input)?;
            let logits = model.forward(&data, batch).map_err(|e| fail(1, e))?;
            write_output(&args.output, batch, &logits)?;
            if let Some(runs) = args.bench {
                let times = time_runs(runs, || model.forward(&data, batch).map(drop).map_err(|e| fail(1, e)))?;
                print_bench("device=cuda ", batch, &times);
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
