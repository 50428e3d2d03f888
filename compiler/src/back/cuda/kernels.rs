//! One CUDA C kernel per node, specialised to its shapes: a function per op (and per conv strategy)
//! returning the kernel's source and its launch.
//!
//! Conventions: NCHW activations; `x` the node's input, `r` the second input (residual / Add operand),
//! `w`/`b` weights, `y` the output, all already offset to the value (the host adds `batch × offset`).
//! Kernels may only use `__syncthreads` for block-wide barriers (no warp intrinsics), so the CPU
//! emulation (`tests/cuda_emu`) can run them.

use std::fmt::Write as _;

use resnext_runtime_core::cuda::plan::{Buf, Extent, Launch};
use resnext_runtime_core::kernels::{ConvShape, PoolShape};

use super::{Error, Model};
use crate::interp;
use crate::ir::{Activation, NodeId, Op};

/// Shared by every kernel: the common argument list and the small helpers the kernels call.
pub(super) const PRELUDE: &str = r#"
#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif
#define RX_ARGS const float* __restrict__ x, const float* __restrict__ w, \
    const float* __restrict__ b, const float* __restrict__ r, float* __restrict__ y, int batch
// NaN-keeping ReLU / clamp / max, as PyTorch and the CPU kernels do (fmaxf would drop a NaN):
// every comparison with a NaN is false, so a NaN `v` falls through unchanged.
__device__ __forceinline__ float rx_relu(float v) { return v < 0.0f ? 0.0f : v; }
__device__ __forceinline__ float rx_at_least(float v, float lo) { return v < lo ? lo : v; }
__device__ __forceinline__ float rx_at_most(float v, float hi) { return v > hi ? hi : v; }
__device__ __forceinline__ float rx_max(float acc, float v) { return (v > acc || v != v) ? v : acc; }
__device__ __forceinline__ float rx_clamp(float v, float lo, float hi) { return rx_at_most(rx_at_least(v, lo), hi); }
__device__ __forceinline__ float rx_sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }
__device__ __forceinline__ float rx_hard_sigmoid(float v, float a, float b) { return rx_clamp(a * v + b, 0.0f, 1.0f); }
__device__ __forceinline__ float rx_hard_swish(float v) { return v * rx_clamp(v + 3.0f, 0.0f, 6.0f) / 6.0f; }
__device__ __forceinline__ float rx_leaky_relu(float v, float a) { return v < 0.0f ? a * v : v; }
__device__ __forceinline__ float rx_elu(float v, float a) { return v > 0.0f ? v : a * expm1f(v); }
__device__ __forceinline__ float rx_gelu(float v) { return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f)); }
__device__ __forceinline__ float rx_gelu_tanh(float v) {
  return 0.5f * v * (1.0f + tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v)));
}
"#;

/// Static shared memory a kernel may use (the default per-block limit without opt-in).
const SHARED_LIMIT: usize = 48 * 1024;

/// How a conv node is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvStrategy {
    /// Grouped (or depthwise) conv: a block computes every output channel of one group over
    /// `tile_rows` output rows, from the group's input tile and weights staged in shared memory.
    GroupedDirect { tile_rows: usize },
    /// 1×1, one group, no padding (stride 1 or 2): a 64×64×16-tiled SGEMM per batch item.
    Gemm1x1,
    /// Anything else (the 7×7/2 stem...): one thread per output element.
    Direct,
}

/// A node's kernel: CUDA source, how to launch it, and for convs the strategy chosen.
pub(super) struct Kernel {
    pub source: String,
    pub launch: Launch,
    pub strategy: Option<ConvStrategy>,
}

const BLOCK: u32 = 256;

