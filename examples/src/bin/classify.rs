//! Classifies an image file with a ResNeXt-50 declared by `resnext!` and torchvision weights:
//! `cargo run -p resnext-examples --release --bin classify -- WEIGHTS.safetensors IMAGE [LABELS.txt]`.
//!
//! The image is preprocessed as torchvision's ImageNet models expect: shorter side resized to 256,
//! centre crop 224×224, RGB scaled to [0, 1] and normalised with the ImageNet mean and std. Prints
//! the top-5 class indices (and labels, one per line in LABELS.txt, if given) with softmax scores.

use std::process::ExitCode;

use image::imageops::FilterType;

resnext_runtime::resnext! {
    /// ResNeXt-50 (32×4d), the paper's Table 1; weights from torchvision's `resnext50_32x4d`.
    pub model ResNeXt50 {
        input: [3, 224, 224],
        stages: [3, 4, 6, 3],
        cardinality: 32,
        width: 4,
        classes: 1000,
    }
}

const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];

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
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (weights, image_path, labels) = match args.as_slice() {
        [w, i] => (w, i, None),
        [w, i, l] => (w, i, Some(l)),
        _ => return Err("usage: classify WEIGHTS.safetensors IMAGE [LABELS.txt]".into()),
    };
    let model = ResNeXt50::load_safetensors(weights)?;
    let input = preprocess(&image::open(image_path).map_err(|e| format!("{image_path}: {e}"))?);
    let logits = model.forward(&input, 1)?;
    let labels: Vec<String> = match labels {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("{path}: {e}"))?
            .lines()
            .map(str::to_string)
            .collect(),
        None => Vec::new(),
    };
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|&l| (l - max).exp()).sum();
    let mut ranked: Vec<(usize, f32)> = logits
        .iter()
        .map(|&l| (l - max).exp() / sum)
        .enumerate()
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (class, p) in ranked.into_iter().take(5) {
        let label = labels.get(class).map(String::as_str).unwrap_or("");
        println!("{class:>4}  {p:.4}  {label}");
    }
    Ok(())
}

/// Resize (shorter side 256, bilinear), centre-crop 224, normalise: a `[3, 224, 224]` CHW tensor.
fn preprocess(img: &image::DynamicImage) -> Vec<f32> {
    let (w, h) = (img.width().max(1), img.height().max(1));
    let scale = 256.0 / w.min(h) as f32;
    let (nw, nh) = (
        ((w as f32 * scale).round() as u32).max(224),
        ((h as f32 * scale).round() as u32).max(224),
    );
    let resized = img.resize_exact(nw, nh, FilterType::Triangle).to_rgb8();
    let (x0, y0) = ((nw - 224) / 2, (nh - 224) / 2);
    let mut out = vec![0.0f32; 3 * 224 * 224];
    for y in 0..224 {
        for x in 0..224 {
            let p = resized.get_pixel(x0 + x, y0 + y);
            for c in 0..3 {
                out[(c * 224 + y as usize) * 224 + x as usize] =
                    (p[c] as f32 / 255.0 - MEAN[c]) / STD[c];
            }
        }
    }
    out
}
