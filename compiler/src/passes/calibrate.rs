//! `calibrate`: static post-training quantization of an fp32 model, producing the IR the ONNX QDQ
//! import produces (`front/onnx/ops/quantize.rs`), so `fuse-requant`, `pack-int8` and the int8
//! kernels run on it unchanged.
//!
//! The fp32 graph (after `simplify` and `fold-batch-norm`) runs on the reference interpreter over
//! the calibration items, [`CALIBRATION_CHUNK`] at a time, recording the range of every value an
//! int8-capable layer reads: a conv or dense layer on the reference kernel, no fused epilogue, with
//! weights known at compile time and a shape `kernels::int8` takes. Each such value gets one u8
//! [`FakeQuant`] (shared by all its quantized readers) from its range, widened to hold 0 (ReLU
//! outputs and zero padding must be exact): `scale = (hi − lo) / 255`, `zero_point = round(−lo /
//! scale)`, as onnxruntime's `quantize_static` chooses uint8 activations. The range is the min-max
//! of the observed values ([`CalibrationMethod::MinMax`]) or, with
//! [`CalibrationMethod::Percentile`], their `p`-th and `(100 − p)`-th percentiles (a second pass
//! over the items fills a 4096-bin histogram per value between its min and max), which trades
//! clipping a few outliers for a finer step. Each layer becomes a [`QConv`] with symmetric int8
//! weights per output channel (`s_w[c] = max |w[c]| / 127`, values in −127..=127) and the int32
//! bias `round(b[c] / (s_x · s_w[c]))`; where that bias would not fit the kernels' i32 sums, `s_w[c]`
//! grows until it does. The layer writes real values (`QConvOutput::Float`); `fuse-requant` then
//! fuses a following ReLU and quantization as for a QDQ model. Every other layer stays fp32.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use resnext_runtime_core::formats::npy::{self, NpyError};
use resnext_runtime_core::kernels::int8;

use crate::interp::{self, InterpError};
use crate::ir::quant::{Codes, FakeQuant, QConv, QConvOutput, Quant, SumArith};
use crate::ir::{self, ConvKernel, DenseKernel, Epilogue, Graph, IrError, IrErrors, NodeId, Op};

/// Items the interpreter runs at once during calibration (bounds its memory, not the result).
pub const CALIBRATION_CHUNK: usize = 8;
/// Bins of the per-value histogram of [`CalibrationMethod::Percentile`].
const BINS: usize = 4096;
/// The largest weight magnitude of the symmetric int8 grid.
const WEIGHT_MAX: f32 = 127.0;

/// A batch of model inputs: `shape[0]` items of `shape[1..]`, C order (a `.npy` file's content).
#[derive(Clone, PartialEq)]
pub struct Samples {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
    /// Where they came from, for error messages (`None`: built in memory).
    pub source: Option<PathBuf>,
}

impl std::fmt::Debug for Samples {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Samples")
            .field("shape", &self.shape)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Samples {
    /// Items in memory; `shape`'s element count must be `data`'s length.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Samples, CalibrateError> {
        let expected: usize = shape.iter().product();
        if expected != data.len() {
            return Err(CalibrateError::Length {
                shape,
                actual: data.len(),
            });
        }
        Ok(Samples {
            shape,
            data,
            source: None,
        })
    }

    /// Reads an f32 `.npy` file of shape `[N, …]`.
    pub fn from_npy(path: impl AsRef<Path>) -> Result<Samples, CalibrateError> {
        let path = path.as_ref();
        let (shape, data) = npy::read_f32(path)?;
        Ok(Samples {
            shape,
            data,
            source: Some(path.to_path_buf()),
        })
    }

    /// The number of items (`shape[0]`).
    pub fn items(&self) -> usize {
        self.shape.first().copied().unwrap_or(0)
    }

    /// `what` the items are, for messages: the file, or "the items".
    fn what(&self) -> String {
        self.source
            .as_ref()
            .map_or_else(|| "the items".to_string(), |p| p.display().to_string())
    }