/// The kernel computing node `id` (at position `index` of the order). One arm per op.
pub(super) fn emit_node(model: &Model, index: usize, id: NodeId) -> Result<Kernel, Error> {
    let graph = model.graph;
    let node = graph.node(id);
    let inputs = graph.inputs_of(id);
    let x = model.value(inputs[0]);
    let second = inputs.get(1).map_or(Buf::Null, |&i| model.value(i));
    let y = model.value(id);
    let in_type = &graph.node(inputs[0]).output;
    let len = node.output.shape.item_len().unwrap_or(0);
    let name = |kind: &str| format!("k{index}_{kind}");
    let unsupported = |message: &str| Error::Unsupported {
        node: node.name.clone(),
        op: node.op.name(),
        message: message.into(),
    };
    let mut kernel = match &node.op {
        Op::Input => return Err(unsupported("an input node as a kernel")),
        // The CUDA back end runs without `select-kernels`, which alone inserts reorders.
        Op::Reorder { .. } => return Err(unsupported("a layout reorder on the GPU")),
        Op::FakeQuant(_) | Op::QConv(_) => {
            return Err(unsupported("int8 (QDQ) models on the GPU yet"));
        }
        Op::Concat { .. }
        | Op::ChannelShuffle { .. }
        | Op::SliceChannels { .. }
        | Op::Pad { .. }
        | Op::Softmax { .. }
        | Op::Lrn(_)
        | Op::LayerNormChannels(_)
        | Op::SqueezeExcite(_) => {
            return Err(unsupported(
                "channel concatenation, shuffle or slice, padding, softmax, LRN, layer norm or a \
                 fused squeeze-excite on the GPU yet",
            ));
        }
        Op::Conv(c) => {
            let shape = interp::conv_shape(c, in_type, &node.output);
            let bias = c.bias.map_or(Buf::Null, |b| model.weight(b));
            let args = [x, model.weight(c.weight), bias, second, y];
            let epi = EpilogueSpec {
                bias: c.bias.is_some(),
                residual: c.epilogue.residual,
                activation: c.epilogue.activation,
            };
            emit_conv(&name("conv"), &shape, epi, args)
        }
        Op::Dense(d) => {
            let bias = d.bias.map_or(Buf::Null, |b| model.weight(b));
            let epi = EpilogueSpec {
                bias: d.bias.is_some(),
                residual: d.epilogue.residual,
                activation: d.epilogue.activation,
            };
            let args = [x, model.weight(d.weight), bias, second, y];
            emit_dense(&name("dense"), d.in_features, d.out_features, epi, args)
        }
        Op::ScaleShift(s) => {
            let (c, spatial) = interp::channels_spatial(in_type);
            let args = [
                x,
                model.weight(s.scale),
                model.weight(s.shift),
                Buf::Null,
                y,
            ];
            let body = format!(
                "const int c = (int)((i / {spatial}) % {c});\n    float v = x[i] * w[c] + b[c];\n    {}",
                store_activation("v", s.activation)
            );
            emit_elementwise(&name("scale_shift"), len, &body, args)
        }
        Op::Relu => emit_activation(&name("relu"), len, Activation::Relu, x, y),
        Op::Clip { min, max } => emit_activation(
            &name("clip"),
            len,
            Activation::Clip {
                min: *min,
                max: *max,
            },
            x,
            y,
        ),
        Op::Flatten { .. } | Op::Reshape { .. } | Op::Identity => {
            emit_activation(&name("copy"), len, Activation::None, x, y)
        }
        Op::Activation(a) => emit_activation(&name("activation"), len, *a, x, y),
        Op::PRelu { .. } | Op::Binary(_) => {
            return Err(unsupported("not implemented on the GPU yet"));
        }
        Op::Add { activation } => {
            let body = format!(
                "float v = x[i] + r[i];\n    {}",
                store_activation("v", *activation)
            );
            emit_elementwise(
                &name("add"),
                len,
                &body,
                [x, Buf::Null, Buf::Null, second, y],
            )
        }
        Op::MaxPool(p) => {
            let shape = interp::pool_shape(p, in_type, &node.output);
            emit_pool(&name("max_pool"), &shape, None, x, y)
        }
        Op::AveragePool(p) => {
            let shape = interp::pool_shape(p, in_type, &node.output);
            emit_pool(&name("avg_pool"), &shape, Some(p.count_include_pad), x, y)
        }
        Op::GlobalAveragePool { .. } => {
            let (c, spatial) = interp::channels_spatial(in_type);
            emit_global_avg_pool(&name("global_avg_pool"), c, spatial, x, y)
        }
        Op::BatchNorm(_) => {
            return Err(unsupported(
                "an unfolded BatchNormalization (run the fold-batch-norm pass)",
            ));
        }
    };
    kernel.launch.node = node.name.clone();
    Ok(kernel)
}

