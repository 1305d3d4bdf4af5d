// Matrix-vector products for decode: C[i, j] = alpha * sum_k A[i, k] * W[j, k] + beta * C[i, j]
// for the few rows i < m (m <= GEMV_MAX_ROWS) of a decode step, W a bf16/f16 weight [n, k]
// row-major (Hugging Face's [out, in] layout, the B^T of CudaBackend.matmul), A and C float32.
//
// Why not cuBLASLt: at batch 1 a product reads every weight once for 2 FLOPs, so only the bytes
// count; cuBLASLt's algorithms for an N = 1 product reached about half of the copy bandwidth on
// an H200 (PERFORMANCE.md), and it needs A cast to the weight's type first (one more kernel). Here
// A stays float32 and each weight is read once, in 16-byte loads, several in flight per lane.
//
// One warp per output column j (a row of W); lane l reads the 16-byte chunks l, l + 32, ... of
// that row, UNROLL at a time, and keeps one partial sum per row of A; a warp sum finishes. The
// caller guarantees k % 8 == 0 and 16-byte aligned W, A rows (k % 4 == 0 for A's float4 loads).
// Accumulation order differs from cuBLASLt's: results agree to float32 rounding, not bitwise.

#define GEMV_MAX_ROWS 4
#define GEMV_WARPS 8
#define GEMV_UNROLL 4

__device__ __forceinline__ void gemv_unpack(uint4 w, int dtype, float* f) {
  unsigned int u[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
  for (int i = 0; i < 4; i++) {
    if (dtype == DT_BF16) {
      f[2 * i] = __uint_as_float(u[i] << 16);
      f[2 * i + 1] = __uint_as_float(u[i] & 0xffff0000u);
    } else {
      unsigned short lo = (unsigned short) (u[i] & 0xffffu);
      unsigned short hi = (unsigned short) (u[i] >> 16);
      asm("cvt.f32.f16 %0, %1;" : "=f"(f[2 * i]) : "h"(lo));
      asm("cvt.f32.f16 %0, %1;" : "=f"(f[2 * i + 1]) : "h"(hi));
    }
  }
}

extern "C" __global__ void __launch_bounds__(GEMV_WARPS * 32)
gemv_16(float* C, const float* A, const void* W, int m, int n, int k, float alpha, float beta, int dtype) {
  int warp = threadIdx.x >> 5;
  int lane = threadIdx.x & 31;
  int j = blockIdx.x * GEMV_WARPS + warp;
  if (j >= n) {
    return;
  }
  const uint4* row = (const uint4*) ((const unsigned short*) W + (long long) j * k);
  int chunks = k >> 3;  // 8 weights per 16 bytes
  float acc[GEMV_MAX_ROWS];
#pragma unroll
  for (int i = 0; i < GEMV_MAX_ROWS; i++) {
    acc[i] = 0.0f;
  }
  for (int c0 = lane; c0 < chunks; c0 += 32 * GEMV_UNROLL) {
    uint4 w[GEMV_UNROLL];
#pragma unroll
    for (int u = 0; u < GEMV_UNROLL; u++) {
      int c = c0 + u * 32;
      // weights are read once: bypass L1 and do not keep them in L2 longer than needed
      w[u] = c < chunks ? __ldcs(row + c) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < GEMV_UNROLL; u++) {
      int c = c0 + u * 32;
      if (c < chunks) {
        float f[8];
        gemv_unpack(w[u], dtype, f);
#pragma unroll
        for (int i = 0; i < GEMV_MAX_ROWS; i++) {
          if (i < m) {
            const float4* a = (const float4*) (A + (long long) i * k) + 2 * c;
            float4 a0 = __ldg(a);
            float4 a1 = __ldg(a + 1);
            acc[i] += f[0] * a0.x + f[1] * a0.y + f[2] * a0.z + f[3] * a0.w
                    + f[4] * a1.x + f[5] * a1.y + f[6] * a1.z + f[7] * a1.w;
          }
        }
      }
    }
  }
#pragma unroll
  for (int i = 0; i < GEMV_MAX_ROWS; i++) {
    if (i < m) {
      float s = warp_sum(acc[i]);
      if (lane == 0) {
        float* out = C + (long long) i * n + j;
        *out = beta == 0.0f ? alpha * s : alpha * s + beta * *out;
      }
    }
  }
}
