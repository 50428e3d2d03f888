// CPU emulation of the CUDA C subset that back::cuda emits, so g++ can run the generated kernels.
// Each block runs on one OS thread; its threads are fibers switched at __syncthreads.
//
// On x86-64 a fiber switch is a few instructions (rx_emu_switch below): glibc's swapcontext also
// saves and restores the signal mask, a system call per switch. On a loaded 2-core Zen 4 that cut
// the run of MobileNetV2 (batch 2) from 55.8 s to 15.9 s; ResNeXt-50 (15.5 s an image), whose
// threads do more work between barriers, is bound by the arithmetic. Elsewhere the fibers are
// ucontexts (RX_EMU_UCONTEXT forces them).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ucontext.h>
#include <vector>

#if defined(__x86_64__) && !defined(RX_EMU_UCONTEXT)
#define RX_EMU_FAST_SWITCH 1
// Saves the callee-saved registers on the current stack, stores its pointer in *from, switches to
// the stack `to` (saved the same way, or laid out by `prepare` below) and restores its registers.
// The kernels leave the floating-point control state (MXCSR, x87) as they found it, so it is not
// switched.
extern "C" void rx_emu_switch(void** from, void* to);
asm(R"(
  .pushsection .text
  .globl rx_emu_switch
  .type rx_emu_switch, @function
rx_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size rx_emu_switch, .-rx_emu_switch
  .popsection
)");
#endif

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
#ifdef RX_EMU_FAST_SWITCH
  void* sp;
#else
  ucontext_t ctx;
#endif
  std::vector<char> stack;
  unsigned tx, ty, tz;
  bool done, at_barrier;
};

#ifdef RX_EMU_FAST_SWITCH
static void* scheduler;
#else
static ucontext_t scheduler;
#endif
static Fiber* current = nullptr;
static Kernel kernel_fn;
static const float *arg_x, *arg_w, *arg_b, *arg_r;
static float* arg_y;
static int arg_batch;

// Leaves the running fiber for the scheduler.
inline void yield() {
#ifdef RX_EMU_FAST_SWITCH
  rx_emu_switch(&current->sp, scheduler);
#else
  swapcontext(&current->ctx, &scheduler);
#endif
}

// Enters fiber `f`, until it yields.
inline void resume(Fiber& f) {
#ifdef RX_EMU_FAST_SWITCH
  rx_emu_switch(&scheduler, f.sp);
#else
  swapcontext(&scheduler, &f.ctx);
#endif
}

// A fiber's body: the kernel, then back to the scheduler for good.
static void trampoline() {
  kernel_fn(arg_x, arg_w, arg_b, arg_r, arg_y, arg_batch);
  current->done = true;
  yield();
  std::fprintf(stderr, "rx_emu: a finished fiber was resumed\n");
  std::abort();
}

// Sets `f` to start at `trampoline` on its own stack.
inline void prepare(Fiber& f) {
  if (f.stack.empty()) f.stack.resize(256 * 1024);
#ifdef RX_EMU_FAST_SWITCH
  // From the 16-byte aligned top down: a null return address for `trampoline` (which never
  // returns), `trampoline` itself for rx_emu_switch's `ret` (so `trampoline` starts with the stack
  // aligned as after a call), and zeros for the six registers rx_emu_switch pops.
  uintptr_t top = (reinterpret_cast<uintptr_t>(f.stack.data()) + f.stack.size()) & ~uintptr_t(15);
  void** sp = reinterpret_cast<void**>(top);
  *--sp = nullptr;
  *--sp = reinterpret_cast<void*>(&trampoline);
  for (int i = 0; i < 6; ++i) *--sp = nullptr;
  f.sp = sp;
#else
  getcontext(&f.ctx);
  f.ctx.uc_stack.ss_sp = f.stack.data();
  f.ctx.uc_stack.ss_size = f.stack.size();
  f.ctx.uc_link = nullptr;
  makecontext(&f.ctx, trampoline, 0);
#endif
}

inline void syncthreads() {
  current->at_barrier = true;
  yield();
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
          prepare(f);
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
            resume(f);
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