/// What a conv or dense kernel does after its MACs: `y = act(acc + b[c] + r[i])`.
#[derive(Clone, Copy, Debug)]
pub(super) struct EpilogueSpec {
    pub bias: bool,
    pub residual: bool,
    pub activation: Activation,
}

impl EpilogueSpec {
    /// Statements storing accumulator `acc` of channel `c` at output index `i` (C expressions).
    fn store(&self, acc: &str, c: &str, i: &str) -> String {
        let mut s = format!("float v_ = {acc};");
        if self.bias {
            let _ = write!(s, " v_ += b[{c}];");
        }
        if self.residual {
            let _ = write!(s, " v_ += r[{i}];");
        }
        let _ = write!(s, " y[{i}] = {};", activation_expr("v_", self.activation));
        s
    }
}

/// A C float literal (`1e-5f`, `6.0f`), or the macro for an infinity.
fn float_lit(v: f32) -> String {
    if v == f32::INFINITY {
        "INFINITY".into()
    } else if v == f32::NEG_INFINITY {
        "(-INFINITY)".into()
    } else {
        format!("{v:?}f")
    }
}

fn activation_expr(v: &str, a: Activation) -> String {
    match a {
        Activation::None => v.to_string(),
        Activation::Relu => format!("rx_relu({v})"),
        Activation::Clip { min, max } => {
            let mut e = v.to_string();
            if min != f32::NEG_INFINITY {
                e = format!("rx_at_least({e}, {})", float_lit(min));
            }
            if max != f32::INFINITY {
                e = format!("rx_at_most({e}, {})", float_lit(max));
            }
            e
        }
        Activation::Sigmoid => format!("rx_sigmoid({v})"),
        Activation::Tanh => format!("tanhf({v})"),
        Activation::HardSigmoid { alpha, beta } => format!(
            "rx_hard_sigmoid({v}, {}, {})",
            float_lit(alpha),
            float_lit(beta)
        ),
        Activation::HardSwish => format!("rx_hard_swish({v})"),
        Activation::Silu => format!("({v}) * rx_sigmoid({v})"),
        Activation::LeakyRelu { alpha } => format!("rx_leaky_relu({v}, {})", float_lit(alpha)),
        Activation::Elu { alpha } => format!("rx_elu({v}, {})", float_lit(alpha)),
        Activation::Gelu => format!("rx_gelu({v})"),
        Activation::GeluTanh => format!("rx_gelu_tanh({v})"),
        Activation::Erf => format!("erff({v})"),
    }
}

fn store_activation(v: &str, a: Activation) -> String {
    format!("y[i] = {};", activation_expr(v, a))
}

fn launch(kernel: &str, grid: [Extent; 3], block: u32, shared: usize, args: [Buf; 5]) -> Launch {
    Launch {
        node: String::new(),
        kernel: kernel.to_string(),
        grid,
        block: [block, 1, 1],
        shared_bytes: shared as u32,
        args,
    }
}

/// Chooses the strategy for a conv shape.
pub fn conv_strategy(s: &ConvShape) -> ConvStrategy {
    let cin_g = s.in_c / s.group;
    let cout_g = s.out_c / s.group;
    if s.group == 1 && s.kernel == [1, 1] && s.pads == [0; 4] {
        return ConvStrategy::Gemm1x1;
    }
    if s.group > 1 && cin_g <= 64 {
        let weights = cout_g * cin_g * s.kernel[0] * s.kernel[1];
        let mut rows = 128usize.div_ceil(s.out_w).clamp(1, s.out_h);
        while rows >= 1 {
            if (grouped_tile_len(s, rows) + weights) * 4 <= SHARED_LIMIT {
                return ConvStrategy::GroupedDirect { tile_rows: rows };
            }
            rows -= 1;
        }
    }
    ConvStrategy::Direct
}

/// `(tile_h, tile_w)` of the input rows (with padding) that `rows` output rows read.
fn grouped_tile_dims(s: &ConvShape, rows: usize) -> (usize, usize) {
    let th = (rows - 1) * s.stride[0] + (s.kernel[0] - 1) * s.dilation[0] + 1;
    let tw = (s.out_w - 1) * s.stride[1] + (s.kernel[1] - 1) * s.dilation[1] + 1;
    (th, tw)
}

