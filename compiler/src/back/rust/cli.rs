//! The emitted `main.rs`: a dependency-free CLI that runs the model on an `.npy` batch and writes the
//! logits, with `--bench N` timing N runs after warm-up and printing `median_ms=<x>` last (and, with
//! `RESNEXT_PROFILE=1`, the time of every layer on stderr).

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

/// `main.rs` of a crate whose library is `lib` and whose model struct is `model`.
/// With a CUDA `target`, the CLI also takes `--device cpu|cuda` (see `back::cuda::cli_tokens`).
pub(super) fn main_tokens(
    lib: &syn::Ident,
    model: &str,
    target: crate::back::cuda::Target,
) -> TokenStream {
    let model = format_ident!("{}", model);
    let cuda = crate::back::cuda::cli_tokens(lib, target);
    let usage = format!(
        "usage: INPUT.npy OUTPUT.npy [--bench N] [--threads T] [--weights PATH]{}",
        cuda.usage
    );
    let crate::back::cuda::CliTokens {
        items: cuda_items,
        parse_init,
        parse_arm,
        field,
        field_init,
        dispatch: cuda_dispatch,
        ..
    } = cuda;
    quote! {
        use std::process::ExitCode;
        use std::time::Instant;

        use #lib::{#model, INPUT_SHAPE, OUTPUT_SHAPE, WEIGHTS_PATH};

        const USAGE: &str = #usage;

        /// A failure and its exit code: 1 bad input or model, 2 usage, 3 I/O.
        struct Failure {
            code: u8,
            message: String,
        }

        fn fail(code: u8, message: impl ToString) -> Failure {
            Failure { code, message: message.to_string() }
        }

        struct Args {
            input: String,
            output: String,
            bench: Option<usize>,
            threads: Option<usize>,
            weights: String,
            #field
        }

        fn parse_args() -> Result<Args, Failure> {
            let mut positional = Vec::new();
            let (mut bench, mut threads, mut weights) = (None, None, WEIGHTS_PATH.to_string());
            #parse_init
            let mut args = std::env::args().skip(1);
            while let Some(arg) = args.next() {
                let mut value = |flag: &str| {
                    args.next().ok_or_else(|| fail(2, format!("{flag} needs a value\n{USAGE}")))
                };
                let count = |flag: &str, v: String| {
                    v.parse::<usize>()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or_else(|| fail(2, format!("{flag} takes a positive integer, not `{v}`")))
                };
                match arg.as_str() {
                    "--bench" => bench = Some(count("--bench", value("--bench")?)?),
                    "--threads" => threads = Some(count("--threads", value("--threads")?)?),
                    "--weights" => weights = value("--weights")?,
                    #parse_arm
                    "-h" | "--help" => return Err(fail(0, USAGE)),
                    flag if flag.starts_with("--") => {
                        return Err(fail(2, format!("unknown option `{flag}`\n{USAGE}")));
                    }
                    _ => positional.push(arg),
                }
            }
            let [input, output]: [String; 2] = positional
                .try_into()
                .map_err(|_| fail(2, USAGE))?;
            Ok(Args { input, output, bench, threads, weights, #field_init })
        }

        fn run() -> Result<(), Failure> {
            let args = parse_args()?;
            #cuda_dispatch
            let mut model = #model::load(&args.weights).map_err(|e| {
                let code = if matches!(e, ::resnext_runtime::LoadError::Io { .. }) { 3 } else { 1 };
                fail(code, e)
            })?;
            if let Some(t) = args.threads {
                model.set_threads(t);
            }
            let (data, batch) = read_input(&args.input)?;
            let logits = model.forward(&data, batch).map_err(|e| fail(1, e))?;
            write_output(&args.output, batch, &logits)?;
            if let Some(runs) = args.bench {
                let mut output = vec![0.0f32; logits.len()];
                let times = time_runs(runs, || {
                    model.forward_into(&data, batch, &mut output).map_err(|e| fail(1, e))
                })?;
                print_bench("", batch, &times);
            }
            Ok(())
        }

        /// Reads an `.npy` batch laid out as `[batch, INPUT_SHAPE..]`; returns the data and the batch.
        fn read_input(path: &str) -> Result<(Vec<f32>, usize), Failure> {
            let (shape, data) = ::resnext_runtime::formats::npy::read_f32(path).map_err(|e| {
                let code = if matches!(e, ::resnext_runtime::formats::npy::NpyError::Io { .. }) { 3 } else { 1 };
                fail(code, e)
            })?;
            match shape.split_first() {
                Some((&batch, item)) if item == INPUT_SHAPE => Ok((data, batch)),
                _ => Err(fail(1, format!(
                    "{path}: shape {shape:?} is not [batch, {}]",
                    INPUT_SHAPE.map(|d| d.to_string()).join(", ")
                ))),
            }
        }

        /// Writes `batch` items of logits as `[batch, OUTPUT_SHAPE..]`.
        fn write_output(path: &str, batch: usize, logits: &[f32]) -> Result<(), Failure> {
            let mut out_shape = vec![batch];
            out_shape.extend(OUTPUT_SHAPE);
            ::resnext_runtime::formats::npy::write_f32(path, &out_shape, logits).map_err(|e| fail(3, e))
        }

        /// Runs `step` up to 3 times to warm up, then `runs` times timed; the times in ms, sorted.
        /// Per-layer profile sums (`RESNEXT_PROFILE=1`) start after the warm-up.
        fn time_runs(runs: usize, mut step: impl FnMut() -> Result<(), Failure>) -> Result<Vec<f64>, Failure> {
            for _ in 0..runs.clamp(1, 3) {
                step()?;
            }
            ::resnext_runtime::exec::profile::reset();
            let mut times = Vec::with_capacity(runs);
            for _ in 0..runs {
                let start = Instant::now();
                step()?;
                times.push(start.elapsed().as_secs_f64() * 1e3);
            }
            times.sort_by(f64::total_cmp);
            Ok(times)
        }

        /// Prints `{prefix}batch= runs= min_ms= max_ms=`, the profile table if on, and
        /// `median_ms=` last.
        fn print_bench(prefix: &str, batch: usize, times: &[f64]) {
            let runs = times.len();
            let median = if runs % 2 == 1 {
                times[runs / 2]
            } else {
                (times[runs / 2 - 1] + times[runs / 2]) / 2.0
            };
            println!("{prefix}batch={batch} runs={runs} min_ms={:.3} max_ms={:.3}", times[0], times[runs - 1]);
            if ::resnext_runtime::exec::profile::enabled() {
                eprint!("{}", ::resnext_runtime::exec::profile::report());
            }
            println!("median_ms={median:.3}");
        }

        #cuda_items

        fn main() -> ExitCode {
            match run() {
                Ok(()) => ExitCode::SUCCESS,
                Err(Failure { code: 0, message }) => {
                    println!("{message}");
                    ExitCode::SUCCESS
                }
                Err(Failure { code, message }) => {
                    eprintln!("error: {message}");
                    ExitCode::from(code)
                }
            }
        }
    }
}
