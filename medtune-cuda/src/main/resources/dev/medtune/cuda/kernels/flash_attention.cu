// Causal grouped-query attention on tensor cores, flash-attention style (FlashAttention-2: Dao
// 2023, arXiv:2307.08691): no T x T matrix in memory; the forward saves one log-sum-exp per
// (row, head) and the backward recomputes the probabilities per tile from it.
//
// The math is attention.cu's. For query head h of row t (KV head g = h / (heads / kvHeads),
// slot s, last = positions[t]) and keys j <= last of slot s:
//   S_j = q[t,h,:] . kCache[s,j,g,:] * scale,   scale = 1/sqrt(headDim)
//   lse[t,h] = log sum_j exp(S_j),   P_j = exp(S_j - lse[t,h]),   out[t,h,:] = sum_j P_j vCache[s,j,g,:]
// backward, with D[t,h] = dout[t,h,:] . out[t,h,:]:
//   dP_j = dout[t,h,:] . vCache[s,j,g,:],   dS_j = P_j (dP_j - D[t,h])
//   dq[t,h,:] = scale sum_j dS_j kCache[s,j,g,:]                 (overwritten)
//   dkCache[s,j,g,:] += scale sum_{t,h in g} dS_j q[t,h,:],   dvCache[s,j,g,:] += sum_{t,h in g} P_j dout[t,h,:]
//
// Work items (made on the host): runs of at most FA_BQ rows of one slot with consecutive rows and
// positions, items[4i..4i+3] = {first row, row count, slot, first position}; rows in any order
// still work (items of one row). Items are sorted by slot; slotItems[2s], [2s+1] is slot s's range.
//
// Precision: q, k, v, dout (and P, dS) enter the products as bf16 (converted when a tile is
// loaded into shared memory), products accumulate in float32 (mma.sync m16n8k16 bf16), softmax
// statistics, lse and D are float32. Scores are kept in the log2 domain (exp2).
//
// Fragments of mma.m16n8k16 (PTX ISA, "Matrix fragments for mma.m16n8k16"), gid = lane >> 2,
// tig = lane & 3, two bf16 per 32-bit register, the lower column (k) in the lower half:
//   A (16 x 16, row-major): a0 (row gid, k 2tig..+1), a1 (row gid+8, same k), a2 (row gid,
//     k 2tig+8..+9), a3 (row gid+8, k 2tig+8..+9);
//   B (16 x 8, k x n):      b0 (k 2tig..+1, n gid), b1 (k 2tig+8..+9, n gid);
//   C (16 x 8, float32):    c0, c1 (row gid, n 2tig..+1), c2, c3 (row gid+8, same n).
// So the C fragments of two neighbouring n-tiles of S (keys 16kk..16kk+15) are, packed to bf16,
// the A fragment of P for the product P V (FA2's register reuse). Fragments are read from shared
// memory with ldmatrix.x4: lane l gives the address of row (l & 7) of 8x8 matrix (l >> 3); each
// lane receives (row gid, columns 2tig..+1) of each matrix, or with .trans (rows 2tig..+1, column
// gid), which turns a row-major [k][n] tile into B fragments.
//
// Tiles: FA_BQ = 64 query rows (4 warps of 16), FA_BK = 64 keys; shared rows padded by 8 bf16
// (a row is 16 bytes off the 128-byte bank period, so the 8 rows one ldmatrix phase reads fall
// in distinct banks). Head dims 64 and 128 are compile-time variants (HD); a smaller head dim
// runs in the variant above it with zero padding (the padding adds zeros to every product).

#define FA_BQ 64
#define FA_BK 64
#define FA_THREADS 128
#define FA_LOG2E 1.4426950408889634f
#define FA_LN2 0.6931471805599453f

struct alignas(16) fa_float4 {
  float x, y, z, w;
};

struct alignas(8) fa_uint2 {
  unsigned int x, y;
};

// two floats to bf16x2, round to nearest even: lo in the lower half
__device__ __forceinline__ unsigned int fa_pack(float lo, float hi) {
  unsigned int r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}

// the bf16 in the lower (half 0) or upper (half 1) 16 bits, as float32
__device__ __forceinline__ float fa_unpack(unsigned int bits, int half) {
  return __uint_as_float(half ? bits & 0xffff0000u : bits << 16);
}

__device__ __forceinline__ unsigned int fa_smem_address(const void* p) {
  unsigned int r;
  asm("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }" : "=r"(r) : "l"(p));
  return r;
}

__device__ __forceinline__ void fa_ldsm(unsigned int address, unsigned int* r) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(address) : "memory");
}