fn grouped_tile_len(s: &ConvShape, rows: usize) -> usize {
    let (th, tw) = grouped_tile_dims(s, rows);
    (s.in_c / s.group) * th * tw
}

/// A conv node's kernel: the strategy [`conv_strategy`] picks.
pub(super) fn emit_conv(name: &str, s: &ConvShape, epi: EpilogueSpec, args: [Buf; 5]) -> Kernel {
    let strategy = conv_strategy(s);
    let mut k = match strategy {
        ConvStrategy::GroupedDirect { tile_rows } => {
            emit_conv_grouped(name, s, tile_rows, epi, args)
        }
        ConvStrategy::Gemm1x1 => emit_conv_gemm1x1(name, s, epi, args),
        ConvStrategy::Direct => emit_conv_direct(name, s, epi, args),
    };
    k.strategy = Some(strategy);
    k
}

/// The shape constants every conv kernel starts with.
fn conv_constants(s: &ConvShape) -> String {
    format!(
        "  const int IC = {}, IH = {}, IW = {}, OC = {}, OH = {}, OW = {};\n  \
         const int CIN_G = {}, COUT_G = {}, KH = {}, KW = {}, SH = {}, SW = {}, DH = {}, DW = {}, PT = {}, PL = {};\n",
        s.in_c,
        s.in_h,
        s.in_w,
        s.out_c,
        s.out_h,
        s.out_w,
        s.in_c / s.group,
        s.out_c / s.group,
        s.kernel[0],
        s.kernel[1],
        s.stride[0],
        s.stride[1],
        s.dilation[0],
        s.dilation[1],
        s.pads[0],
        s.pads[1]
    )
}

/// Generic direct conv: one thread per output element, any group/kernel/stride/dilation/padding.
fn emit_conv_direct(name: &str, s: &ConvShape, epi: EpilogueSpec, args: [Buf; 5]) -> Kernel {
    let store = epi.store("acc", "oc", "i");
    let source = format!(
        r#"
// {name}: direct conv {shape:?}
extern "C" __global__ void __launch_bounds__({BLOCK}) {name}(RX_ARGS) {{
{consts}  const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (long long)batch * OC * OH * OW) return;
  const int ox = (int)(i % OW), oy = (int)((i / OW) % OH), oc = (int)((i / ((long long)OW * OH)) % OC);
  const long long n = i / ((long long)OW * OH * OC);
  const int g = oc / COUT_G;
  const float* xp = x + (n * IC + (long long)g * CIN_G) * IH * IW;
  const float* wp = w + (long long)oc * CIN_G * KH * KW;
  float acc = 0.0f;
  for (int c = 0; c < CIN_G; ++c) {{
    for (int ky = 0; ky < KH; ++ky) {{
      const int iy = oy * SH + ky * DH - PT;
      if (iy < 0 || iy >= IH) continue;
      for (int kx = 0; kx < KW; ++kx) {{
        const int ix = ox * SW + kx * DW - PL;
        if (ix < 0 || ix >= IW) continue;
        acc += xp[((long long)c * IH + iy) * IW + ix] * wp[(c * KH + ky) * KW + kx];
      }}
    }}
  }}
  {store}
}}
"#,
        shape = s,
        consts = conv_constants(s),
    );
    per_element(name, source, s.output_len(), args)
}

/// A kernel of one thread per element: `per_item` elements for each of `batch` items, in blocks
/// of `BLOCK` threads along x.
fn per_element(name: &str, source: String, per_item: usize, args: [Buf; 5]) -> Kernel {
    Kernel {
        source,
        launch: launch(
            name,
            [
                Extent::batched(per_item as u64, BLOCK as u64),
                Extent::fixed(1),
                Extent::fixed(1),
            ],
            BLOCK,
            0,
            args,
        ),
        strategy: None,
    }
}

