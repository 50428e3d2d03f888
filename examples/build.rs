//! Compiles the small ResNeXt test model into `OUT_DIR` with `resnext_compiler::Builder`, the way a
//! user's crate would, so `src/main.rs` can `include!` it.

fn main() {
    if let Err(e) = resnext_compiler::Builder::new("../testdata/resnext_small_8x4d_bn.onnx")
        .name("resnext_small")
        .compile()
    {
        // Show the whole cause chain: it names the node or file at fault.
        let mut message = format!("cannot compile the model: {e}");
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            message.push_str(&format!("\n  caused by: {cause}"));
            source = cause.source();
        }
        panic!("{message}");
    }
}
