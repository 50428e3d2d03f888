//! Declaring models with `resnext!`: the generated type reads exactly the PyTorch state_dict's tensors
//! (the file written by PyTorch is the oracle) and reports every mismatch of a wrong file at once.

use std::path::{Path, PathBuf};

resnext_macros::resnext! {
    /// The shared small test network: torchvision ResNeXt 8×4d with one block per stage.
    pub model Small {
        input: [3, 64, 64],
        stages: [1, 1, 1, 1],
        cardinality: 8,
        width: 4,
        classes: 10,
    }
}

resnext_macros::resnext! {
    /// ResNeXt-50 (32×4d), the paper's Table 1, with the total width instead of `width`.
    pub model ResNeXt50 {
        input: [3, 224, 224],
        stages: [3, 4, 6, 3],
        cardinality: 32,
        bottleneck: 128,
        classes: 1000,
        stem: imagenet,
        bn_epsilon: 1e-5,
    }
}

resnext_macros::resnext! {
    /// The paper's CIFAR ResNeXt-29 (8×64d).
    model ResNeXt29 {
        input: [3, 32, 32],
        stages: [3, 3, 3],
        cardinality: 8,
        width: 64,
        classes: 10,
        stem: cifar,
    }
}

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata")
        .join(name)
}

#[test]
fn small_loads_the_pytorch_state_dict() {
    let path = testdata("resnext_small_8x4d.safetensors");
    let model = Small::load_safetensors(&path).expect("loads");
    let dict = resnext_runtime::safetensors::StateDict::open(&path).unwrap();
    let file_keys: Vec<_> = dict
        .keys()
        .filter(|k| !resnext_runtime::safetensors::is_bookkeeping(k))
        .collect();
    assert_eq!(Small::STATE_DICT.len(), file_keys.len());
    let fc = model.tensor("fc.weight").unwrap();
    assert_eq!(fc, dict.tensor("fc.weight").unwrap().as_slice());
    assert_eq!(Small::INPUT_SHAPE, [3, 64, 64]);
    assert_eq!(Small::CLASSES, 10);
}

#[test]
fn a_wrong_state_dict_lists_every_mismatch() {
    let err = ResNeXt50::load_safetensors(testdata("resnext_small_8x4d.safetensors"))
        .err()
        .expect("the small network's weights do not fit ResNeXt-50")
        .to_string();
    assert!(
        err.contains("missing") && err.contains("layer3.5.conv2.weight"),
        "{err}"
    );
    assert!(
        err.contains("fc.weight is [10, 2048], expected [1000, 2048]"),
        "{err}"
    );
    assert!(ResNeXt29::load_safetensors("/nonexistent.safetensors").is_err());
}

#[test]
fn resnext50_loads_torchvision_weights() {
    let Some(dir) = std::env::var_os("RESNEXT_MODELS") else {
        eprintln!("skipping: RESNEXT_MODELS not set");
        return;
    };
    let path = PathBuf::from(dir).join("resnext50_32x4d.safetensors");
    ResNeXt50::load_safetensors(path).expect("torchvision resnext50_32x4d loads");
}

#[test]
fn random_weights_are_deterministic_and_plausible() {
    let (a, b, c) = (Small::random(1), Small::random(1), Small::random(2));
    let key = "layer2.0.conv2.weight";
    assert_eq!(a.tensor(key), b.tensor(key));
    assert_ne!(a.tensor(key), c.tensor(key));
    let var = a.tensor("bn1.running_var").unwrap();
    assert!(var.iter().all(|&v| (0.5..=1.5).contains(&v)));
}