/// Grouped direct conv: block `(row tile, group, n)` stages the group's input rows (zero-padded)
/// and its weights in shared memory, then each thread computes outputs `(oc, oy, ox)` of the tile.
fn emit_conv_grouped(
    name: &str,
    s: &ConvShape,
    rows: usize,
    epi: EpilogueSpec,
    args: [Buf; 5],
) -> Kernel {
    let (th, tw) = grouped_tile_dims(s, rows);
    let cin_g = s.in_c / s.group;
    let cout_g = s.out_c / s.group;
    let weights = cout_g * cin_g * s.kernel[0] * s.kernel[1];
    let tile = cin_g * th * tw;
    let store = epi.store("acc", "oc", "o");
    let source = format!(
        r#"
// {name}: grouped direct conv {shape:?}, {rows} output row(s) per block
extern "C" __global__ void __launch_bounds__({BLOCK}) {name}(RX_ARGS) {{
{consts}  const int TR = {rows}, TH = {th}, TW = {tw};
  __shared__ float sx[{tile}];
  __shared__ float sw[{weights}];
  const int n = blockIdx.z, g = blockIdx.y, oy0 = blockIdx.x * TR;
  const int iy0 = oy0 * SH - PT;
  const float* xp = x + ((long long)n * IC + (long long)g * CIN_G) * IH * IW;
  for (int t = threadIdx.x; t < CIN_G * TH * TW; t += blockDim.x) {{
    const int tx = t % TW, ty = (t / TW) % TH, c = t / (TW * TH);
    const int iy = iy0 + ty, ix = tx - PL;
    sx[t] = (iy >= 0 && iy < IH && ix >= 0 && ix < IW) ? xp[((long long)c * IH + iy) * IW + ix] : 0.0f;
  }}
  const float* wp = w + (long long)g * COUT_G * CIN_G * KH * KW;
  for (int t = threadIdx.x; t < COUT_G * CIN_G * KH * KW; t += blockDim.x) sw[t] = wp[t];
  __syncthreads();
  for (int t = threadIdx.x; t < COUT_G * TR * OW; t += blockDim.x) {{
    const int ox = t % OW, ty = (t / OW) % TR, ocg = t / (OW * TR);
    const int oy = oy0 + ty;
    if (oy >= OH) continue;
    const float* sxp = sx + ty * SH * TW + ox * SW;
    const float* swp = sw + ocg * CIN_G * KH * KW;
    float acc = 0.0f;
#pragma unroll
    for (int c = 0; c < CIN_G; ++c) {{
#pragma unroll
      for (int ky = 0; ky < KH; ++ky) {{
#pragma unroll
        for (int kx = 0; kx < KW; ++kx) {{
          acc += sxp[(c * TH + ky * DH) * TW + kx * DW] * swp[(c * KH + ky) * KW + kx];
        }}
      }}
    }}
    const int oc = g * COUT_G + ocg;
    const long long o = (((long long)n * OC + oc) * OH + oy) * OW + ox;
    {store}
  }}
}}
"#,
        shape = s,
        consts = conv_constants(s),
    );
    Kernel {
        source,
        launch: launch(
            name,
            [
                Extent::fixed(s.out_h.div_ceil(rows) as u64),
                Extent::fixed(s.group as u64),
                Extent::batch(),
            ],
            BLOCK,
            (tile + weights) * 4,
            args,
        ),
        strategy: None,
    }
}

