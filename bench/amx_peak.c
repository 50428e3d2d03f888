/* Single-core throughput of AMX's tdpbf16ps and tdpbusd on full 16 × 64-byte tiles, the peaks the
   AMX paths of the bf16 and int8 kernels are measured against: four independent accumulators,
   best of 5 timed loops. Asks Linux for the tile state first (arch_prctl ARCH_REQ_XCOMP_PERM).
   Build and run: gcc -O2 -mamx-tile -mamx-bf16 -mamx-int8 -o /tmp/amx_peak bench/amx_peak.c && /tmp/amx_peak
   (x86-64 with AMX-BF16 and AMX-INT8, Linux 5.16 or later). */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
struct cfg { uint8_t palette, start; uint8_t reserved[14]; uint16_t colsb[16]; uint8_t rows[16]; } __attribute__((packed, aligned(64)));
int main(){
  if (syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */)) {
    printf("the OS did not grant the AMX tile state\n");
    return 1;
  }
  struct cfg c; memset(&c, 0, sizeof c); c.palette = 1;
  for (int t = 0; t < 8; t++) { c.colsb[t] = 64; c.rows[t] = 16; }
  _tile_loadconfig(&c);
  static uint16_t a[16 * 32];
  for (int i = 0; i < 16 * 32; i++) a[i] = 0x3f80; /* bf16 1.0; as bytes 0x80, 0x3f */
  const long n = 10000000;
  double best_bf16 = 1e9, best_i8 = 1e9;
  for (int rep = 0; rep < 5; rep++) {
    _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
    _tile_loadd(4, a, 64); _tile_loadd(5, a, 64); _tile_loadd(6, a, 64); _tile_loadd(7, a, 64);
    double t = now();
    for (long i = 0; i < n; i++) {
      _tile_dpbf16ps(0, 4, 6); _tile_dpbf16ps(1, 4, 7); _tile_dpbf16ps(2, 5, 6); _tile_dpbf16ps(3, 5, 7);
    }
    t = now() - t; if (t < best_bf16) best_bf16 = t;
    t = now();
    for (long i = 0; i < n; i++) {
      _tile_dpbusd(0, 4, 6); _tile_dpbusd(1, 4, 7); _tile_dpbusd(2, 5, 6); _tile_dpbusd(3, 5, 7);
    }
    t = now() - t; if (t < best_i8) best_i8 = t;
  }
  _tile_release();
  printf("tdpbf16ps: %.2f G/s = %.0f GMAC/s; tdpbusd: %.2f G/s = %.0f GMAC/s\n",
         4 * n / best_bf16 / 1e9, 4 * n * 16.0 * 16 * 32 / best_bf16 / 1e9,
         4 * n / best_i8 / 1e9, 4 * n * 16.0 * 16 * 64 / best_i8 / 1e9);
  return 0;
}
