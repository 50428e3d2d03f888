// Model `resnext_small_8x4d_bn` compiled by resnextc (back::cuda) from `resnext_small_8x4d_bn.onnx`.
// Generated code: do not edit; recompile the model instead.

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

// k1_conv: direct conv ConvShape { in_c: 3, in_h: 64, in_w: 64, out_c: 64, out_h: 32, out_w: 32, kernel: [7, 7], stride: [2, 2], dilation: [1, 1], pads: [3, 3, 3, 3], group: 1 }
extern "C" __global__ void __launch_bounds__(256) k1_conv(RX_ARGS) {
  const int IC = 3, IH = 64, IW = 64, OC = 64, OH = 32, OW = 32;
  const int CIN_G = 3, COUT_G = 64, KH = 7, KW = 7, SH = 2, SW = 2, DH = 1, DW = 1, PT = 3, PL = 3;
  const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (long long)batch * OC * OH * OW) return;
  const int ox = (int)(i % OW), oy = (int)((i / OW) % OH), oc = (int)((i / ((long long)OW * OH)) % OC);
  const long long n = i / ((long long)OW * OH * OC);
  const int g = oc / COUT_G;
  const float* xp = x + (n * IC + (long long)g * CIN_G) * IH * IW;
  const float* wp = w + (long long)oc * CIN_G * KH * KW;
  float acc = 0.0f;
  for (int c = 0; c < CIN_G; ++c) {
    for (int ky = 0; ky < KH; ++ky) {
      const int iy = oy * SH + ky * DH - PT;
      if (iy < 0 || iy >= IH) continue;
      for (int kx = 0; kx < KW; ++kx) {
        const int ix = ox * SW + kx * DW - PL;
        if (ix < 0 || ix >= IW) continue;
        acc += xp[((long long)c * IH + iy) * IW + ix] * wp[(c * KH + ky) * KW + kx];
      }
    }
  }
  float v_ = acc; v_ += b[oc]; y[i] = rx_relu(v_);
}

// k2_max_pool: pool PoolShape { channels: 64, in_h: 32, in_w: 32, out_h: 16, out_w: 16, kernel: [3, 3], stride: [2, 2], pads: [1, 1, 1, 1] }
extern "C" __global__ void __launch_bounds__(256) k2_max_pool(RX_ARGS) {
  const int IH = 32, IW = 32, OH = 16, OW = 16, KH = 3, KW = 3, SH = 2, SW = 2, PT = 1, PL = 1;
  const int PH = IH + PT + 1, PW = IW + PL + 1;
  const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (long long)batch * 16384) return;
  const int ox = (int)(i % OW), oy = (int)((i / OW) % OH);
  const float* xp = x + (i / ((long long)OW * OH)) * IH * IW;
  float acc = -INFINITY;
  int padded = 0, inside = 0;
  for (int ky = 0; ky < KH; ++ky) {
    for (int kx = 0; kx < KW; ++kx) {
      const int py = oy * SH + ky, px = ox * SW + kx;
      if (py < PH && px < PW) ++padded;
      const int iy = py - PT, ix = px - PL;
      if (iy < 0 || iy >= IH || ix < 0 || ix >= IW) continue;
      ++inside;
      const float v = xp[iy * IW + ix];
      acc = rx_max(acc, v);
    }
  }
  (void)padded; (void)inside;
  y[i] = acc;
}

// k3_conv: 1x1 conv as tiled SGEMM ConvShape { in_c: 64, in_h: 16, in_w: 16, out_c: 32, out_h: 16, out_w: 16, kernel: [1, 1], stride: [1, 1], dilation: [1, 1], pads: [0, 0, 0, 0], group: 1 }
extern "C" __global__ void __launch_bounds__(256) k3_conv(RX_ARGS) {
  const int IC = 64, IH = 16, IW = 16, OC = 32, OH = 16, OW = 16;
  const int CIN_G = 64, COUT_G = 32, KH = 1, KW = 1, SH = 1, SW = 1, DH = 1, DW = 1, PT = 0, PL = 0;
  const int P = OH * OW;
  __shared__ float As[16][64];
  __shared__ float Bs[16][64];
  const int n = blockIdx.z, m0 = blockIdx.y * 64, p0 = blockIdx.x * 64;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const float* xp = x + (long long)n * IC * IH * IW;
  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;
  }
  for (int k0 = 0; k0 < IC; k0 += 16) {
    for (int t = threadIdx.x; t < 16 * 64; t += 256) {
      const int am = t / 16, ak = t % 16;
      As[ak][am] = (m0 + am < OC && k0 + ak < IC) ? w[(long long)(m0 + am) * IC + k0 + ak] : 0.0f;
      const int bk = t / 64, bp = t % 64, p = p0 + bp;
      float v = 0.0f;
      if (k0 + bk < IC && p < P) {
        const int oy = p / OW, ox = p % OW;
        v = xp[(long long)(k0 + bk) * IH * IW + oy * SH * IW + ox * SW];
      }
      Bs[bk][bp] = v;
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < 16; ++k) {
      float a[4], bv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = As[k][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) bv[j] = Bs[k][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * bv[j];
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int m = m0 + ty + 16 * i;
    if (m >= OC) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int p = p0 + tx + 16 * j;
      if (p >= P) continue;
      const long long o = ((long long)n * OC + m) * P + p;
      float v_ = acc[i][j]; v_ += b[m]; y[o] = rx_relu(v_);
    }
  }
  (void)CIN_G; (void)COUT_G; (void)KH; (void)KW; (void)DH; (void)DW; (void)PT; (void)PL;
}