__device__ __forceinline__ void fa_ldsm_trans(unsigned int address, unsigned int* r) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(address) : "memory");
}

// c += A B, one m16n8k16 bf16 product with float32 accumulation
__device__ __forceinline__ void fa_mma(float* c, const unsigned int* a, unsigned int b0, unsigned int b1) {
#if __CUDA_ARCH__ >= 800
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
  __trap();  // the host uses these kernels only from compute capability 8.0
#endif
}

// A tile of 64 rows x HD of a float32 matrix (row r at src + r * ld) as bf16 in shared memory
// (row stride HD + 8); rows from `valid` on and columns from headDim on are zero. vec: float4
// loads (headDim == HD and 16-byte aligned rows, checked on the host).
template <int HD, int BATCH = 4>
__device__ __forceinline__ void fa_load_tile(unsigned short* dst, const float* src, long long ld, int valid,
                                             int headDim, int vec) {
  const int LD = HD + 8;
  if (vec && BATCH == 1) {
    for (int i = threadIdx.x; i < 64 * HD / 4; i += FA_THREADS) {
      int r = i / (HD / 4);
      int c = (i % (HD / 4)) * 4;
      fa_float4 v = {0.0f, 0.0f, 0.0f, 0.0f};
      if (r < valid) {
        v = *(const fa_float4*) (src + r * ld + c);
      }
      fa_uint2 w = {fa_pack(v.x, v.y), fa_pack(v.z, v.w)};
      *(fa_uint2*) (dst + r * LD + c) = w;
    }
  } else if (vec) {
    // BATCH loads in flight per thread before their conversions (each is an L2 or HBM round trip)
    const int PER_THREAD = 64 * HD / 4 / FA_THREADS;
    for (int i0 = 0; i0 < PER_THREAD; i0 += BATCH) {
      fa_float4 v[BATCH];
#pragma unroll
      for (int u = 0; u < BATCH; u++) {
        int i = threadIdx.x + (i0 + u) * FA_THREADS;
        int r = i / (HD / 4);
        int c = (i % (HD / 4)) * 4;
        v[u].x = v[u].y = v[u].z = v[u].w = 0.0f;
        if (r < valid) {
          v[u] = *(const fa_float4*) (src + r * ld + c);
        }
      }
#pragma unroll
      for (int u = 0; u < BATCH; u++) {
        int i = threadIdx.x + (i0 + u) * FA_THREADS;
        int r = i / (HD / 4);
        int c = (i % (HD / 4)) * 4;
        // one 8-byte store: a warp's stores fill whole 128-byte rows of banks, no conflicts
        fa_uint2 w = {fa_pack(v[u].x, v[u].y), fa_pack(v[u].z, v[u].w)};
        *(fa_uint2*) (dst + r * LD + c) = w;
      }
    }
  } else {
    for (int i = threadIdx.x; i < 64 * HD / 2; i += FA_THREADS) {
      int r = i / (HD / 2);
      int c = (i % (HD / 2)) * 2;
      float a = 0.0f;
      float b = 0.0f;
      if (r < valid) {
        if (c < headDim) {
          a = src[r * ld + c];
        }
        if (c + 1 < headDim) {
          b = src[r * ld + c + 1];
        }
      }
      *(unsigned int*) (dst + r * LD + c) = fa_pack(a, b);
    }
  }
}

// acc[2i], acc[2i+1] (n-tiles of 8) += A (16 x 16 rows of `a`) B, B^T's 16 rows n and 16 columns
// k read from shared memory at `base` (row-major [n][k], non-transposed ldmatrix): the product
// with a K tile (S = Q K^T) or a V tile (dP = dO V^T); kk selects the k columns 16kk..16kk+15.
__device__ __forceinline__ unsigned int fa_b_address(unsigned int base, int ld, int n0, int k0, int lane) {
  return base + 2u * (unsigned int) ((n0 + (lane >> 4) * 8 + (lane & 7)) * ld + k0 + ((lane >> 3) & 1) * 8);
}

// the address a lane gives to load B fragments from a row-major [k][n] tile (transposed ldmatrix)
__device__ __forceinline__ unsigned int fa_bt_address(unsigned int base, int ld, int k0, int n0, int lane) {
  return base + 2u * (unsigned int) ((k0 + ((lane >> 3) & 1) * 8 + (lane & 7)) * ld + n0 + (lane >> 4) * 8);
}

// the address a lane gives to load an A fragment (16 rows from r0, 16 columns from k0)
__device__ __forceinline__ unsigned int fa_a_address(unsigned int base, int ld, int r0, int k0, int lane) {
  return base + 2u * (unsigned int) ((r0 + (lane & 15)) * ld + k0 + (lane >> 4) * 8);
}