    /// Checks the items fit `graph`'s single input (`[N, item shape…]`, `N ≥ 1`); returns the
    /// length of one item.
    pub fn check_against(&self, graph: &Graph) -> Result<usize, CalibrateError> {
        let [input] = graph.inputs[..] else {
            return Err(CalibrateError::InputCount(graph.inputs.len()));
        };
        let node = graph.node(input);
        let item = node.output.shape.per_item().unwrap_or_default();
        if self.shape.len() != item.len() + 1 || self.shape[1..] != item[..] {
            return Err(CalibrateError::Shape {
                what: self.what(),
                shape: self.shape.clone(),
                input: node.name.clone(),
                expected: node.output.shape.to_string(),
            });
        }
        if self.items() == 0 {
            return Err(CalibrateError::NoItems {
                what: self.what(),
                shape: self.shape.clone(),
            });
        }
        Ok(item.iter().product())
    }
}

/// How each activation's range is chosen from the values seen.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum CalibrationMethod {
    /// The minimum and maximum (onnxruntime's default).
    #[default]
    MinMax,
    /// The `(100 − p)`-th and `p`-th percentiles, `p` in `(50, 100]`.
    Percentile(f32),
}

/// The percentile `resnextc --calibrate-method percentile` uses unless `--percentile` says.
pub const DEFAULT_PERCENTILE: f32 = 99.99;

impl CalibrationMethod {
    /// `minmax` or `percentile` (with `percentile`'s `p`).
    pub fn parse(name: &str, percentile: f32) -> Result<CalibrationMethod, String> {
        match name {
            "minmax" => Ok(CalibrationMethod::MinMax),
            "percentile" => Ok(CalibrationMethod::Percentile(percentile)),
            other => Err(format!(
                "unknown calibration method `{other}`; use `minmax` or `percentile`"
            )),
        }
    }
}

/// What [`calibrate`] needs: the items and the method.
#[derive(Clone, Debug, PartialEq)]
pub struct Calibration {
    pub samples: Arc<Samples>,
    pub method: CalibrationMethod,
}

/// What [`calibrate`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CalibrationReport {
    /// The layers now int8.
    pub quantized: Vec<String>,
    /// The convs and dense layers left fp32, each with why.
    pub kept_fp32: Vec<(String, String)>,
    /// Items the model ran on.
    pub items: usize,
}

