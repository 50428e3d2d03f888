//! The `resnext!` path of the Rust back end: a DSL graph with deferred weights emits the same code as
//! the same graph with its state_dict loaded (what `resnextc` would emit), only the weights differ.

use std::path::Path;

use resnext_compiler::back::rust as back_rust;
use resnext_compiler::driver;
use resnext_compiler::front::dsl::{self, ModelSpec};
use resnext_compiler::passes::{LayoutChoice, PassOptions};
use resnext_runtime_core::formats::safetensors::StateDict;

/// On both activation layouts (`auto` picks one per machine; the NCHW8c kernels' weights are
/// packed at load time from the recipes too).
#[test]
fn deferred_weights_emit_the_same_code_as_loaded_weights() {
    for (layout, blocked) in [(LayoutChoice::Nchw8c, true), (LayoutChoice::Nchw, false)] {
        let items = same_code(layout);
        assert_eq!(items.contains("PointwiseNchw8c"), blocked, "{layout:?}");
    }
}

/// Emits the small ResNeXt both ways on `layout`, checks the code is the same; returns it.
fn same_code(layout: LayoutChoice) -> String {
    let spec = ModelSpec::new("Small", [3, 64, 64], vec![1, 1, 1, 1], 8, 4, 10);
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/resnext_small_8x4d.safetensors");
    let dict = StateDict::open(&path).expect("state_dict opens");
    let mut loaded = dsl::build(&spec).expect("spec builds");
    dsl::load_weights(&mut loaded, |key, _| {
        dict.tensor(key).map_err(|e| e.to_string())
    })
    .expect("weights load");
    let deferred = dsl::build(&spec).expect("spec builds");

    let compile_options = driver::Options {
        passes: Some(PassOptions {
            layout,
            ..PassOptions::default()
        }),
        ..driver::Options::default()
    };
    let loaded = driver::compile(loaded, &compile_options).expect("compiles");
    let deferred = driver::compile(deferred, &compile_options).expect("compiles");
    let plain = back_rust::emit(&loaded.graph, &loaded.info, &back_rust::Options::default())
        .expect("emits");
    assert!(matches!(
        back_rust::emit(
            &deferred.graph,
            &deferred.info,
            &back_rust::Options::default()
        ),
        Err(back_rust::Error::NoWeightData { .. })
    ));
    let options = back_rust::Options {
        deferred_weights: true,
        ..back_rust::Options::default()
    };
    let macro_side = back_rust::emit(&deferred.graph, &deferred.info, &options).expect("emits");
    assert_eq!(macro_side.weight_order.len(), plain.weight_order.len());
    let without_hash = |code: &str| -> String {
        code.lines()
            .filter(|l| !l.contains("MODEL_HASH: u64"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        without_hash(&macro_side.items_rs),
        without_hash(&plain.items_rs)
    );
    assert!(plain.lib_rs.contains(&plain.items_rs));
    plain.items_rs
}