// k4_conv: grouped direct conv ConvShape { in_c: 32, in_h: 16, in_w: 16, out_c: 32, out_h: 16, out_w: 16, kernel: [3, 3], stride: [1, 1], dilation: [1, 1], pads: [1, 1, 1, 1], group: 8 }, 8 output row(s) per block
extern "C" __global__ void __launch_bounds__(256) k4_conv(RX_ARGS) {
  const int IC = 32, IH = 16, IW = 16, OC = 32, OH = 16, OW = 16;
  const int CIN_G = 4, COUT_G = 4, KH = 3, KW = 3, SH = 1, SW = 1, DH = 1, DW = 1, PT = 1, PL = 1;
  const int TR = 8, TH = 10, TW = 18;
  __shared__ float sx[720];
  __shared__ float sw[144];
  const int n = blockIdx.z, g = blockIdx.y, oy0 = blockIdx.x * TR;
  const int iy0 = oy0 * SH - PT;
  const float* xp = x + ((long long)n * IC + (long long)g * CIN_G) * IH * IW;
  for (int t = threadIdx.x; t < CIN_G * TH * TW; t += blockDim.x) {
    const int tx = t % TW, ty = (t / TW) % TH, c = t / (TW * TH);
    const int iy = iy0 + ty, ix = tx - PL;
    sx[t] = (iy >= 0 && iy < IH && ix >= 0 && ix < IW) ? xp[((long long)c * IH + iy) * IW + ix] : 0.0f;
  }
  const float* wp = w + (long long)g * COUT_G * CIN_G * KH * KW;
  for (int t = threadIdx.x; t < COUT_G * CIN_G * KH * KW; t += blockDim.x) sw[t] = wp[t];
  __syncthreads();
  for (int t = threadIdx.x; t < COUT_G * TR * OW; t += blockDim.x) {
    const int ox = t % OW, ty = (t / OW) % TR, ocg = t / (OW * TR);
    const int oy = oy0 + ty;
    if (oy >= OH) continue;
    const float* sxp = sx + ty * SH * TW + ox * SW;
    const float* swp = sw + ocg * CIN_G * KH * KW;
    float acc = 0.0f;
#pragma unroll
    for (int c = 0; c < CIN_G; ++c) {
#pragma unroll
      for (int ky = 0; ky < KH; ++ky) {
#pragma unroll
        for (int kx = 0; kx < KW; ++kx) {
          acc += sxp[(c * TH + ky * DH) * TW + kx * DW] * swp[(c * KH + ky) * KW + kx];
        }
      }
    }
    const int oc = g * COUT_G + ocg;
    const long long o = (((long long)n * OC + oc) * OH + oy) * OW + ox;
    float v_ = acc; v_ += b[oc]; y[o] = rx_relu(v_);
  }
}

// k5_conv: 1x1 conv as tiled SGEMM ConvShape { in_c: 64, in_h: 16, in_w: 16, out_c: 256, out_h: 16, out_w: 16, kernel: [1, 1], stride: [1, 1], dilation: [1, 1], pads: [0, 0, 0, 0], group: 1 }
extern "C" __global__ void __launch_bounds__(256) k5_conv(RX_ARGS) {
  const int IC = 64, IH = 16, IW = 16, OC = 256, OH = 16, OW = 16;
  const int CIN_G = 64, COUT_G = 256, KH = 1, KW = 1, SH = 1, SW = 1, DH = 1, DW = 1, PT = 0, PL = 0;
  const int P = OH * OW;
  __shared__ float As[16][64];
  __shared__ float Bs[16][64];
  const int n = blockIdx.z, m0 = blockIdx.y * 64, p0 = blockIdx.x * 64;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const float* xp = x + (long long)n * IC * IH * IW;
  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;
  }
  for (int k0 = 0; k0 < IC; k0 += 16) {
    for (int t = threadIdx.x; t < 16 * 64; t += 256) {
      const int am = t / 16, ak = t % 16;
      As[ak][am] = (m0 + am < OC && k0 + ak < IC) ? w[(long long)(m0 + am) * IC + k0 + ak] : 0.0f;
      const int bk = t / 64, bp = t % 64, p = p0 + bp;
      float v = 0.0f;
      if (k0 + bk < IC && p < P) {
        const int oy = p / OW, ox = p % OW;
        v = xp[(long long)(k0 + bk) * IH * IW + oy * SH * IW + ox * SW];
      }
      Bs[bk][bp] = v;
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < 16; ++k) {
      float a[4], bv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = As[k][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) bv[j] = Bs[k][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * bv[j];
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int m = m0 + ty + 16 * i;
    if (m >= OC) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int p = p0 + tx + 16 * j;
      if (p >= P) continue;
      const long long o = ((long long)n * OC + m) * P + p;
      float v_ = acc[i][j]; v_ += b[m]; y[o] = v_;
    }
  }
  (void)CIN_G; (void)COUT_G; (void)KH; (void)KW; (void)DH; (void)DW; (void)PT; (void)PL;
}

