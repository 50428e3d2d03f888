//! What the int8 model tests share: the output's quantization step and the one-step criterion
//! against onnxruntime's output.

use resnext_compiler::ir;

/// The output's quantization step: the scale of the requantization (or `FakeQuant`) that ends the
/// optimised graph.
pub fn output_step(graph: &ir::Graph) -> f32 {
    let (id, _) = graph.outputs[0];
    match &graph.node(id).op {
        ir::Op::QConv(q) => match q.output {
            ir::quant::QConvOutput::Requant(f) => f.quant.scale,
            other => panic!("the last layer writes {other:?}, not a requantized value"),
        },
        ir::Op::FakeQuant(f) => f.quant.scale,
        op => panic!(
            "the output is computed by {}, not a quantized layer",
            op.name()
        ),
    }
}

/// Asserts `got` is within one output step of onnxruntime's output `want` (a NaN fails), and
/// prints the distance in steps, tagged `[tag] model (what)`.
pub fn assert_within_one_step(
    tag: &str,
    model: &str,
    what: &str,
    got: &[f32],
    want: &[f32],
    step: f32,
) {
    assert_eq!(got.len(), want.len(), "{model} ({what}): output length");
    let err = resnext_test_support::max_abs_diff(got, want);
    let steps = (err / step).round();
    eprintln!("[{tag}] {model} ({what}): max abs err {err:e} = {steps} output step(s) of {step:e}");
    assert!(
        err <= step * 1.001,
        "{model} ({what}): max abs err {err:e} is more than one output step {step:e}"
    );
}