/// 1×1 conv as `Y[n] = W · X[n]` (`M = OC`, `K = IC`, `P = OH·OW` strided pixels): 64×64 output
/// tiles, K in steps of 16 through shared memory, 4×4 outputs per thread.
fn emit_conv_gemm1x1(name: &str, s: &ConvShape, epi: EpilogueSpec, args: [Buf; 5]) -> Kernel {
    let store = epi.store("acc[i][j]", "m", "o");
    let source = format!(
        r#"
// {name}: 1x1 conv as tiled SGEMM {shape:?}
extern "C" __global__ void __launch_bounds__(256) {name}(RX_ARGS) {{
{consts}  const int P = OH * OW;
  __shared__ float As[16][64];
  __shared__ float Bs[16][64];
  const int n = blockIdx.z, m0 = blockIdx.y * 64, p0 = blockIdx.x * 64;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const float* xp = x + (long long)n * IC * IH * IW;
  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {{
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;
  }}
  for (int k0 = 0; k0 < IC; k0 += 16) {{
    for (int t = threadIdx.x; t < 16 * 64; t += 256) {{
      const int am = t / 16, ak = t % 16;
      As[ak][am] = (m0 + am < OC && k0 + ak < IC) ? w[(long long)(m0 + am) * IC + k0 + ak] : 0.0f;
      const int bk = t / 64, bp = t % 64, p = p0 + bp;
      float v = 0.0f;
      if (k0 + bk < IC && p < P) {{
        const int oy = p / OW, ox = p % OW;
        v = xp[(long long)(k0 + bk) * IH * IW + oy * SH * IW + ox * SW];
      }}
      Bs[bk][bp] = v;
    }}
    __syncthreads();
#pragma unroll
    for (int k = 0; k < 16; ++k) {{
      float a[4], bv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = As[k][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) bv[j] = Bs[k][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i) {{
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * bv[j];
      }}
    }}
    __syncthreads();
  }}
#pragma unroll
  for (int i = 0; i < 4; ++i) {{
    const int m = m0 + ty + 16 * i;
    if (m >= OC) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {{
      const int p = p0 + tx + 16 * j;
      if (p >= P) continue;
      const long long o = ((long long)n * OC + m) * P + p;
      {store}
    }}
  }}
  (void)CIN_G; (void)COUT_G; (void)KH; (void)KW; (void)DH; (void)DW; (void)PT; (void)PL;
}}
"#,
        shape = s,
        consts = conv_constants(s),
    );
    Kernel {
        source,
        launch: launch(
            name,
            [
                Extent::fixed((s.out_h * s.out_w).div_ceil(64) as u64),
                Extent::fixed(s.out_c.div_ceil(64) as u64),
                Extent::batch(),
            ],
            256,
            2 * 16 * 64 * 4,
            args,
        ),
        strategy: None,
    }
}

/// Dense `y[n, m] = act(Σ_k x[n, k] w[m, k] + b[m] + r[n, m])`: a block is 8 rows × 32 lanes, lanes
/// stride over `k` (coalesced), then a shared-memory tree reduction.
pub(super) fn emit_dense(
    name: &str,
    k: usize,
    m: usize,
    epi: EpilogueSpec,
    args: [Buf; 5],
) -> Kernel {
    let store = epi.store("red[threadIdx.x]", "m", "(long long)n * M + m");
    let source = format!(
        r#"
// {name}: dense {k} -> {m}
extern "C" __global__ void __launch_bounds__(256) {name}(RX_ARGS) {{
  const int K = {k}, M = {m};
  __shared__ float red[256];
  const int n = blockIdx.y, lane = threadIdx.x % 32, m = blockIdx.x * 8 + threadIdx.x / 32;
  float acc = 0.0f;
  if (m < M) {{
    const float* xp = x + (long long)n * K;
    const float* wp = w + (long long)m * K;
    for (int k = lane; k < K; k += 32) acc += xp[k] * wp[k];
  }}
  red[threadIdx.x] = acc;
  __syncthreads();
  for (int s = 16; s > 0; s >>= 1) {{
    if (lane < s) red[threadIdx.x] += red[threadIdx.x + s];
    __syncthreads();
  }}
  if (lane == 0 && m < M) {{ {store} }}
}}
"#
    );
    Kernel {
        source,
        launch: launch(
            name,
            [
                Extent::fixed(m.div_ceil(8) as u64),
                Extent::batch(),
                Extent::fixed(1),
            ],
            256,
            256 * 4,
            args,
        ),
        strategy: None,
    }
}

/// One thread per element `i` of a batched value of `len` floats per item; `body` sees `i`.
fn emit_elementwise(name: &str, len: usize, body: &str, args: [Buf; 5]) -> Kernel {
    let source = format!(
        r#"
// {name}: elementwise over {len} floats per item
extern "C" __global__ void __launch_bounds__({BLOCK}) {name}(RX_ARGS) {{
  const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (long long)batch * {len}) return;
  {body}
}}
"#
    );
    per_element(name, source, len, args)
}

fn emit_activation(name: &str, len: usize, a: Activation, x: Buf, y: Buf) -> Kernel {
    let body = store_activation("x[i]", a);
    emit_elementwise(name, len, &body, [x, Buf::Null, Buf::Null, Buf::Null, y])
}

