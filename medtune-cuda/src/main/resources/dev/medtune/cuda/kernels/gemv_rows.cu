// Matrix-vector products for decode: C[i, j] = alpha * sum_k A[i, k] * W[j, k] + beta * C[i, j]
// for the few rows i < m (m <= GEMVR_MAX_M) of a decode step, W a bf16/f16 weight [n, k]
// row-major (Hugging Face's [out, in] layout, the B^T of CudaBackend.matmul), A and C float32.
//
// Why not cuBLASLt: at batch 1 a product reads every weight once for 2 FLOPs, so only the bytes
// count; cuBLASLt's algorithms for an N = 1 product reached about half of the copy bandwidth on
// an H200 (PERFORMANCE.md), and it needs A cast to the weight's type first (one more kernel). Here
// A stays float32 and each weight is read once, in 16-byte loads, several in flight per lane.
//
// A warp owns R consecutive output columns j (rows of W); lane l reads the 16-byte chunks
// l, l + 32, ... of those rows, UNROLL chunks of each row in flight, and keeps one partial sum
// per (row of A, row of W); warp sums finish. R > 1 reads each A chunk once for R weight rows.
// The variants (gemv_16_r1, _r2, _r4: R = 1, 2, 4) are timed against each other and cuBLASLt by
// CudaGemvBench; CudaBackend picks one. gemv_16_multi_rR runs up to three products that read the
// same A (q/k/v of a layer) as one launch: the warps' rows run over the weights one after the
// other (each n_i a multiple of R, so a warp stays inside one weight). The caller guarantees k % 8 == 0 and 16-byte aligned W
// and A (k % 4 == 0 for A's float4 loads).
// Accumulation order differs from cuBLASLt's: results agree to float32 rounding, not bitwise.

#define GEMVR_MAX_M 4
#define GEMVR_WARPS 8