/// Why calibration failed.
#[derive(Debug, thiserror::Error)]
pub enum CalibrateError {
    #[error(transparent)]
    Npy(#[from] NpyError),
    #[error("shape {shape:?} holds {} values, the data has {actual}", shape.iter().product::<usize>())]
    Length { shape: Vec<usize>, actual: usize },
    #[error("{what} holds no items (shape {shape:?}); give at least one")]
    NoItems { what: String, shape: Vec<usize> },
    #[error(
        "the model has {0} inputs; calibration and `--check` take models with exactly one input"
    )]
    InputCount(usize),
    #[error(
        "{what} has shape {shape:?}, but the model input `{input}` is {expected}: give an array \
         of that shape with N ≥ 1 items"
    )]
    Shape {
        what: String,
        shape: Vec<usize>,
        input: String,
        expected: String,
    },
    #[error(
        "the model is already quantized ({op} node `{node}`: the ONNX QDQ form); compile it with \
         `--precision int8` and no calibration"
    )]
    AlreadyQuantized { node: String, op: &'static str },
    #[error("percentile {0} must be above 50 and at most 100")]
    Percentile(f32),
    #[error("running the fp32 model on the calibration items: {0}")]
    Interp(#[from] InterpError),
    #[error(
        "the value of {op} node `{node}` is not finite on the calibration items; fix the items or \
         the model"
    )]
    NonFinite { node: String, op: &'static str },
    #[error("{0}")]
    Invalid(#[from] IrErrors),
    #[error(transparent)]
    Ir(#[from] IrError),
}

/// The running range of one observed value.
#[derive(Clone, Copy, Debug)]
struct Range {
    lo: f32,
    hi: f32,
    finite: bool,
}

/// Quantizes the int8-capable convs and dense layers of the fp32 `graph` with activation ranges
/// observed on `calibration`'s items (see the module docs). Refuses a graph that already holds
/// quantized ops.
pub fn calibrate(
    graph: &mut Graph,
    calibration: &Calibration,
) -> Result<CalibrationReport, CalibrateError> {
    if let CalibrationMethod::Percentile(p) = calibration.method
        && !(p > 50.0 && p <= 100.0)
    {
        return Err(CalibrateError::Percentile(p));
    }
    for id in graph.nodes.node_indices() {
        let node = graph.node(id);
        if matches!(node.op, Op::FakeQuant(_) | Op::QConv(_)) {
            return Err(CalibrateError::AlreadyQuantized {
                node: node.name.clone(),
                op: node.op.name(),
            });
        }
    }
    let samples = &calibration.samples;
    let item_len = samples.check_against(graph)?;
    let mut report = CalibrationReport {
        items: samples.items(),
        ..CalibrationReport::default()
    };
    let order = graph.topo_order()?;
    let mut layers = Vec::new();
    for &id in &order {
        match candidate(graph, id) {
            Some(Ok(())) => layers.push(id),
            Some(Err(why)) => report.kept_fp32.push((graph.node(id).name.clone(), why)),
            None => {}
        }
    }
    // The values to observe, in topological order, each once.
    let mut sources: Vec<NodeId> = Vec::new();
    for &layer in &layers {
        let input = graph.inputs_of(layer)[0];
        if !sources.contains(&input) {
            sources.push(input);
        }
    }
    let slot: HashMap<NodeId, usize> = sources.iter().enumerate().map(|(i, &s)| (s, i)).collect();
    let info = ir::validate(graph)?;
    let items = samples.items();
    let run_all = |observe: &mut dyn FnMut(usize, &[f32])| -> Result<(), CalibrateError> {
        for start in (0..items).step_by(CALIBRATION_CHUNK) {
            let n = CALIBRATION_CHUNK.min(items - start);
            let chunk = &samples.data[start * item_len..(start + n) * item_len];
            interp::run_observed(graph, &info, &[chunk], n, &mut |id, value| {
                if let Some(&i) = slot.get(&id) {
                    observe(i, value);
                }
            })?;
        }
        Ok(())
    };
    let mut ranges = vec![
        Range {
            lo: f32::INFINITY,
            hi: f32::NEG_INFINITY,
            finite: true,
        };
        sources.len()
    ];
    run_all(&mut |i, value| {
        let r = &mut ranges[i];
        for &v in value {
            r.finite &= v.is_finite();
            r.lo = r.lo.min(v);
            r.hi = r.hi.max(v);
        }
    })?;
    for (&source, r) in sources.iter().zip(&ranges) {
        if !r.finite || r.lo > r.hi {
            let node = graph.node(source);
            return Err(CalibrateError::NonFinite {
                node: node.name.clone(),
                op: node.op.name(),
            });
        }
    }
    if let CalibrationMethod::Percentile(p) = calibration.method {
        let mut histograms = vec![vec![0u64; BINS]; sources.len()];
        run_all(&mut |i, value| {
            let (r, h) = (ranges[i], &mut histograms[i]);
            let width = r.hi - r.lo;
            if width > 0.0 {
                for &v in value {
                    let b = ((v - r.lo) / width * BINS as f32) as usize;
                    h[b.min(BINS - 1)] += 1;
                }
            }
        })?;
        for (r, h) in ranges.iter_mut().zip(&histograms) {
            *r = percentile_range(*r, h, p);
        }
    }
    let mut quantized_input = HashMap::new();
    for (&source, r) in sources.iter().zip(&ranges) {
        let quant = activation_quant(r.lo, r.hi);
        let name = format!("{} (calibrated)", graph.node(source).name);
        let op = Op::FakeQuant(FakeQuant {
            quant,
            min: 0,
            max: 255,
        });
        let fq = graph.add_node(name, op, &[source])?;
        quantized_input.insert(source, (fq, quant));
    }
    for layer in layers {
        let input = graph.inputs_of(layer)[0];
        let (fq, quant) = quantized_input[&input];
        let node = graph.node(layer);
        let (name, op) = (node.name.clone(), node.op.clone());
        match qconv(graph, &op, quant) {
            Ok(op) => {
                let q = graph.add_node(name.clone(), op, &[fq])?;
                graph.replace_uses(layer, q);
                graph.remove_node(layer);
                report.quantized.push(name);
            }
            Err(why) => report.kept_fp32.push((name, why)),
        }
    }
    // A value whose every quantized reader fell back to fp32 keeps no dead FakeQuant.
    for (fq, _) in quantized_input.into_values() {
        if graph.consumers(fq).is_empty() {
            graph.remove_node(fq);
        }
    }
    Ok(report)
}

/// `None` if `id` is not a conv or dense layer; else whether calibration can make it int8, or why not.
fn candidate(graph: &Graph, id: NodeId) -> Option<Result<(), String>> {
    let node = graph.node(id);
    let (weight, bias, epilogue) = match &node.op {
        Op::Conv(c) if c.kernel_choice == ConvKernel::Reference => (c.weight, c.bias, c.epilogue),
        Op::Dense(d) if d.kernel == DenseKernel::Reference => (d.weight, d.bias, d.epilogue),
        Op::Conv(_) | Op::Dense(_) => return Some(Err("its kernel is already chosen".into())),
        _ => return None,
    };
    if epilogue != Epilogue::default() {
        return Some(Err(
            "it has a fused epilogue (int8 layers take the residual and activation after them)"
                .into(),
        ));
    }
    let loaded = std::iter::once(weight)
        .chain(bias)
        .all(|w| graph.weights.is_loaded(w));
    if !loaded {
        return Some(Err("its weights are not known at compile time".into()));
    }
    let in_type = &graph.node(graph.inputs_of(id)[0]).output;
    if in_type.layout != ir::Layout::Nchw && in_type.layout != ir::Layout::RowMajor {
        return Some(Err(format!(
            "its input is {}, int8 layers read NCHW",
            in_type.layout.name()
        )));
    }
    let shape = match &node.op {
        Op::Conv(c) => Ok(crate::interp::conv_shape(c, in_type, &node.output)),
        Op::Dense(d) if in_type.shape.per_item().is_some_and(|s| s.len() == 1) => {
            Ok(dense_shape(d.in_features, d.out_features))
        }
        _ => Err("its input is not [N, features]".to_string()),
    };
    Some(shape.and_then(|s| int8::supports(&s).map_err(|e| e.to_string())))
}

/// A dense layer as the 1×1 conv on a 1×1 map the int8 kernels take it for.
fn dense_shape(k: usize, m: usize) -> resnext_runtime_core::kernels::ConvShape {
    resnext_runtime_core::kernels::ConvShape::square(k, 1, m, 1, 1, 0, 1)
}

/// The u8 quantization of values in `lo..=hi`, widened to hold 0 exactly.
pub fn activation_quant(lo: f32, hi: f32) -> Quant {
    let (lo, hi) = (lo.min(0.0), hi.max(0.0));
    let scale = (hi - lo) / 255.0;
    if !(scale > 0.0 && scale.is_finite()) {
        // Every value 0 (or a range f32 cannot step through): any scale represents it.
        return Quant {
            scale: 1.0,
            zero_point: 0,
        };
    }
    let zero_point = (-lo / scale).round_ties_even().clamp(0.0, 255.0) as i32;
    Quant { scale, zero_point }
}

/// The range between the `(100 − p)`-th and `p`-th percentiles of the values counted in `h`,
/// bins spanning `r`, kept within `r`.
fn percentile_range(r: Range, h: &[u64], p: f32) -> Range {
    let total: u64 = h.iter().sum();
    if total == 0 || r.hi <= r.lo {
        return r;
    }
    let width = (r.hi - r.lo) / h.len() as f32;
    // Counts allowed outside the range at each end.
    let tail = ((1.0 - f64::from(p) / 100.0) * total as f64).floor() as u64;
    let mut below = 0;
    let mut lo_bin = 0;
    for (b, &n) in h.iter().enumerate() {
        if below + n > tail {
            lo_bin = b;
            break;
        }
        below += n;
    }
    let mut above = 0;
    let mut hi_bin = h.len() - 1;
    for (b, &n) in h.iter().enumerate().rev() {
        if above + n > tail {
            hi_bin = b;
            break;
        }
        above += n;
    }
    Range {
        lo: (r.lo + lo_bin as f32 * width).max(r.lo),
        hi: (r.lo + (hi_bin + 1) as f32 * width).min(r.hi),
        finite: r.finite,
    }
}

/// The int8 layer for the fp32 conv or dense `op` reading a value quantized by `input`.
fn qconv(graph: &mut Graph, op: &Op, input: Quant) -> Result<Op, String> {
    let (weight, bias, dims, in_channels, group, kernel, stride, dilation, pads) = match op {
        Op::Conv(c) => (
            c.weight,
            c.bias,
            [
                c.out_channels,
                c.in_channels / c.group,
                c.kernel[0],
                c.kernel[1],
            ],
            c.in_channels,
            c.group,
            c.kernel,
            c.stride,
            c.dilation,
            c.pads,
        ),
        Op::Dense(d) => (
            d.weight,
            d.bias,
            [d.out_features, d.in_features, 1, 1],
            d.in_features,
            1,
            [1, 1],
            [1, 1],
            [1, 1],
            [0; 4],
        ),
        other => return Err(format!("{} has no int8 form", other.name())),
    };
    let m = dims[0];
    let k: usize = dims[1..].iter().product();
    let w = graph.weights.data(weight);
    let b = bias.map(|b| graph.weights.data(b));
    if w.len() != m * k || b.is_some_and(|b| b.len() != m) {
        return Err(format!(
            "weight of {} values and bias of {:?} for {m} output channels of {k} taps",
            w.len(),
            b.map(<[f32]>::len)
        ));
    }
    // `pack` needs |bias − zp·Σw| + K·255·128 within i32, and |Σw| ≤ 127·K.
    let bias_limit = i32::MAX as f64 - (k as f64) * 255.0 * (128.0 + WEIGHT_MAX as f64);
    if bias_limit < 1.0 {
        return Err(format!(
            "{k} taps per output may overflow the int8 kernels' i32 sums"
        ));
    }
    let mut values = vec![0.0f32; m * k];
    let mut weight_scale = vec![0.0f32; m];
    let mut qbias = vec![0i32; m];
    for c in 0..m {
        let row = &w[c * k..][..k];
        let bc = b.map_or(0.0, |b| b[c]);
        let max = row.iter().fold(0.0f32, |a, &v| a.max(v.abs()));
        if !max.is_finite() || !bc.is_finite() {
            return Err(format!(
                "output channel {c} has a weight or bias that is not finite"
            ));
        }
        let fit_bias = (f64::from(bc.abs()) / (f64::from(input.scale) * bias_limit)) as f32;
        let mut scale = (max / WEIGHT_MAX).max(fit_bias);
        if !(scale > 0.0 && (input.scale * scale) > 0.0) {
            // An all-zero channel without bias: any scale.
            scale = 1.0;
        }
        for (q, &v) in values[c * k..][..k].iter_mut().zip(row) {
            *q = (v / scale).round_ties_even().clamp(-WEIGHT_MAX, WEIGHT_MAX);
        }
        let real = f64::from(input.scale * scale);
        qbias[c] = (f64::from(bc) / real)
            .round_ties_even()
            .clamp(-bias_limit, bias_limit) as i32;
        weight_scale[c] = scale;
    }
    let name = format!(
        "{} (int8)",
        graph.weights.get(weight).map_or("", |w| &w.name)
    );
    let weight = graph.weights.add(name, dims.to_vec(), values);
    Ok(Op::QConv(QConv {
        weight,
        packed: false,
        bias: qbias,
        weight_scale,
        in_channels,
        out_channels: m,
        group,
        kernel,
        stride,
        dilation,
        pads,
        input,
        output: QConvOutput::Float { relu: false },
        residual: None,
        residual_arith: SumArith::Onnx,
        codes: Codes::default(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_quant_holds_zero_and_the_range() {
        let q = activation_quant(-1.0, 3.0);
        assert_eq!(q.dequantize(q.quantize(0.0)), 0.0);
        assert!((q.scale - 4.0 / 255.0).abs() < 1e-7);
        assert!((q.dequantize(0) + 1.0).abs() <= q.scale);
        assert!((q.dequantize(255) - 3.0).abs() <= q.scale);
        // A ReLU output: the zero point is 0, the whole grid above it.
        let q = activation_quant(0.5, 2.0);
        assert_eq!(q.zero_point, 0);
        assert_eq!(q.dequantize(255), 2.0);
        let q = activation_quant(0.0, 0.0);
        assert!(q.check().is_ok());
    }

    #[test]
    fn percentile_range_drops_the_tails() {
        // 10000 values: 9998 spread over bins 0..4096 evenly-ish, one outlier at each end.
        let r = Range {
            lo: -100.0,
            hi: 100.0,
            finite: true,
        };
        let mut h = vec![0u64; BINS];
        h[0] = 1;
        h[BINS - 1] = 1;
        for n in &mut h[2000..2100] {
            *n = 100;
        }
        let p = percentile_range(r, &h, 99.99);
        let width = 200.0 / BINS as f32;
        assert!((p.lo - (-100.0 + 2000.0 * width)).abs() < 1e-3, "{p:?}");
        assert!((p.hi - (-100.0 + 2100.0 * width)).abs() < 1e-3, "{p:?}");
        // p = 100 keeps everything.
        let all = percentile_range(r, &h, 100.0);
        assert_eq!((all.lo, all.hi), (-100.0, 100.0));
    }
}