// k6_conv: 1x1 conv as tiled SGEMM ConvShape { in_c: 32, in_h: 16, in_w: 16, out_c: 256, out_h: 16, out_w: 16, kernel: [1, 1], stride: [1, 1], dilation: [1, 1], pads: [0, 0, 0, 0], group: 1 }
extern "C" __global__ void __launch_bounds__(256) k6_conv(RX_ARGS) {
  const int IC = 32, IH = 16, IW = 16, OC = 256, OH = 16, OW = 16;
  const int CIN_G = 32, COUT_G = 256, KH = 1, KW = 1, SH = 1, SW = 1, DH = 1, DW = 1, PT = 0, PL = 0;
  const int P = OH * OW;
  __shared__ float As[16][64];
  __shared__ float Bs[16][64];
  const int n = blockIdx.z, m0 = blockIdx.y * 64, p0 = blockIdx.x * 64;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const float* xp = x + (long long)n * IC * IH * IW;
  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;
  }
  for (int k0 = 0; k0 < IC; k0 += 16) {
    for (int t = threadIdx.x; t < 16 * 64; t += 256) {
      const int am = t / 16, ak = t % 16;
      As[ak][am] = (m0 + am < OC && k0 + ak < IC) ? w[(long long)(m0 + am) * IC + k0 + ak] : 0.0f;
      const int bk = t / 64, bp = t % 64, p = p0 + bp;
      float v = 0.0f;
      if (k0 + bk < IC && p < P) {
        const int oy = p / OW, ox = p % OW;
        v = xp[(long long)(k0 + bk) * IH * IW + oy * SH * IW + ox * SW];
      }
      Bs[bk][bp] = v;
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < 16; ++k) {
      float a[4], bv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = As[k][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) bv[j] = Bs[k][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * bv[j];
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int m = m0 + ty + 16 * i;
    if (m >= OC) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int p = p0 + tx + 16 * j;
      if (p >= P) continue;
      const long long o = ((long long)n * OC + m) * P + p;
      float v_ = acc[i][j]; v_ += b[m]; v_ += r[o]; y[o] = rx_relu(v_);
    }
  }
  (void)CIN_G; (void)COUT_G; (void)KH; (void)KW; (void)DH; (void)DW; (void)PT; (void)PL;
}

// k7_conv: 1x1 conv as tiled SGEMM ConvShape { in_c: 256, in_h: 16, in_w: 16, out_c: 64, out_h: 16, out_w: 16, kernel: [1, 1], stride: [1, 1], dilation: [1, 1], pads: [0, 0, 0, 0], group: 1 }
extern "C" __global__ void __launch_bounds__(256) k7_conv(RX_ARGS) {
  const int IC = 256, IH = 16, IW = 16, OC = 64, OH = 16, OW = 16;
  const int CIN_G = 256, COUT_G = 64, KH = 1, KW = 1, SH = 1, SW = 1, DH = 1, DW = 1, PT = 0, PL = 0;
  const int P = OH * OW;
  __shared__ float As[16][64];
  __shared__ float Bs[16][64];
  const int n = blockIdx.z, m0 = blockIdx.y * 64, p0 = blockIdx.x * 64;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const float* xp = x + (long long)n * IC * IH * IW;
  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;
  }
  for (int k0 = 0; k0 < IC; k0 += 16) {
    for (int t = threadIdx.x; t < 16 * 64; t += 256) {
      const int am = t / 16, ak = t % 16;
      As[ak][am] = (m0 + am < OC && k0 + ak < IC) ? w[(long long)(m0 + am) * IC + k0 + ak] : 0.0f;
      const int bk = t / 64, bp = t % 64, p = p0 + bp;
      float v = 0.0f;
      if (k0 + bk < IC && p < P) {
        const int oy = p / OW, ox = p % OW;
        v = xp[(long long)(k0 + bk) * IH * IW + oy * SH * IW + ox * SW];
      }
      Bs[bk][bp] = v;
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < 16; ++k) {
      float a[4], bv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = As[k][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) bv[j] = Bs[k][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * bv[j];
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int m = m0 + ty + 16 * i;
    if (m >= OC) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int p = p0 + tx + 16 * j;
      if (p >= P) continue;
      const long long o = ((long long)n * OC + m) * P + p;
      float v_ = acc[i][j]; v_ += b[m]; y[o] = rx_relu(v_);
    }
  }
  (void)CIN_G; (void)COUT_G; (void)KH; (void)KW; (void)DH; (void)DW; (void)PT; (void)PL;
}