// ---------------------------------------------------------------- forward

// grid (items, heads), FA_THREADS threads; shared: 2 tiles of 64 x (HD + 8) bf16.
template <int HD>
__device__ __forceinline__ void flash_forward(float* out, float* lse, const float* q, const float* kCache,
                                              const float* vCache, const int* items, int heads, int kvHeads,
                                              int headDim, int maxLength, float scaleLog2, int vec) {
  extern __shared__ fa_float4 fa_shared[];
  const int LD = HD + 8;
  unsigned short* Ks = (unsigned short*) fa_shared;
  unsigned short* Vs = Ks + FA_BK * LD;
  const unsigned int ksAddr = fa_smem_address(Ks);
  const unsigned int vsAddr = fa_smem_address(Vs);
  // the last items first: within a slot they reach the furthest positions, the longest blocks,
  // which then do not trail the grid
  const int* it = items + 4 * (gridDim.x - 1 - blockIdx.x);
  const int firstRow = it[0];
  const int rowCount = it[1];
  const int slot = it[2];
  const int firstPos = it[3];
  const int h = blockIdx.y;
  const int g = h / (heads / kvHeads);
  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  const int gid = lane >> 2;
  const int tig = lane & 3;
  const long long qld = (long long) heads * headDim;
  const int kvDim = kvHeads * headDim;
  const float* kBase = kCache + (long long) slot * maxLength * kvDim + (long long) g * headDim;
  const float* vBase = vCache + (long long) slot * maxLength * kvDim + (long long) g * headDim;

  // the queries, through the K tile's shared memory, into A fragments held for the whole loop
  fa_load_tile<HD>(Ks, q + (long long) firstRow * qld + (long long) h * headDim, qld, rowCount, headDim, vec);
  __syncthreads();
  unsigned int qf[HD / 16][4];
  for (int kk = 0; kk < HD / 16; kk++) {
    fa_ldsm(fa_a_address(ksAddr, LD, warp * 16, kk * 16, lane), qf[kk]);
  }
  __syncthreads();

  const int lastPos = firstPos + rowCount - 1;
  const bool active = warp * 16 < rowCount;
  const int warpFirst = firstPos + warp * 16;                     // position of the warp's row 0
  const int warpLast = firstPos + min(warp * 16 + 15, rowCount - 1);
  const int pos[2] = {warpFirst + gid, warpFirst + gid + 8};      // rows past rowCount: never written
  float o[HD / 8][4];
  for (int i = 0; i < HD / 8; i++) {
    o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
  }
  float rowMax[2] = {NEG_INF, NEG_INF};
  float rowSum[2] = {0.0f, 0.0f};  // this thread's part of the row's sum (its columns)

  for (int j0 = 0; j0 <= lastPos; j0 += FA_BK) {
    int valid = min(FA_BK, lastPos + 1 - j0);  // keys past the item's last position: zeros
    fa_load_tile<HD>(Ks, kBase + (long long) j0 * kvDim, kvDim, valid, headDim, vec);
    fa_load_tile<HD>(Vs, vBase + (long long) j0 * kvDim, kvDim, valid, headDim, vec);
    __syncthreads();
    if (active && j0 <= warpLast) {
      float s[8][4];
      for (int i = 0; i < 8; i++) {
        s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.0f;
      }
      for (int kk = 0; kk < HD / 16; kk++) {
        for (int np = 0; np < 4; np++) {
          unsigned int b[4];
          fa_ldsm(fa_b_address(ksAddr, LD, np * 16, kk * 16, lane), b);
          fa_mma(s[2 * np], qf[kk], b[0], b[1]);
          fa_mma(s[2 * np + 1], qf[kk], b[2], b[3]);
        }
      }
      // causal mask only where the tile reaches past the warp's first row
      bool mask = j0 + FA_BK - 1 > warpFirst;
      for (int nt = 0; nt < 8; nt++) {
        for (int e = 0; e < 4; e++) {
          int key = j0 + nt * 8 + 2 * tig + (e & 1);
          float v = s[nt][e] * scaleLog2;
          s[nt][e] = mask && key > pos[e >> 1] ? NEG_INF : v;
        }
      }
      // online softmax (every row has key 0 in the first tile: the maximum is finite from there)
      for (int r = 0; r < 2; r++) {
        float mx = rowMax[r];
        for (int nt = 0; nt < 8; nt++) {
          mx = fmaxf(mx, fmaxf(s[nt][2 * r], s[nt][2 * r + 1]));
        }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        float correction = exp2f(rowMax[r] - mx);
        rowMax[r] = mx;
        float sum = 0.0f;
        for (int nt = 0; nt < 8; nt++) {
          float p0 = exp2f(s[nt][2 * r] - mx);
          float p1 = exp2f(s[nt][2 * r + 1] - mx);
          s[nt][2 * r] = p0;
          s[nt][2 * r + 1] = p1;
          sum += p0 + p1;
        }
        rowSum[r] = rowSum[r] * correction + sum;
        for (int nd = 0; nd < HD / 8; nd++) {
          o[nd][2 * r] *= correction;
          o[nd][2 * r + 1] *= correction;
        }
      }
      // o += P V: the C fragments of S are P's A fragments
      for (int kk = 0; kk < 4; kk++) {
        unsigned int a[4] = {fa_pack(s[2 * kk][0], s[2 * kk][1]), fa_pack(s[2 * kk][2], s[2 * kk][3]),
                             fa_pack(s[2 * kk + 1][0], s[2 * kk + 1][1]), fa_pack(s[2 * kk + 1][2], s[2 * kk + 1][3])};
        for (int dp = 0; dp < HD / 16; dp++) {
          unsigned int b[4];
          fa_ldsm_trans(fa_bt_address(vsAddr, LD, kk * 16, dp * 16, lane), b);
          fa_mma(o[2 * dp], a, b[0], b[1]);
          fa_mma(o[2 * dp + 1], a, b[2], b[3]);
        }
      }
    }
    __syncthreads();
  }
  if (!active) {
    return;
  }
  for (int r = 0; r < 2; r++) {
    float l = rowSum[r];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    int local = warp * 16 + gid + 8 * r;
    if (local >= rowCount) {
      continue;
    }
    long long th = (long long) (firstRow + local) * heads + h;
    float inv = 1.0f / l;
    float* orow = out + th * headDim;
    for (int nd = 0; nd < HD / 8; nd++) {
      int d = nd * 8 + 2 * tig;
      if (d < headDim) {
        orow[d] = o[nd][2 * r] * inv;
      }
      if (d + 1 < headDim) {
        orow[d + 1] = o[nd][2 * r + 1] * inv;
      }
    }
    if (tig == 0) {
      lse[th] = (rowMax[r] + log2f(l)) * FA_LN2;
    }
  }
}

