// Decode products without cuBLASLt: y[r, c] = sum_k x16[r, k] * w[c, k] for r < rows (at most
// GEMV_MAX_ROWS), c < n, where w is a linear layer's bf16/f16 weight [n, k] (row-major, read once
// for all rows) and x16 the activation already cast to the weight's type by cast_to_16 (so the
// operands are exactly cuBLASLt's); float32 products and accumulation, y float32 (overwritten).
// At batch 1 a product is a matrix-vector product bound by reading w: each weight row is streamed
// with 16-byte non-coherent loads (8 values) by the GEMV_WARPS / colsPerBlock warps of its block
// that share it (split K), each lane summing every (warps x 32)-th group of 8; the partial sums
// are combined in a fixed order (warp shuffles, then the warps of the column in index order), so
// the result is the same on every run. Needs k % 8 == 0 and 16-byte aligned w and x16.

#define GEMV_MAX_ROWS 4
#define GEMV_WARPS 8

__device__ __forceinline__ uint4 gemv_load_nc(const uint4* p) {
  uint4 v;
  asm volatile("ld.global.nc.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
  return v;
}

// the two 16-bit values of a 32-bit word as floats (low half first)
__device__ __forceinline__ void gemv_unpack2(unsigned int u, int dtype, float& lo, float& hi) {
  if (dtype == DT_BF16) {
    lo = __uint_as_float(u << 16);
    hi = __uint_as_float(u & 0xffff0000u);
  } else {
    unsigned short a = (unsigned short) (u & 0xffffu);
    unsigned short b = (unsigned short) (u >> 16);
    asm("cvt.f32.f16 %0, %1;" : "=f"(lo) : "h"(a));
    asm("cvt.f32.f16 %0, %1;" : "=f"(hi) : "h"(b));
  }
}

__device__ __forceinline__ float gemv_dot8(uint4 a, uint4 b, int dtype, float acc) {
  float a0, a1, b0, b1;
  gemv_unpack2(a.x, dtype, a0, a1);
  gemv_unpack2(b.x, dtype, b0, b1);
  acc = fmaf(a0, b0, acc);
  acc = fmaf(a1, b1, acc);
  gemv_unpack2(a.y, dtype, a0, a1);
  gemv_unpack2(b.y, dtype, b0, b1);
  acc = fmaf(a0, b0, acc);
  acc = fmaf(a1, b1, acc);
  gemv_unpack2(a.z, dtype, a0, a1);
  gemv_unpack2(b.z, dtype, b0, b1);
  acc = fmaf(a0, b0, acc);
  acc = fmaf(a1, b1, acc);
  gemv_unpack2(a.w, dtype, a0, a1);
  gemv_unpack2(b.w, dtype, b0, b1);
  acc = fmaf(a0, b0, acc);
  acc = fmaf(a1, b1, acc);
  return acc;
}

extern "C" __global__ void gemv_16(float* y, const unsigned short* x16, const unsigned short* w, int rows,
                                   int n, int k, int dtype, int colsPerBlock) {
  __shared__ float partial[GEMV_WARPS][GEMV_MAX_ROWS];
  int warp = threadIdx.x >> 5;
  int lane = threadIdx.x & 31;
  int warpsPerCol = GEMV_WARPS / colsPerBlock;
  int colInBlock = warp / warpsPerCol;
  int part = warp % warpsPerCol;
  long long col = (long long) blockIdx.x * colsPerBlock + colInBlock;
  float acc[GEMV_MAX_ROWS];
  for (int r = 0; r < GEMV_MAX_ROWS; r++) {
    acc[r] = 0.0f;
  }
  if (col < n) {
    const uint4* wr = (const uint4*) (w + col * k);
    const uint4* xr = (const uint4*) x16;
    int groups = k >> 3;  // 8 values per 16 bytes
    int stride = warpsPerCol * 32;
#pragma unroll 4
    for (int g = part * 32 + lane; g < groups; g += stride) {
      uint4 wv = gemv_load_nc(wr + g);
      for (int r = 0; r < GEMV_MAX_ROWS; r++) {
        if (r < rows) {
          acc[r] = gemv_dot8(xr[(long long) r * groups + g], wv, dtype, acc[r]);
        }
      }
    }
  }
  for (int r = 0; r < GEMV_MAX_ROWS; r++) {
    acc[r] = warp_sum(acc[r]);
  }
  if (lane == 0) {
    for (int r = 0; r < GEMV_MAX_ROWS; r++) {
      partial[warp][r] = acc[r];
    }
  }
  __syncthreads();
  if (part == 0 && lane < rows && col < n) {
    float sum = 0.0f;
    for (int p = 0; p < warpsPerCol; p++) {
      sum += partial[colInBlock * warpsPerCol + p][lane];
    }
    y[(long long) lane * n + col] = sum;
  }
}