// k8_conv: grouped direct conv ConvShape { in_c: 64, in_h: 16, in_w: 16, out_c: 64, out_h: 8, out_w: 8, kernel: [3, 3], stride: [2, 2], dilation: [1, 1], pads: [1, 1, 1, 1], group: 8 }, 8 output row(s) per block
extern "C" __global__ void __launch_bounds__(256) k8_conv(RX_ARGS) {
  const int IC = 64, IH = 16, IW = 16, OC = 64, OH = 8, OW = 8;
  const int CIN_G = 8, COUT_G = 8, KH = 3, KW = 3, SH = 2, SW = 2, DH = 1, DW = 1, PT = 1, PL = 1;
  const int TR = 8, TH = 17, TW = 17;
  __shared__ float sx[2312];
  __shared__ float sw[576];
  const int n = blockIdx.z, g = blockIdx.y, oy0 = blockIdx.x * TR;
  const int iy0 = oy0 * SH - PT;
  const float* xp = x + ((long long)n * IC + (long long)g * CIN_G) * IH * IW;
  for (int t = threadIdx.x; t < CIN_G * TH * TW; t += blockDim.x) {
    const int tx = t % TW, ty = (t / TW) % TH, c = t / (TW * TH);
    const int iy = iy0 + ty, ix = tx - PL;
    sx[t] = (iy >= 0 && iy < IH && ix >= 0 && ix < IW) ? xp[((long long)c * IH + iy) * IW + ix] : 0.0f;
  }
  const float* wp = w + (long long)g * COUT_G * CIN_G * KH * KW;
  for (int t = threadIdx.x; t < COUT_G * CIN_G * KH * KW; t += blockDim.x) sw[t] = wp[t];
  __syncthreads();
  for (int t = threadIdx.x; t < COUT_G * TR * OW; t += blockDim.x) {
    const int ox = t % OW, ty = (t / OW) % TR, ocg = t / (OW * TR);
    const int oy = oy0 + ty;
    if (oy >= OH) continue;
    const float* sxp = sx + ty * SH * TW + ox * SW;
    const float* swp = sw + ocg * CIN_G * KH * KW;
    float acc = 0.0f;
#pragma unroll
    for (int c = 0; c < CIN_G; ++c) {
#pragma unroll
      for (int ky = 0; ky < KH; ++ky) {
#pragma unroll
        for (int kx = 0; kx < KW; ++kx) {
          acc += sxp[(c * TH + ky * DH) * TW + kx * DW] * swp[(c * KH + ky) * KW + kx];
        }
      }
    }
    const int oc = g * COUT_G + ocg;
    const long long o = (((long long)n * OC + oc) * OH + oy) * OW + ox;
    float v_ = acc; v_ += b[oc]; y[o] = rx_relu(v_);
  }
}

// k9_conv: 1x1 conv as tiled SGEMM ConvShape { in_c: 256, in_h: 16, in_w: 16, out_c: 512, out_h: 8, out_w: 8, kernel: [1, 1], stride: [2, 2], dilation: [1, 1], pads: [0, 0, 0, 0], group: 1 }
extern "C" __global__ void __launch_bounds__(256) k9_conv(RX_ARGS) {
  const int IC = 256, IH = 16, IW = 16, OC = 512, OH = 8, OW = 8;
  const int CIN_G = 256, COUT_G = 512, KH = 1, KW = 1, SH = 2, SW = 2, DH = 1, DW = 1, PT = 0, PL = 0;
  const int P = OH * OW;
  __shared__ float As[16][64];
  __shared__ float Bs[16][64];
  const int n = blockIdx.z, m0 = blockIdx.y * 64, p0 = blockIdx.x * 64;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const float* xp = x + (long long)n * IC * IH * IW;
  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;
  }
  for (int k0 = 0; k0 < IC; k0 += 16) {
    for (int t = threadIdx.x; t < 16 * 64; t += 256) {
      const int am = t / 16, ak = t % 16;
      As[ak][am] = (m0 + am < OC && k0 + ak < IC) ? w[(long long)(m0 + am) * IC + k0 + ak] : 0.0f;
      const int bk = t / 64, bp = t % 64, p = p0 + bp;
      float v = 0.0f;
      if (k0 + bk < IC && p < P) {
        const int oy = p / OW, ox = p % OW;
        v = xp[(long long)(k0 + bk) * IH * IW + oy * SH * IW + ox * SW];
      }
      Bs[bk][bp] = v;
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < 16; ++k) {
      float a[4], bv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = As[k][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) bv[j] = Bs[k][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * bv[j];
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int m = m0 + ty + 16 * i;
    if (m >= OC) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int p = p0 + tx + 16 * j;
      if (p >= P) continue;
      const long long o = ((long long)n * OC + m) * P + p;
      float v_ = acc[i][j]; v_ += b[m]; y[o] = v_;
    }
  }
  (void)CIN_G; (void)COUT_G; (void)KH; (void)KW; (void)DH; (void)DW; (void)PT; (void)PL;
}

// k10_conv: 1x1 conv as tiled SGEMM ConvShape { in_c: 64, in_h: 8, in_w: 8, out_c: 512, out_h: 8, out_w: 8, kernel: [1, 1], stride: [1, 1], dilation: [1, 1], pads: [0, 0, 0, 0], group: 1 }
extern "C" __global__ void __launch_bounds__(256) k10_conv(RX_ARGS) {
  const int IC = 64, IH = 8, IW = 8, OC = 512, OH = 8, OW = 8;
  const int CIN_G = 64, COUT_G = 512, KH = 1, KW = 1, SH = 1, SW = 1, DH = 1, DW = 1, PT = 0, PL = 0;
  const int P = OH * OW;
  __shared__ float As[16][64];
  __shared__ float Bs[16][64];
  const int n = blockIdx.z, m0 = blockIdx.y * 64, p0 = blockIdx.x * 64;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const float* xp = x + (long long)n * IC * IH * IW;
  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;
  }
  for (int k0 = 0; k0 < IC; k0 += 16) {
    for (int t = threadIdx.x; t < 16 * 64; t += 256) {
      const int am = t / 16, ak = t % 16;
      As[ak][am] = (m0 + am < OC && k0 + ak < IC) ? w[(long long)(m0 + am) * IC + k0 + ak] : 0.0f;
      const int bk = t / 64, bp = t % 64, p = p0 + bp;
      float v = 0.0f;
      if (k0 + bk < IC && p < P) {
        const int oy = p / OW, ox = p % OW;
        v = xp[(long long)(k0 + bk) * IH * IW + oy * SH * IW + ox * SW];
      }
      Bs[bk][bp] = v;
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < 16; ++k) {
      float a[4], bv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = As[k][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) bv[j] = Bs[k][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * bv[j];
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int m = m0 + ty + 16 * i;
    if (m >= OC) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int p = p0 + tx + 16 * j;
      if (p >= P) continue;
      const long long o = ((long long)n * OC + m) * P + p;
      float v_ = acc[i][j]; v_ += b[m]; v_ += r[o]; y[o] = rx_relu(v_);
    }
  }
  (void)CIN_G; (void)COUT_G; (void)KH; (void)KW; (void)DH; (void)DW; (void)PT; (void)PL;
}