extern "C" __global__ void flash_attention_forward_64(
    float* out, float* lse, const float* q, const float* kCache, const float* vCache, const int* items, int heads,
    int kvHeads, int headDim, int maxLength, float scaleLog2, int vec) {
  flash_forward<64>(out, lse, q, kCache, vCache, items, heads, kvHeads, headDim, maxLength, scaleLog2, vec);
}

extern "C" __global__ void __launch_bounds__(FA_THREADS, 3) flash_attention_forward_128(
    float* out, float* lse, const float* q, const float* kCache, const float* vCache, const int* items, int heads,
    int kvHeads, int headDim, int maxLength, float scaleLog2, int vec) {
  flash_forward<128>(out, lse, q, kCache, vCache, items, heads, kvHeads, headDim, maxLength, scaleLog2, vec);
}

// ---------------------------------------------------------------- backward

// D[i] = dout[i,:] . out[i,:] for i < count (= rows * heads): one warp per (row, head).
extern "C" __global__ void flash_attention_d(float* D, const float* dout, const float* out, int count,
                                             int headDim) {
  int i = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  int lane = threadIdx.x & 31;
  if (i >= count) {
    return;
  }
  const float* a = dout + (long long) i * headDim;
  const float* b = out + (long long) i * headDim;
  float sum = 0.0f;
  for (int d = lane; d < headDim; d += 32) {
    sum += a[d] * b[d];
  }
  sum = warp_sum(sum);
  if (lane == 0) {
    D[i] = sum;
  }
}

