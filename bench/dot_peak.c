/* Single-core throughput of vpdpbusd, vdpbf16ps and vfmadd231ps (zmm), the peaks the int8, bf16 and fp32
   kernels are measured against: 12 independent chains each, best of 5 timed loops.
   Build and run: gcc -O2 -o /tmp/dot_peak bench/dot_peak.c && /tmp/dot_peak (x86-64 with AVX512_VNNI and AVX512_BF16). */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
#define R12(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11)
__attribute__((target("avx512f,avx512vnni,avx512bf16,avx512bw")))
int main(){
  __m512i x=_mm512_set1_epi32(0x01010101), w=_mm512_set1_epi32(0x02020202);
  __m512 fx=_mm512_set1_ps(1.0001f), fw=_mm512_set1_ps(0.9999f);
  __m512bh bx=(__m512bh)_mm512_set1_epi32(0x3f803f80), bw=(__m512bh)_mm512_set1_epi32(0x3f803f80);
#define DA(i) __m512i a##i=_mm512_set1_epi32(i);
#define DF(i) __m512 f##i=_mm512_set1_ps(i);
  R12(DA) R12(DF)
  long n=100000000/12; double best[3]={1e9,1e9,1e9}; double t;
#define OA(i) a##i=_mm512_dpbusd_epi32(a##i,x,w);
#define OB(i) f##i=_mm512_dpbf16_ps(f##i,bx,bw);
#define OF(i) f##i=_mm512_fmadd_ps(f##i,fx,fw);
  for(int rep=0;rep<5;rep++){
    t=now(); for(long k=0;k<n;k++){ R12(OA) } t=now()-t; if(t<best[0])best[0]=t;
    t=now(); for(long k=0;k<n;k++){ R12(OB) } t=now()-t; if(t<best[1])best[1]=t;
    t=now(); for(long k=0;k<n;k++){ R12(OF) } t=now()-t; if(t<best[2])best[2]=t;
  }
  long ops=n*12; int s=0;
#define SUM(i) s+=_mm512_reduce_add_epi32(a##i)+(int)_mm512_reduce_add_ps(f##i);
  R12(SUM)
  printf("vpdpbusd zmm: %.2f G/s = %.0f GMAC/s; vdpbf16ps zmm: %.2f G/s = %.0f GMAC/s; vfmadd231ps zmm: %.2f G/s = %.0f GFLOP/s (%d)\n",
    ops/best[0]/1e9, ops/best[0]/1e9*64, ops/best[1]/1e9, ops/best[1]/1e9*32, ops/best[2]/1e9, ops/best[2]/1e9*32, s&1);
}