// k11_conv: 1x1 conv as tiled SGEMM ConvShape { in_c: 512, in_h: 8, in_w: 8, out_c: 128, out_h: 8, out_w: 8, kernel: [1, 1], stride: [1, 1], dilation: [1, 1], pads: [0, 0, 0, 0], group: 1 }
extern "C" __global__ void __launch_bounds__(256) k11_conv(RX_ARGS) {
  const int IC = 512, IH = 8, IW = 8, OC = 128, OH = 8, OW = 8;
  const int CIN_G = 512, COUT_G = 128, KH = 1, KW = 1, SH = 1, SW = 1, DH = 1, DW = 1, PT = 0, PL = 0;
  const int P = OH * OW;
  __shared__ float As[16][64];
  __shared__ float Bs[16][64];
  const int n = blockIdx.z, m0 = blockIdx.y * 64, p0 = blockIdx.x * 64;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const float* xp = x + (long long)n * IC * IH * IW;
  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;
  }
  for (int k0 = 0; k0 < IC; k0 += 16) {
    for (int t = threadIdx.x; t < 16 * 64; t += 256) {
      const int am = t / 16, ak = t % 16;
      As[ak][am] = (m0 + am < OC && k0 + ak < IC) ? w[(long long)(m0 + am) * IC + k0 + ak] : 0.0f;
      const int bk = t / 64, bp = t % 64, p = p0 + bp;
      float v = 0.0f;
      if (k0 + bk < IC && p < P) {
        const int oy = p / OW, ox = p % OW;
        v = xp[(long long)(k0 + bk) * IH * IW + oy * SH * IW + ox * SW];
      }
      Bs[bk][bp] = v;
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < 16; ++k) {
      float a[4], bv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = As[k][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) bv[j] = Bs[k][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * bv[j];
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int m = m0 + ty + 16 * i;
    if (m >= OC) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int p = p0 + tx + 16 * j;
      if (p >= P) continue;
      const long long o = ((long long)n * OC + m) * P + p;
      float v_ = acc[i][j]; v_ += b[m]; y[o] = rx_relu(v_);
    }
  }
  (void)CIN_G; (void)COUT_G; (void)KH; (void)KW; (void)DH; (void)DW; (void)PT; (void)PL;
}

// k12_conv: grouped direct conv ConvShape { in_c: 128, in_h: 8, in_w: 8, out_c: 128, out_h: 4, out_w: 4, kernel: [3, 3], stride: [2, 2], dilation: [1, 1], pads: [1, 1, 1, 1], group: 8 }, 4 output row(s) per block
extern "C" __global__ void __launch_bounds__(256) k12_conv(RX_ARGS) {
  const int IC = 128, IH = 8, IW = 8, OC = 128, OH = 4, OW = 4;
  const int CIN_G = 16, COUT_G = 16, KH = 3, KW = 3, SH = 2, SW = 2, DH = 1, DW = 1, PT = 1, PL = 1;
  const int TR = 4, TH = 9, TW = 9;
  __shared__ float sx[1296];
  __shared__ float sw[2304];
  const int n = blockIdx.z, g = blockIdx.y, oy0 = blockIdx.x * TR;
  const int iy0 = oy0 * SH - PT;
  const float* xp = x + ((long long)n * IC + (long long)g * CIN_G) * IH * IW;
  for (int t = threadIdx.x; t < CIN_G * TH * TW; t += blockDim.x) {
    const int tx = t % TW, ty = (t / TW) % TH, c = t / (TW * TH);
    const int iy = iy0 + ty, ix = tx - PL;
    sx[t] = (iy >= 0 && iy < IH && ix >= 0 && ix < IW) ? xp[((long long)c * IH + iy) * IW + ix] : 0.0f;
  }
  const float* wp = w + (long long)g * COUT_G * CIN_G * KH * KW;
  for (int t = threadIdx.x; t < COUT_G * CIN_G * KH * KW; t += blockDim.x) sw[t] = wp[t];
  __syncthreads();
  for (int t = threadIdx.x; t < COUT_G * TR * OW; t += blockDim.x) {
    const int ox = t % OW, ty = (t / OW) % TR, ocg = t / (OW * TR);
    const int oy = oy0 + ty;
    if (oy >= OH) continue;
    const float* sxp = sx + ty * SH * TW + ox * SW;
    const float* swp = sw + ocg * CIN_G * KH * KW;
    float acc = 0.0f;
#pragma unroll
    for (int c = 0; c < CIN_G; ++c) {
#pragma unroll
      for (int ky = 0; ky < KH; ++ky) {
#pragma unroll
        for (int kx = 0; kx < KW; ++kx) {
          acc += sxp[(c * TH + ky * DH) * TW + kx * DW] * swp[(c * KH + ky) * KW + kx];
        }
      }
    }
    const int oc = g * COUT_G + ocg;
    const long long o = (((long long)n * OC + oc) * OH + oy) * OW + ox;
    float v_ = acc; v_ += b[oc]; y[o] = rx_relu(v_);
  }
}

