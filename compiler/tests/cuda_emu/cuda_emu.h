// CPU emulation of the CUDA C subset that back::cuda emits, so g++ can run the generated kernels.
// Each block runs on one OS thread; its threads are ucontext fibers switched at __syncthreads.
#pragma once
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ucontext.h>
#include <vector>

struct rx_dim3 {
  unsigned x, y, z;
};
static rx_dim3 threadIdx, blockIdx, blockDim, gridDim;

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
// Every fiber of a block shares the function's statics, as a block shares its shared memory; blocks
// run one after another, and every kernel writes its shared arrays before reading them.
#define __shared__ static

namespace rx_emu {
typedef void (*Kernel)(const float*, const float*, const float*, const float*, float*, int);

struct Fiber {
  ucontext_t ctx;
  std::vector<char> stack;
  unsigned tx, ty, tz;
  bool done, at_barrier;
};

static ucontext_t scheduler;
static Fiber* current = nullptr;
static Kernel kernel_fn;
static const float *arg_x, *arg_w, *arg_b, *arg_r;
static float* arg_y;
static int arg_batch;

static void trampoline() {
  kernel_fn(arg_x, arg_w, arg_b, arg_r, arg_y, arg_batch);
  current->done = true;
  swapcontext(&current->ctx, &scheduler);
}

inline void syncthreads() {
  current->at_barrier = true;
  swapcontext(&current->ctx, &scheduler);
}

// Runs every block of the grid; aborts on a barrier that only some threads of a block reach.
inline void launch(const char* name, Kernel k, rx_dim3 grid, rx_dim3 block, const float* x,
                   const float* w, const float* b, const float* r, float* y, int batch) {
  static std::vector<Fiber> fibers;
  const unsigned n = block.x * block.y * block.z;
  if (fibers.size() < n) fibers.resize(n);
  kernel_fn = k;
  arg_x = x, arg_w = w, arg_b = b, arg_r = r, arg_y = y, arg_batch = batch;
  gridDim = grid;
  blockDim = block;
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        blockIdx = {bx, by, bz};
        for (unsigned t = 0; t < n; ++t) {
          Fiber& f = fibers[t];
          if (f.stack.empty()) f.stack.resize(256 * 1024);
          getcontext(&f.ctx);
          f.ctx.uc_stack.ss_sp = f.stack.data();
          f.ctx.uc_stack.ss_size = f.stack.size();
          f.ctx.uc_link = nullptr;
          makecontext(&f.ctx, trampoline, 0);
          f.tx = t % block.x, f.ty = (t / block.x) % block.y, f.tz = t / (block.x * block.y);
          f.done = false;
        }
        for (;;) {
          unsigned done = 0, waiting = 0;
          for (unsigned t = 0; t < n; ++t) {
            Fiber& f = fibers[t];
            if (f.done) {
              ++done;
              continue;
            }
            f.at_barrier = false;
            threadIdx = {f.tx, f.ty, f.tz};
            current = &f;
            swapcontext(&scheduler, &f.ctx);
            if (f.done) ++done; else ++waiting;
          }
          if (waiting == 0) break;
          if (done != 0) {
            std::fprintf(stderr, "%s: block (%u,%u,%u): %u thread(s) exited while %u wait at __syncthreads\n",
                         name, bx, by, bz, done, waiting);
            std::abort();
          }
        }
      }
}
}  // namespace rx_emu

#define __syncthreads() rx_emu::syncthreads()