// dq: grid (items, heads), FA_THREADS threads, each warp 16 query rows; shared: the item's
// queries and output gradients, one K tile and one V tile (4 tiles of 64 x (HD + 8) bf16).
template <int HD>
__device__ __forceinline__ void flash_dq(float* dq, const float* q, const float* kCache, const float* vCache,
                                         const float* dout, const float* lse, const float* D, const int* items,
                                         int heads, int kvHeads, int headDim, int maxLength, float scaleLog2,
                                         float scale, int vec) {
  extern __shared__ fa_float4 fa_shared[];
  const int LD = HD + 8;
  unsigned short* Qs = (unsigned short*) fa_shared;
  unsigned short* Os = Qs + 64 * LD;
  unsigned short* Ks = Os + 64 * LD;
  unsigned short* Vs = Ks + FA_BK * LD;
  const unsigned int qsAddr = fa_smem_address(Qs);
  const unsigned int osAddr = fa_smem_address(Os);
  const unsigned int ksAddr = fa_smem_address(Ks);
  const unsigned int vsAddr = fa_smem_address(Vs);
  // the last items first: within a slot they reach the furthest positions, the longest blocks,
  // which then do not trail the grid
  const int* it = items + 4 * (gridDim.x - 1 - blockIdx.x);
  const int firstRow = it[0];
  const int rowCount = it[1];
  const int slot = it[2];
  const int firstPos = it[3];
  const int h = blockIdx.y;
  const int g = h / (heads / kvHeads);
  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  const int gid = lane >> 2;
  const int tig = lane & 3;
  const long long qld = (long long) heads * headDim;
  const int kvDim = kvHeads * headDim;
  const float* kBase = kCache + (long long) slot * maxLength * kvDim + (long long) g * headDim;
  const float* vBase = vCache + (long long) slot * maxLength * kvDim + (long long) g * headDim;
  const long long rowOffset = (long long) firstRow * qld + (long long) h * headDim;
  fa_load_tile<HD, 1>(Qs, q + rowOffset, qld, rowCount, headDim, vec);
  fa_load_tile<HD, 1>(Os, dout + rowOffset, qld, rowCount, headDim, vec);

  const int lastPos = firstPos + rowCount - 1;
  const bool active = warp * 16 < rowCount;
  const int warpFirst = firstPos + warp * 16;
  const int warpLast = firstPos + min(warp * 16 + 15, rowCount - 1);
  const int pos[2] = {warpFirst + gid, warpFirst + gid + 8};
  float rowLse[2];
  float rowD[2];
  for (int r = 0; r < 2; r++) {
    int local = warp * 16 + gid + 8 * r;
    long long th = (long long) (firstRow + local) * heads + h;
    rowLse[r] = local < rowCount ? lse[th] * FA_LOG2E : 0.0f;  // rows past rowCount: q = dout = 0
    rowD[r] = local < rowCount ? D[th] : 0.0f;
  }
  float acc[HD / 8][4];
  for (int i = 0; i < HD / 8; i++) {
    acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.0f;
  }

  for (int j0 = 0; j0 <= lastPos; j0 += FA_BK) {
    int valid = min(FA_BK, lastPos + 1 - j0);
    // one load in flight per thread and step (the dq accumulator leaves no registers for more at
    // 3 blocks per SM: ptxas spills with a batch of 2 or 4)
    fa_load_tile<HD, 1>(Ks, kBase + (long long) j0 * kvDim, kvDim, valid, headDim, vec);
    fa_load_tile<HD, 1>(Vs, vBase + (long long) j0 * kvDim, kvDim, valid, headDim, vec);
    __syncthreads();
    // the tile's keys in two halves of 32 (registers: S and dP of 16 rows x 32 keys at a time
    // next to the dq accumulator); a half past the warp's last position is skipped
    for (int half = 0; half < 2; half++) {
      const int c0 = half * 32;
      if (!active || j0 + c0 > warpLast) {
        continue;
      }
      float s[4][4];
      float dp[4][4];
      for (int i = 0; i < 4; i++) {
        s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.0f;
        dp[i][0] = dp[i][1] = dp[i][2] = dp[i][3] = 0.0f;
      }
      // S = Q K^T and dP = dO V^T for keys j0 + c0 ..
      for (int kk = 0; kk < HD / 16; kk++) {
        unsigned int a[4];
        unsigned int ao[4];
        fa_ldsm(fa_a_address(qsAddr, LD, warp * 16, kk * 16, lane), a);
        fa_ldsm(fa_a_address(osAddr, LD, warp * 16, kk * 16, lane), ao);
        for (int np = 0; np < 2; np++) {
          unsigned int b[4];
          fa_ldsm(fa_b_address(ksAddr, LD, c0 + np * 16, kk * 16, lane), b);
          fa_mma(s[2 * np], a, b[0], b[1]);
          fa_mma(s[2 * np + 1], a, b[2], b[3]);
          fa_ldsm(fa_b_address(vsAddr, LD, c0 + np * 16, kk * 16, lane), b);
          fa_mma(dp[2 * np], ao, b[0], b[1]);
          fa_mma(dp[2 * np + 1], ao, b[2], b[3]);
        }
      }
      // P = exp(S - lse) (zero past each row's position), dS = P (dP - D), kept in dp
      for (int nt = 0; nt < 4; nt++) {
        for (int e = 0; e < 4; e++) {
          int r = e >> 1;
          int key = j0 + c0 + nt * 8 + 2 * tig + (e & 1);
          float p = key > pos[r] ? 0.0f : exp2f(s[nt][e] * scaleLog2 - rowLse[r]);
          dp[nt][e] = p * (dp[nt][e] - rowD[r]);
        }
      }
      // dq += dS K: K's tile is row-major [key][d], B fragments by transposed ldmatrix
      for (int kk = 0; kk < 2; kk++) {
        unsigned int a[4] = {fa_pack(dp[2 * kk][0], dp[2 * kk][1]), fa_pack(dp[2 * kk][2], dp[2 * kk][3]),
                             fa_pack(dp[2 * kk + 1][0], dp[2 * kk + 1][1]),
                             fa_pack(dp[2 * kk + 1][2], dp[2 * kk + 1][3])};
        for (int dd = 0; dd < HD / 16; dd++) {
          unsigned int b[4];
          fa_ldsm_trans(fa_bt_address(ksAddr, LD, c0 + kk * 16, dd * 16, lane), b);
          fa_mma(acc[2 * dd], a, b[0], b[1]);
          fa_mma(acc[2 * dd + 1], a, b[2], b[3]);
        }
      }
    }
    __syncthreads();
  }
  if (!active) {
    return;
  }
  for (int r = 0; r < 2; r++) {
    int local = warp * 16 + gid + 8 * r;
    if (local >= rowCount) {
      continue;
    }
    float* row = dq + (long long) (firstRow + local) * qld + (long long) h * headDim;
    for (int nd = 0; nd < HD / 8; nd++) {
      int d = nd * 8 + 2 * tig;
      if (d < headDim) {
        row[d] = acc[nd][2 * r] * scale;
      }
      if (d + 1 < headDim) {
        row[d + 1] = acc[nd][2 * r + 1] * scale;
      }
    }
  }
}