// k13_conv: 1x1 conv as tiled SGEMM ConvShape { in_c: 512, in_h: 8, in_w: 8, out_c: 1024, out_h: 4, out_w: 4, kernel: [1, 1], stride: [2, 2], dilation: [1, 1], pads: [0, 0, 0, 0], group: 1 }
extern "C" __global__ void __launch_bounds__(256) k13_conv(RX_ARGS) {
  const int IC = 512, IH = 8, IW = 8, OC = 1024, OH = 4, OW = 4;
  const int CIN_G = 512, COUT_G = 1024, KH = 1, KW = 1, SH = 2, SW = 2, DH = 1, DW = 1, PT = 0, PL = 0;
  const int P = OH * OW;
  __shared__ float As[16][64];
  __shared__ float Bs[16][64];
  const int n = blockIdx.z, m0 = blockIdx.y * 64, p0 = blockIdx.x * 64;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const float* xp = x + (long long)n * IC * IH * IW;
  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;
  }
  for (int k0 = 0; k0 < IC; k0 += 16) {
    for (int t = threadIdx.x; t < 16 * 64; t += 256) {
      const int am = t / 16, ak = t % 16;
      As[ak][am] = (m0 + am < OC && k0 + ak < IC) ? w[(long long)(m0 + am) * IC + k0 + ak] : 0.0f;
      const int bk = t / 64, bp = t % 64, p = p0 + bp;
      float v = 0.0f;
      if (k0 + bk < IC && p < P) {
        const int oy = p / OW, ox = p % OW;
        v = xp[(long long)(k0 + bk) * IH * IW + oy * SH * IW + ox * SW];
      }
      Bs[bk][bp] = v;
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < 16; ++k) {
      float a[4], bv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = As[k][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) bv[j] = Bs[k][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * bv[j];
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int m = m0 + ty + 16 * i;
    if (m >= OC) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int p = p0 + tx + 16 * j;
      if (p >= P) continue;
      const long long o = ((long long)n * OC + m) * P + p;
      float v_ = acc[i][j]; v_ += b[m]; y[o] = v_;
    }
  }
  (void)CIN_G; (void)COUT_G; (void)KH; (void)KW; (void)DH; (void)DW; (void)PT; (void)PL;
}

// k14_conv: 1x1 conv as tiled SGEMM ConvShape { in_c: 128, in_h: 4, in_w: 4, out_c: 1024, out_h: 4, out_w: 4, kernel: [1, 1], stride: [1, 1], dilation: [1, 1], pads: [0, 0, 0, 0], group: 1 }
extern "C" __global__ void __launch_bounds__(256) k14_conv(RX_ARGS) {
  const int IC = 128, IH = 4, IW = 4, OC = 1024, OH = 4, OW = 4;
  const int CIN_G = 128, COUT_G = 1024, KH = 1, KW = 1, SH = 1, SW = 1, DH = 1, DW = 1, PT = 0, PL = 0;
  const int P = OH * OW;
  __shared__ float As[16][64];
  __shared__ float Bs[16][64];
  const int n = blockIdx.z, m0 = blockIdx.y * 64, p0 = blockIdx.x * 64;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const float* xp = x + (long long)n * IC * IH * IW;
  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;
  }
  for (int k0 = 0; k0 < IC; k0 += 16) {
    for (int t = threadIdx.x; t < 16 * 64; t += 256) {
      const int am = t / 16, ak = t % 16;
      As[ak][am] = (m0 + am < OC && k0 + ak < IC) ? w[(long long)(m0 + am) * IC + k0 + ak] : 0.0f;
      const int bk = t / 64, bp = t % 64, p = p0 + bp;
      float v = 0.0f;
      if (k0 + bk < IC && p < P) {
        const int oy = p / OW, ox = p % OW;
        v = xp[(long long)(k0 + bk) * IH * IW + oy * SH * IW + ox * SW];
      }
      Bs[bk][bp] = v;
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < 16; ++k) {
      float a[4], bv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = As[k][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) bv[j] = Bs[k][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * bv[j];
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int m = m0 + ty + 16 * i;
    if (m >= OC) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int p = p0 + tx + 16 * j;
      if (p >= P) continue;
      const long long o = ((long long)n * OC + m) * P + p;
      float v_ = acc[i][j]; v_ += b[m]; v_ += r[o]; y[o] = rx_relu(v_);
    }
  }
  (void)CIN_G; (void)COUT_G; (void)KH; (void)KW; (void)DH; (void)DW; (void)PT; (void)PL;
}

