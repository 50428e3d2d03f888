//! The `--device` part of an emitted CLI whose crate embeds the CUDA model: which device the
//! arguments ask for, and the whole run on the GPU (read `.npy`, forward, write, `--bench`).

use proc_macro2::TokenStream;
use quote::quote;

use super::Target;

/// The pieces `back::rust`'s CLI splices in for a CUDA target; all empty for [`Target::Cpu`].
#[derive(Default)]
pub struct CliTokens {
    /// Appended to the usage line: `[--device cpu|cuda]` and the compiled-in default.
    pub usage: String,
    /// Items: `run_cuda`.
    pub items: TokenStream,
    /// `parse_args`: the `device` local with its default, before the loop.
    pub parse_init: TokenStream,
    /// `parse_args`: the match arm that takes `--device D`.
    pub parse_arm: TokenStream,
    /// The `Args` field (`device: String,`) and its initialiser (`device,`).
    pub field: TokenStream,
    pub field_init: TokenStream,
    /// The statement starting `run()` that dispatches on `args.device`.
    pub dispatch: TokenStream,
}

pub fn cli_tokens(lib: &syn::Ident, target: Target) -> CliTokens {
    if !target.has_cuda() {
        return CliTokens::default();
    }
    let default = if target == Target::Cuda {
        "cuda"
    } else {
        "cpu"
    };
    let items = quote! {
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
    CliTokens {
        usage: format!(" [--device cpu|cuda (default {default})]"),
        items,
        parse_init: quote! { let mut device = #default.to_string(); },
        parse_arm: quote! { "--device" => device = value("--device")?, },
        field: quote! { device: String, },
        field_init: quote! { device, },
        dispatch: quote! {
            match args.device.as_str() {
                "cuda" => return run_cuda(&args),
                "cpu" => {}
                other => return Err(fail(2, format!("--device takes `cpu` or `cuda`, not `{other}`\n{USAGE}"))),
            }
        },
    }
}