extern "C" __global__ void flash_attention_dq_64(
    float* dq, const float* q, const float* kCache, const float* vCache, const float* dout, const float* lse,
    const float* D, const int* items, int heads, int kvHeads, int headDim, int maxLength, float scaleLog2,
    float scale, int vec) {
  flash_dq<64>(dq, q, kCache, vCache, dout, lse, D, items, heads, kvHeads, headDim, maxLength, scaleLog2, scale, vec);
}

extern "C" __global__ void __launch_bounds__(FA_THREADS, 3) flash_attention_dq_128(
    float* dq, const float* q, const float* kCache, const float* vCache, const float* dout, const float* lse,
    const float* D, const int* items, int heads, int kvHeads, int headDim, int maxLength, float scaleLog2,
    float scale, int vec) {
  flash_dq<128>(dq, q, kCache, vCache, dout, lse, D, items, heads, kvHeads, headDim, maxLength, scaleLog2, scale, vec);
}

// dK, dV: grid (slot * kvHeads + g, key tile of FA_BK keys from j0), FA_THREADS threads, each warp
// 16 keys. The block is the only writer of its keys' rows of dkCache/dvCache for head g (no
// atomics, one fixed order of the sums): it loops over the slot's items that reach j0 and over
// the group's query heads, with the item's queries and output gradients in shared memory.
// Transposed products, keys as rows: S^T = K Q^T, dP^T = V dO^T, dV += P^T dO, dK += dS^T Q.
template <int HD>
__device__ __forceinline__ void flash_dkv(float* dkCache, float* dvCache, const float* q, const float* kCache,
                                          const float* vCache, const float* dout, const float* lse, const float* D,
                                          const int* items, const int* slotItems, int heads, int kvHeads,
                                          int headDim, int maxLength, float scaleLog2, float scale, int vec) {
  extern __shared__ fa_float4 fa_shared[];
  const int LD = HD + 8;
  unsigned short* Ks = (unsigned short*) fa_shared;
  unsigned short* Vs = Ks + FA_BK * LD;
  unsigned short* Qs = Vs + FA_BK * LD;
  unsigned short* Os = Qs + 64 * LD;
  float* rowLse = (float*) (Os + 64 * LD);  // 64, log2 domain
  float* rowD = rowLse + 64;                // 64
  const unsigned int ksAddr = fa_smem_address(Ks);
  const unsigned int vsAddr = fa_smem_address(Vs);
  const unsigned int qsAddr = fa_smem_address(Qs);
  const unsigned int osAddr = fa_smem_address(Os);
  const int slot = blockIdx.x / kvHeads;
  const int g = blockIdx.x % kvHeads;
  const int j0 = blockIdx.y * FA_BK;
  const int group = heads / kvHeads;
  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  const int gid = lane >> 2;
  const int tig = lane & 3;
  const long long qld = (long long) heads * headDim;
  const int kvDim = kvHeads * headDim;
  const int from = slotItems[2 * slot];
  const int to = slotItems[2 * slot + 1];
  int slotLast = -1;
  for (int i = from; i < to; i++) {
    slotLast = max(slotLast, items[4 * i + 3] + items[4 * i + 1] - 1);
  }
  if (slotLast < j0) {
    return;  // no row of the slot sees these keys: their gradients stay as they are
  }
  const long long cacheOffset = ((long long) slot * maxLength + j0) * kvDim + (long long) g * headDim;
  int valid = min(FA_BK, slotLast + 1 - j0);  // keys no row sees: zeros (never NaN from stale cache rows)
  fa_load_tile<HD>(Ks, kCache + cacheOffset, kvDim, valid, headDim, vec);
  fa_load_tile<HD>(Vs, vCache + cacheOffset, kvDim, valid, headDim, vec);

  const int warpKey = j0 + warp * 16;  // the warp's first key
  const int key[2] = {warpKey + gid, warpKey + gid + 8};
  float dk[HD / 8][4];
  float dv[HD / 8][4];
  for (int i = 0; i < HD / 8; i++) {
    dk[i][0] = dk[i][1] = dk[i][2] = dk[i][3] = 0.0f;
    dv[i][0] = dv[i][1] = dv[i][2] = dv[i][3] = 0.0f;
  }
  for (int item = from; item < to; item++) {
    const int firstRow = items[4 * item];
    const int rowCount = items[4 * item + 1];
    const int firstPos = items[4 * item + 3];
    const int lastPos = firstPos + rowCount - 1;
    if (lastPos < j0) {
      continue;
    }
    for (int hh = 0; hh < group; hh++) {
      const int h = g * group + hh;
      const long long rowOffset = (long long) firstRow * qld + (long long) h * headDim;
      __syncthreads();  // the previous (item, head)'s tiles are read
      fa_load_tile<HD>(Qs, q + rowOffset, qld, rowCount, headDim, vec);
      fa_load_tile<HD>(Os, dout + rowOffset, qld, rowCount, headDim, vec);
      if (threadIdx.x < 64) {
        int local = threadIdx.x;
        long long th = (long long) (firstRow + local) * heads + h;
        rowLse[local] = local < rowCount ? lse[th] * FA_LOG2E : 0.0f;
        rowD[local] = local < rowCount ? D[th] : 0.0f;
      }
      __syncthreads();
      if (lastPos < warpKey) {
        continue;  // no row of this item sees the warp's keys (warp-uniform; no barrier below)
      }
      // the item's rows in two halves of 32 (registers: S^T and dP^T of 16 keys x 32 rows at a
      // time next to the dK and dV accumulators); a half no row of which sees the warp's keys,
      // or past rowCount, is skipped
      for (int half = 0; half < 2; half++) {
        const int r0 = half * 32;
        if (r0 >= rowCount || firstPos + r0 + 31 < warpKey) {
          continue;
        }
        // S^T = K Q^T (rows: the warp's 16 keys; columns: query rows r0..r0+31), then P^T, zero
        // where the key is past the row's position or the row is past rowCount
        unsigned int ap[2][4];  // P^T as bf16 A fragments (k: query rows r0 + 16kk ..)
        {
          float s[4][4];
          for (int i = 0; i < 4; i++) {
            s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.0f;
          }
          for (int kk = 0; kk < HD / 16; kk++) {
            unsigned int ak[4];
            fa_ldsm(fa_a_address(ksAddr, LD, warp * 16, kk * 16, lane), ak);
            for (int np = 0; np < 2; np++) {
              unsigned int b[4];
              fa_ldsm(fa_b_address(qsAddr, LD, r0 + np * 16, kk * 16, lane), b);
              fa_mma(s[2 * np], ak, b[0], b[1]);
              fa_mma(s[2 * np + 1], ak, b[2], b[3]);
            }
          }
          for (int nt = 0; nt < 4; nt++) {
            for (int e = 0; e < 4; e++) {
              int local = r0 + nt * 8 + 2 * tig + (e & 1);
              bool seen = local < rowCount && key[e >> 1] <= firstPos + local;
              s[nt][e] = seen ? exp2f(s[nt][e] * scaleLog2 - rowLse[local]) : 0.0f;
            }
          }
          for (int kk = 0; kk < 2; kk++) {
            ap[kk][0] = fa_pack(s[2 * kk][0], s[2 * kk][1]);
            ap[kk][1] = fa_pack(s[2 * kk][2], s[2 * kk][3]);
            ap[kk][2] = fa_pack(s[2 * kk + 1][0], s[2 * kk + 1][1]);
            ap[kk][3] = fa_pack(s[2 * kk + 1][2], s[2 * kk + 1][3]);
          }
        }
        // dV += P^T dO: B by transposed ldmatrix of the row-major [query row][d] tile
        for (int kk = 0; kk < 2; kk++) {
          for (int dd = 0; dd < HD / 16; dd++) {
            unsigned int b[4];
            fa_ldsm_trans(fa_bt_address(osAddr, LD, r0 + kk * 16, dd * 16, lane), b);
            fa_mma(dv[2 * dd], ap[kk], b[0], b[1]);
            fa_mma(dv[2 * dd + 1], ap[kk], b[2], b[3]);
          }
        }
        // dP^T = V dO^T, dS^T = P^T (dP^T - D) with the bf16 P^T (dS^T is rounded to bf16 below)
        float dp[4][4];
        for (int i = 0; i < 4; i++) {
          dp[i][0] = dp[i][1] = dp[i][2] = dp[i][3] = 0.0f;
        }
        for (int kk = 0; kk < HD / 16; kk++) {
          unsigned int av[4];
          fa_ldsm(fa_a_address(vsAddr, LD, warp * 16, kk * 16, lane), av);
          for (int np = 0; np < 2; np++) {
            unsigned int b[4];
            fa_ldsm(fa_b_address(osAddr, LD, r0 + np * 16, kk * 16, lane), b);
            fa_mma(dp[2 * np], av, b[0], b[1]);
            fa_mma(dp[2 * np + 1], av, b[2], b[3]);
          }
        }
        for (int nt = 0; nt < 4; nt++) {
          for (int e = 0; e < 4; e++) {
            int local = r0 + nt * 8 + 2 * tig + (e & 1);
            // P^T[nt][e] is half (e & 1) of ap[nt / 2][(nt & 1) * 2 + (e >> 1)]
            float p = fa_unpack(ap[nt >> 1][(nt & 1) * 2 + (e >> 1)], e & 1);
            dp[nt][e] = p * (dp[nt][e] - rowD[local]);
          }
        }
        // dK += dS^T Q
        for (int kk = 0; kk < 2; kk++) {
          unsigned int as[4] = {fa_pack(dp[2 * kk][0], dp[2 * kk][1]), fa_pack(dp[2 * kk][2], dp[2 * kk][3]),
                                fa_pack(dp[2 * kk + 1][0], dp[2 * kk + 1][1]),
                                fa_pack(dp[2 * kk + 1][2], dp[2 * kk + 1][3])};
          for (int dd = 0; dd < HD / 16; dd++) {
            unsigned int b[4];
            fa_ldsm_trans(fa_bt_address(qsAddr, LD, r0 + kk * 16, dd * 16, lane), b);
            fa_mma(dk[2 * dd], as, b[0], b[1]);
            fa_mma(dk[2 * dd + 1], as, b[2], b[3]);
          }
        }
      }
    }
  }
  for (int r = 0; r < 2; r++) {
    if (key[r] >= maxLength || key[r] > slotLast) {
      continue;
    }
    long long at = ((long long) slot * maxLength + key[r]) * kvDim + (long long) g * headDim;
    for (int nd = 0; nd < HD / 8; nd++) {
      int d = nd * 8 + 2 * tig;
      if (d < headDim) {
        dkCache[at + d] += dk[nd][2 * r] * scale;
        dvCache[at + d] += dv[nd][2 * r];
      }
      if (d + 1 < headDim) {
        dkCache[at + d + 1] += dk[nd][2 * r + 1] * scale;
        dvCache[at + d + 1] += dv[nd][2 * r + 1];
      }
    }
  }
}

extern "C" __global__ void flash_attention_dkv_64(
    float* dkCache, float* dvCache, const float* q, const float* kCache, const float* vCache, const float* dout,
    const float* lse, const float* D, const int* items, const int* slotItems, int heads, int kvHeads, int headDim,
    int maxLength, float scaleLog2, float scale, int vec) {
  flash_dkv<64>(dkCache, dvCache, q, kCache, vCache, dout, lse, D, items, slotItems, heads, kvHeads, headDim,
                maxLength, scaleLog2, scale, vec);
}

extern "C" __global__ void flash_attention_dkv_128(
    float* dkCache, float* dvCache, const float* q, const float* kCache, const float* vCache, const float* dout,
    const float* lse, const float* D, const int* items, const int* slotItems, int heads, int kvHeads, int headDim,
    int maxLength, float scaleLog2, float scale, int vec) {
  flash_dkv<128>(dkCache, dvCache, q, kCache, vCache, dout, lse, D, items, slotItems, heads, kvHeads, headDim,
                 maxLength, scaleLog2, scale, vec);
}