// k15_conv: 1x1 conv as tiled SGEMM ConvShape { in_c: 1024, in_h: 4, in_w: 4, out_c: 256, out_h: 4, out_w: 4, kernel: [1, 1], stride: [1, 1], dilation: [1, 1], pads: [0, 0, 0, 0], group: 1 }
extern "C" __global__ void __launch_bounds__(256) k15_conv(RX_ARGS) {
  const int IC = 1024, IH = 4, IW = 4, OC = 256, OH = 4, OW = 4;
  const int CIN_G = 1024, COUT_G = 256, KH = 1, KW = 1, SH = 1, SW = 1, DH = 1, DW = 1, PT = 0, PL = 0;
  const int P = OH * OW;
  __shared__ float As[16][64];
  __shared__ float Bs[16][64];
  const int n = blockIdx.z, m0 = blockIdx.y * 64, p0 = blockIdx.x * 64;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const float* xp = x + (long long)n * IC * IH * IW;
  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;
  }
  for (int k0 = 0; k0 < IC; k0 += 16) {
    for (int t = threadIdx.x; t < 16 * 64; t += 256) {
      const int am = t / 16, ak = t % 16;
      As[ak][am] = (m0 + am < OC && k0 + ak < IC) ? w[(long long)(m0 + am) * IC + k0 + ak] : 0.0f;
      const int bk = t / 64, bp = t % 64, p = p0 + bp;
      float v = 0.0f;
      if (k0 + bk < IC && p < P) {
        const int oy = p / OW, ox = p % OW;
        v = xp[(long long)(k0 + bk) * IH * IW + oy * SH * IW + ox * SW];
      }
      Bs[bk][bp] = v;
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < 16; ++k) {
      float a[4], bv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = As[k][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) bv[j] = Bs[k][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * bv[j];
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int m = m0 + ty + 16 * i;
    if (m >= OC) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int p = p0 + tx + 16 * j;
      if (p >= P) continue;
      const long long o = ((long long)n * OC + m) * P + p;
      float v_ = acc[i][j]; v_ += b[m]; y[o] = rx_relu(v_);
    }
  }
  (void)CIN_G; (void)COUT_G; (void)KH; (void)KW; (void)DH; (void)DW; (void)PT; (void)PL;
}

// k16_conv: grouped direct conv ConvShape { in_c: 256, in_h: 4, in_w: 4, out_c: 256, out_h: 2, out_w: 2, kernel: [3, 3], stride: [2, 2], dilation: [1, 1], pads: [1, 1, 1, 1], group: 8 }, 2 output row(s) per block
extern "C" __global__ void __launch_bounds__(256) k16_conv(RX_ARGS) {
  const int IC = 256, IH = 4, IW = 4, OC = 256, OH = 2, OW = 2;
  const int CIN_G = 32, COUT_G = 32, KH = 3, KW = 3, SH = 2, SW = 2, DH = 1, DW = 1, PT = 1, PL = 1;
  const int TR = 2, TH = 5, TW = 5;
  __shared__ float sx[800];
  __shared__ float sw[9216];
  const int n = blockIdx.z, g = blockIdx.y, oy0 = blockIdx.x * TR;
  const int iy0 = oy0 * SH - PT;
  const float* xp = x + ((long long)n * IC + (long long)g * CIN_G) * IH * IW;
  for (int t = threadIdx.x; t < CIN_G * TH * TW; t += blockDim.x) {
    const int tx = t % TW, ty = (t / TW) % TH, c = t / (TW * TH);
    const int iy = iy0 + ty, ix = tx - PL;
    sx[t] = (iy >= 0 && iy < IH && ix >= 0 && ix < IW) ? xp[((long long)c * IH + iy) * IW + ix] : 0.0f;
  }
  const float* wp = w + (long long)g * COUT_G * CIN_G * KH * KW;
  for (int t = threadIdx.x; t < COUT_G * CIN_G * KH * KW; t += blockDim.x) sw[t] = wp[t];
  __syncthreads();
  for (int t = threadIdx.x; t < COUT_G * TR * OW; t += blockDim.x) {
    const int ox = t % OW, ty = (t / OW) % TR, ocg = t / (OW * TR);
    const int oy = oy0 + ty;
    if (oy >= OH) continue;
    const float* sxp = sx + ty * SH * TW + ox * SW;
    const float* swp = sw + ocg * CIN_G * KH * KW;
    float acc = 0.0f;
#pragma unroll
    for (int c = 0; c < CIN_G; ++c) {
#pragma unroll
      for (int ky = 0; ky < KH; ++ky) {
#pragma unroll
        for (int kx = 0; kx < KW; ++kx) {
          acc += sxp[(c * TH + ky * DH) * TW + kx * DW] * swp[(c * KH + ky) * KW + kx];
        }
      }
    }
    const int oc = g * COUT_G + ocg;
    const long long o = (((long long)n * OC + oc) * OH + oy) * OW + ox;
    float v_ = acc; v_ += b[oc]; y[o] = rx_relu(v_);
  }
}