/// Max pooling (`count_include_pad` is `None`) or average pooling: one thread per output element.
fn emit_pool(name: &str, s: &PoolShape, count_include_pad: Option<bool>, x: Buf, y: Buf) -> Kernel {
    let (init, step, finish) = match count_include_pad {
        None => ("-INFINITY", "acc = rx_max(acc, v);", "acc".to_string()),
        Some(include) => (
            "0.0f",
            "acc += v;",
            if include {
                "acc / (float)padded".to_string()
            } else {
                "acc / (float)inside".to_string()
            },
        ),
    };
    let len = s.channels * s.out_h * s.out_w;
    let source = format!(
        r#"
// {name}: pool {shape:?}
extern "C" __global__ void __launch_bounds__({BLOCK}) {name}(RX_ARGS) {{
  const int IH = {ih}, IW = {iw}, OH = {oh}, OW = {ow}, KH = {kh}, KW = {kw}, SH = {sh}, SW = {sw}, PT = {pt}, PL = {pl};
  const int PH = IH + PT + {pb}, PW = IW + PL + {pr};
  const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (long long)batch * {len}) return;
  const int ox = (int)(i % OW), oy = (int)((i / OW) % OH);
  const float* xp = x + (i / ((long long)OW * OH)) * IH * IW;
  float acc = {init};
  int padded = 0, inside = 0;
  for (int ky = 0; ky < KH; ++ky) {{
    for (int kx = 0; kx < KW; ++kx) {{
      const int py = oy * SH + ky, px = ox * SW + kx;
      if (py < PH && px < PW) ++padded;
      const int iy = py - PT, ix = px - PL;
      if (iy < 0 || iy >= IH || ix < 0 || ix >= IW) continue;
      ++inside;
      const float v = xp[iy * IW + ix];
      {step}
    }}
  }}
  (void)padded; (void)inside;
  y[i] = {finish};
}}
"#,
        shape = s,
        ih = s.in_h,
        iw = s.in_w,
        oh = s.out_h,
        ow = s.out_w,
        kh = s.kernel[0],
        kw = s.kernel[1],
        sh = s.stride[0],
        sw = s.stride[1],
        pt = s.pads[0],
        pl = s.pads[1],
        pb = s.pads[2],
        pr = s.pads[3],
    );
    per_element(name, source, len, [x, Buf::Null, Buf::Null, Buf::Null, y])
}

/// Mean over each `(n, c)` plane: one thread per plane.
fn emit_global_avg_pool(name: &str, c: usize, spatial: usize, x: Buf, y: Buf) -> Kernel {
    let source = format!(
        r#"
// {name}: global average pool, {c} channels of {spatial}
extern "C" __global__ void __launch_bounds__({BLOCK}) {name}(RX_ARGS) {{
  const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (long long)batch * {c}) return;
  const float* xp = x + i * {spatial};
  float acc = 0.0f;
  for (int s = 0; s < {spatial}; ++s) acc += xp[s];
  y[i] = acc * (1.0f / {spatial}.0f);
}}
"#
    );
    per_element(name, source, c, [x, Buf::Null, Buf::Null, Buf::Null, y])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resnext50_grouped_convs_fit_shared_memory() {
        for (c, hw, stride) in [
            (128, 56, 1),
            (256, 56, 2),
            (256, 28, 1),
            (512, 28, 2),
            (512, 14, 1),
            (1024, 14, 2),
            (1024, 7, 1),
        ] {
            let s = ConvShape::square(c, hw, c, 3, stride, 1, 32);
            assert!(
                matches!(conv_strategy(&s), ConvStrategy::GroupedDirect { .. }),
                "{s:?}"
            );
        }
        assert_eq!(
            conv_strategy(&ConvShape::square(64, 56, 64, 1, 1, 0, 1)),
            ConvStrategy::Gemm1x1
        );
        assert_eq!(
            conv_strategy(&ConvShape::square(3, 224, 3, 7, 2, 3, 1)),
            ConvStrategy::Direct
        );
    }

    #[test]
    fn float_literals_are_c() {
        assert_eq!(float_lit(6.0), "6.0f");
        assert_eq!(float_lit(1e-5), "1e-5f");
        assert_eq!(float_lit(f32::INFINITY), "INFINITY");
        assert_eq!(
            activation_expr("v", Activation::Clip { min: 0.0, max: 6.0 }),
            "rx_at_most(rx_at_least(v, 0.0f), 6.0f)"
        );
    }
}