__device__ __forceinline__ void gemvr_unpack(uint4 w, int dtype, float* f) {
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

template <int R, int UNROLL>
__device__ __forceinline__ void gemvr_rows(float* C, const float* A, const void* W, int m, int n, int k, int j0,
                                           float alpha, float beta, int dtype) {
  int lane = threadIdx.x & 31;
  int chunks = k >> 3;  // 8 weights per 16 bytes
  const uint4* rows[R];
#pragma unroll
  for (int r = 0; r < R; r++) {
    int j = min(j0 + r, n - 1);  // a row past n repeats the last one; its sum is not stored
    rows[r] = (const uint4*) ((const unsigned short*) W + (long long) j * k);
  }
  float acc[R][GEMVR_MAX_M];
#pragma unroll
  for (int r = 0; r < R; r++) {
#pragma unroll
    for (int i = 0; i < GEMVR_MAX_M; i++) {
      acc[r][i] = 0.0f;
    }
  }
  for (int c0 = lane; c0 < chunks; c0 += 32 * UNROLL) {
    uint4 w[UNROLL][R];
#pragma unroll
    for (int u = 0; u < UNROLL; u++) {
      int c = c0 + u * 32;
#pragma unroll
      for (int r = 0; r < R; r++) {
        // weights are read once: streaming loads (evict first)
        w[u][r] = c < chunks ? __ldcs(rows[r] + c) : make_uint4(0, 0, 0, 0);
      }
    }
#pragma unroll
    for (int u = 0; u < UNROLL; u++) {
      int c = c0 + u * 32;
      if (c < chunks) {
#pragma unroll
        for (int i = 0; i < GEMVR_MAX_M; i++) {
          if (i < m) {
            const float4* a = (const float4*) (A + (long long) i * k) + 2 * c;
            float4 a0 = __ldg(a);
            float4 a1 = __ldg(a + 1);
#pragma unroll
            for (int r = 0; r < R; r++) {
              float f[8];
              gemvr_unpack(w[u][r], dtype, f);
              acc[r][i] += f[0] * a0.x + f[1] * a0.y + f[2] * a0.z + f[3] * a0.w
                         + f[4] * a1.x + f[5] * a1.y + f[6] * a1.z + f[7] * a1.w;
            }
          }
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < R; r++) {
#pragma unroll
    for (int i = 0; i < GEMVR_MAX_M; i++) {
      if (i < m) {
        float s = warp_sum(acc[r][i]);
        if (lane == 0 && j0 + r < n) {
          float* out = C + (long long) i * n + j0 + r;
          *out = beta == 0.0f ? alpha * s : alpha * s + beta * *out;
        }
      }
    }
  }
}

template <int R, int UNROLL>
__device__ __forceinline__ void gemvr_body(float* C, const float* A, const void* W, int m, int n, int k,
                                           float alpha, float beta, int dtype) {
  int j0 = (blockIdx.x * GEMVR_WARPS + (threadIdx.x >> 5)) * R;
  if (j0 < n) {
    gemvr_rows<R, UNROLL>(C, A, W, m, n, k, j0, alpha, beta, dtype);
  }
}

template <int R, int UNROLL>
__device__ __forceinline__ void gemvr_multi(float* C0, float* C1, float* C2, const void* W0, const void* W1,
                                            const void* W2, int n0, int n1, int n2, const float* A, int m, int k,
                                            int dtype) {
  int j = (blockIdx.x * GEMVR_WARPS + (threadIdx.x >> 5)) * R;
  if (j < n0) {
    gemvr_rows<R, UNROLL>(C0, A, W0, m, n0, k, j, 1.0f, 0.0f, dtype);
  } else if ((j -= n0) < n1) {
    gemvr_rows<R, UNROLL>(C1, A, W1, m, n1, k, j, 1.0f, 0.0f, dtype);
  } else if ((j -= n1) < n2) {
    gemvr_rows<R, UNROLL>(C2, A, W2, m, n2, k, j, 1.0f, 0.0f, dtype);
  }
}

// grid: ceil(n / (GEMVR_WARPS * R)) blocks of GEMVR_WARPS warps
extern "C" __global__ void gemv_16_r1(float* C, const float* A, const void* W, int m, int n, int k, float alpha,
                                      float beta, int dtype) {
  gemvr_body<1, 4>(C, A, W, m, n, k, alpha, beta, dtype);
}

extern "C" __global__ void gemv_16_r2(float* C, const float* A, const void* W, int m, int n, int k, float alpha,
                                      float beta, int dtype) {
  gemvr_body<2, 2>(C, A, W, m, n, k, alpha, beta, dtype);
}

extern "C" __global__ void gemv_16_r4(float* C, const float* A, const void* W, int m, int n, int k, float alpha,
                                      float beta, int dtype) {
  gemvr_body<4, 2>(C, A, W, m, n, k, alpha, beta, dtype);
}

// grid: ceil((n0 + n1 + n2) / (GEMVR_WARPS * R)) blocks; each n_i % R == 0; C_i = A W_i^T
extern "C" __global__ void gemv_16_multi_r1(float* C0, float* C1, float* C2, const void* W0, const void* W1,
                                            const void* W2, int n0, int n1, int n2, const float* A, int m, int k,
                                            int dtype) {
  gemvr_multi<1, 4>(C0, C1, C2, W0, W1, W2, n0, n1, n2, A, m, k, dtype);
}

extern "C" __global__ void gemv_16_multi_r2(float* C0, float* C1, float* C2, const void* W0, const void* W1,
                                            const void* W2, int n0, int n1, int n2, const float* A, int m, int k,
                                            int dtype) {
  gemvr_multi<2, 2>(C0, C1, C2, W0, W1, W2, n0, n1, n2, A, m, k, dtype);
}

extern "C" __global__ void gemv_16_multi_r4(float* C0, float* C1, float* C2, const void* W0, const void* W1,
                                            const void* W2, int n0, int n1, int n2, const float* A, int m, int k,
                                            int dtype) {
  gemvr_multi<4, 2>(C0, C1, C2, W0, W1, W2, n0, n1, n2, A, m, k, dtype);
}