// k17_conv: 1x1 conv as tiled SGEMM ConvShape { in_c: 1024, in_h: 4, in_w: 4, out_c: 2048, out_h: 2, out_w: 2, kernel: [1, 1], stride: [2, 2], dilation: [1, 1], pads: [0, 0, 0, 0], group: 1 }
extern "C" __global__ void __launch_bounds__(256) k17_conv(RX_ARGS) {
  const int IC = 1024, IH = 4, IW = 4, OC = 2048, OH = 2, OW = 2;
  const int CIN_G = 1024, COUT_G = 2048, KH = 1, KW = 1, SH = 2, SW = 2, DH = 1, DW = 1, PT = 0, PL = 0;
  const int P = OH * OW;
  __shared__ float As[16][64];
  __shared__ float Bs[16][64];
  const int n = blockIdx.z, m0 = blockIdx.y * 64, p0 = blockIdx.x * 64;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const float* xp = x + (long long)n * IC * IH * IW;
  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;
  }
  for (int k0 = 0; k0 < IC; k0 += 16) {
    for (int t = threadIdx.x; t < 16 * 64; t += 256) {
      const int am = t / 16, ak = t % 16;
      As[ak][am] = (m0 + am < OC && k0 + ak < IC) ? w[(long long)(m0 + am) * IC + k0 + ak] : 0.0f;
      const int bk = t / 64, bp = t % 64, p = p0 + bp;
      float v = 0.0f;
      if (k0 + bk < IC && p < P) {
        const int oy = p / OW, ox = p % OW;
        v = xp[(long long)(k0 + bk) * IH * IW + oy * SH * IW + ox * SW];
      }
      Bs[bk][bp] = v;
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < 16; ++k) {
      float a[4], bv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = As[k][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) bv[j] = Bs[k][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * bv[j];
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int m = m0 + ty + 16 * i;
    if (m >= OC) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int p = p0 + tx + 16 * j;
      if (p >= P) continue;
      const long long o = ((long long)n * OC + m) * P + p;
      float v_ = acc[i][j]; v_ += b[m]; y[o] = v_;
    }
  }
  (void)CIN_G; (void)COUT_G; (void)KH; (void)KW; (void)DH; (void)DW; (void)PT; (void)PL;
}

// k18_conv: 1x1 conv as tiled SGEMM ConvShape { in_c: 256, in_h: 2, in_w: 2, out_c: 2048, out_h: 2, out_w: 2, kernel: [1, 1], stride: [1, 1], dilation: [1, 1], pads: [0, 0, 0, 0], group: 1 }
extern "C" __global__ void __launch_bounds__(256) k18_conv(RX_ARGS) {
  const int IC = 256, IH = 2, IW = 2, OC = 2048, OH = 2, OW = 2;
  const int CIN_G = 256, COUT_G = 2048, KH = 1, KW = 1, SH = 1, SW = 1, DH = 1, DW = 1, PT = 0, PL = 0;
  const int P = OH * OW;
  __shared__ float As[16][64];
  __shared__ float Bs[16][64];
  const int n = blockIdx.z, m0 = blockIdx.y * 64, p0 = blockIdx.x * 64;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const float* xp = x + (long long)n * IC * IH * IW;
  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;
  }
  for (int k0 = 0; k0 < IC; k0 += 16) {
    for (int t = threadIdx.x; t < 16 * 64; t += 256) {
      const int am = t / 16, ak = t % 16;
      As[ak][am] = (m0 + am < OC && k0 + ak < IC) ? w[(long long)(m0 + am) * IC + k0 + ak] : 0.0f;
      const int bk = t / 64, bp = t % 64, p = p0 + bp;
      float v = 0.0f;
      if (k0 + bk < IC && p < P) {
        const int oy = p / OW, ox = p % OW;
        v = xp[(long long)(k0 + bk) * IH * IW + oy * SH * IW + ox * SW];
      }
      Bs[bk][bp] = v;
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < 16; ++k) {
      float a[4], bv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = As[k][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) bv[j] = Bs[k][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * bv[j];
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int m = m0 + ty + 16 * i;
    if (m >= OC) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int p = p0 + tx + 16 * j;
      if (p >= P) continue;
      const long long o = ((long long)n * OC + m) * P + p;
      float v_ = acc[i][j]; v_ += b[m]; v_ += r[o]; y[o] = rx_relu(v_);
    }
  }
  (void)CIN_G; (void)COUT_G; (void)KH; (void)KW; (void)DH; (void)DW; (void)PT; (void)PL;
}

// k19_global_avg_pool: global average pool, 2048 channels of 4
extern "C" __global__ void __launch_bounds__(256) k19_global_avg_pool(RX_ARGS) {
  const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (long long)batch * 2048) return;
  const float* xp = x + i * 4;
  float acc = 0.0f;
  for (int s = 0; s < 4; ++s) acc += xp[s];
  y[i] = acc * (1.0f / 4.0f);
}

// k20_dense: dense 2048 -> 10
extern "C" __global__ void __launch_bounds__(256) k20_dense(RX_ARGS) {
  const int K = 2048, M = 10;
  __shared__ float red[256];
  const int n = blockIdx.y, lane = threadIdx.x % 32, m = blockIdx.x * 8 + threadIdx.x / 32;
  float acc = 0.0f;
  if (m < M) {
    const float* xp = x + (long long)n * K;
    const float* wp = w + (long long)m * K;
    for (int k = lane; k < K; k += 32) acc += xp[k] * wp[k];
  }
  red[threadIdx.x] = acc;
  __syncthreads();
  for (int s = 16; s > 0; s >>= 1) {
    if (lane < s) red[threadIdx.x] += red[threadIdx.x + s];
    __syncthreads();
  }
  if (lane == 0 && m < M) { float v_ = red[threadIdx.x]; v_ += b[m]; y[(long long)n * M + m] = v_; }
}
