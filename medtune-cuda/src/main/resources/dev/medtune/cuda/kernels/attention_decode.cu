// Attention for a few query rows against the KV cache (decode): attention_forward's math (see
// attention.cu: p_j = softmax_j(q . k_j * scale) over j <= positions[t], out = sum_j p_j v_j; the
// scores and probabilities in p = att[t, h, :], lse[t, h] when lse is not null, and when it is
// null p holds the probabilities, as the backward of the tiled path reads them).
//
// Why another kernel: at batch 1 there is one block per query head (32 for Llama 3.1 8B), and in
// attention_forward each thread walks a whole key row (uncoalesced: 32 rows per warp load) and
// then every thread walks all positions for its output dimension: a chain of dependent loads as
// long as the context. Here a warp takes whole rows, lane l the 4 dimensions 4l..4l+3 (one 16-byte
// load a lane, 512 bytes a row, coalesced), DECODE_WARPS warps split the positions, DECODE_UNROLL
// rows in flight per warp; the partial outputs of the warps are summed through shared memory.
// Needs headDim % 4 == 0, headDim <= 128, 16-byte aligned q, caches and out.

#define DECODE_WARPS 16
#define DECODE_UNROLL 4

extern "C" __global__ void attention_decode(float* out, float* att, float* lse, const float* q,
                                            const float* kCache, const float* vCache,
                                            const int* slots, const int* positions, int heads,
                                            int kvHeads, int headDim, int maxLength, float scale) {
  __shared__ float partial[DECODE_WARPS][128];
  __shared__ float scratch[32];
  int th = blockIdx.x;
  int t = th / heads;
  int h = th % heads;
  int g = h / (heads / kvHeads);
  int last = positions[t];
  int kvDim = kvHeads * headDim;
  int warp = threadIdx.x >> 5;
  int lane = threadIdx.x & 31;
  bool mine = 4 * lane < headDim;
  float4 qv = mine ? *(const float4*) (q + (long long) th * headDim + 4 * lane) : make_float4(0.f, 0.f, 0.f, 0.f);
  long long base = (long long) slots[t] * maxLength * kvDim + (long long) g * headDim + 4 * lane;
  float* p = att + (long long) th * maxLength;

  // scores: warp w takes rows w, w + DECODE_WARPS, ...
  float mx = NEG_INF;
  for (int j0 = warp; j0 <= last; j0 += DECODE_WARPS * DECODE_UNROLL) {
    float4 kv[DECODE_UNROLL];
#pragma unroll
    for (int u = 0; u < DECODE_UNROLL; u++) {
      int j = j0 + u * DECODE_WARPS;
      kv[u] = mine && j <= last ? *(const float4*) (kCache + base + (long long) j * kvDim)
                                : make_float4(0.f, 0.f, 0.f, 0.f);
    }
#pragma unroll
    for (int u = 0; u < DECODE_UNROLL; u++) {
      int j = j0 + u * DECODE_WARPS;
      float s = qv.x * kv[u].x + qv.y * kv[u].y + qv.z * kv[u].z + qv.w * kv[u].w;
      s = warp_sum(s) * scale;
      if (j <= last) {
        if (lane == 0) {
          p[j] = s;
        }
        mx = fmaxf(mx, s);
      }
    }
  }
  mx = block_max(mx, scratch);  // its barriers also publish every p[j] above to the block
  float sum = 0.0f;
  for (int j = threadIdx.x; j <= last; j += blockDim.x) {
    float e = expf(p[j] - mx);
    p[j] = e;
    sum += e;
  }
  sum = block_sum(sum, scratch);  // and these every e
  float inv = 1.0f / sum;

  // out: warp w sums e_j v_j over its rows, lane l its 4 dimensions
  float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
  for (int j0 = warp; j0 <= last; j0 += DECODE_WARPS * DECODE_UNROLL) {
    float4 vv[DECODE_UNROLL];
    float e[DECODE_UNROLL];
#pragma unroll
    for (int u = 0; u < DECODE_UNROLL; u++) {
      int j = j0 + u * DECODE_WARPS;
      bool in = j <= last;
      vv[u] = mine && in ? *(const float4*) (vCache + base + (long long) j * kvDim) : make_float4(0.f, 0.f, 0.f, 0.f);
      e[u] = in ? p[j] : 0.0f;
    }
#pragma unroll
    for (int u = 0; u < DECODE_UNROLL; u++) {
      acc.x += e[u] * vv[u].x;
      acc.y += e[u] * vv[u].y;
      acc.z += e[u] * vv[u].z;
      acc.w += e[u] * vv[u].w;
    }
  }
  if (mine) {
    partial[warp][4 * lane] = acc.x;
    partial[warp][4 * lane + 1] = acc.y;
    partial[warp][4 * lane + 2] = acc.z;
    partial[warp][4 * lane + 3] = acc.w;
  }
  __syncthreads();
  for (int d = threadIdx.x; d < headDim; d += blockDim.x) {
    float o = 0.0f;
    for (int w = 0; w < DECODE_WARPS; w++) {
      o += partial[w][d];
    }
    out[(long long) th * headDim + d] = o * inv;
  }
  if (lse != 0) {
    if (threadIdx.x == 0) {
      lse[th] = mx + logf(sum);
    }
  } else {
    for (int j = threadIdx.x; j <= last; j += blockDim.x) {
      p[j] *= inv;  // the probabilities, for the backward
    }
  }
}
