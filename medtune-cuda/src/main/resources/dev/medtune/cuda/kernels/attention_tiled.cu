// Causal grouped-query attention with query tiles: the forward and the dq part of the backward,
// one kernel (attention_rows_tiled), and the dK/dV part of the backward (attention_dkv_tiled).
// The math is attention.cu's and attention_backward.cu's; what changes is the traffic: a block
// takes TQ consecutive query rows of one head and reads each key/value row once per tile (into
// shared memory) instead of once per query row and head, so K and V are read rows/TQ times
// fewer. Rows of one tile may belong to different slots (packed or unpadded batches): the tile is
// processed once per distinct slot, rows of other slots idling. headDim <= 128, 128 threads.
//
// attention_rows_tiled, for each row t of the tile (slot s, last = positions[t], head h, KV head g):
//   pass 1: S[t,h,j] = A[t,h,:] . B[s,j,g,:] * scaleA                                  (j <= last)
//   pass 2 (mode 0, forward):  S[t,h,:] = softmax(S[t,h,:])                (the probabilities, att)
//          (mode 1, backward): S[t,h,j] = P[t,h,j] (S[t,h,j] - sum_i P[t,h,i] S[t,h,i])      (ds)
//   pass 3: out[t,h,:] = scaleC * sum_j S[t,h,j] C[s,j,g,:]
// forward:  A = q,    B = kCache, C = vCache, S = att, scaleA = 1/sqrt(headDim), scaleC = 1
// backward: A = dout, B = vCache, C = kCache, S = ds,  P = att, scaleA = 1, scaleC = 1/sqrt(headDim)
//
// attention_dkv_tiled: one block per (slot s and KV head g: x, TK keys j0..: y), thread d of the head dim:
//   dkCache[s,j,g,d] += scale * sum_{t of s, h in g} ds[t,h,j] q[t,h,d]
//   dvCache[s,j,g,d] += sum_{t of s, h in g} att[t,h,j] dout[t,h,d]
// over rows [range[2s], range[2s+1]) with positions[t] >= j (ds and att past positions[t] are
// not read: they may hold anything).

#define TQ 16
#define TK 32
#define TILE_THREADS 128

extern "C" __global__ void attention_rows_tiled(float* out, float* S, const float* P, const float* A,
                                                const float* B, const float* C, const int* slots,
                                                const int* positions, int rows, int heads, int kvHeads,
                                                int headDim, int maxLength, float scaleA, float scaleC,
                                                int mode) {
  __shared__ float As[TQ][128];
  __shared__ float Ts[TK][129];   // a tile of B, then of C (padded: conflict-free column reads)
  __shared__ float Ss[TQ][TK];
  __shared__ int rowSlot[TQ];
  __shared__ int rowPos[TQ];
  int tid = threadIdx.x;
  int t0 = blockIdx.x * TQ;
  int h = blockIdx.y;
  int g = h / (heads / kvHeads);
  int kvDim = kvHeads * headDim;
  if (tid < TQ) {
    int t = t0 + tid;
    rowSlot[tid] = t < rows ? slots[t] : -1;
    rowPos[tid] = t < rows ? positions[t] : -1;
  }
  for (int i = tid; i < TQ * headDim; i += TILE_THREADS) {
    int qi = i / headDim;
    int d = i % headDim;
    int t = t0 + qi;
    As[qi][d] = t < rows ? A[((long long) t * heads + h) * headDim + d] : 0.0f;
  }
  __syncthreads();
  int warp = tid >> 5;
  int lane = tid & 31;
  for (int first = 0; first < TQ; first++) {
    int s = rowSlot[first];
    bool seen = s < 0;
    for (int i = 0; i < first && !seen; i++) {
      seen = rowSlot[i] == s;
    }
    if (seen) {
      continue;  // uniform: every thread reads the same shared values
    }
    int last = -1;
    for (int i = 0; i < TQ; i++) {
      if (rowSlot[i] == s) {
        last = max(last, rowPos[i]);
      }
    }
    long long base = (long long) s * maxLength * kvDim + (long long) g * headDim;

    // pass 1: scores; thread (jj = tid % 32) against queries tid / 32 + 4 r
    for (int j0 = 0; j0 <= last; j0 += TK) {
      __syncthreads();
      for (int i = tid; i < TK * headDim; i += TILE_THREADS) {
        int jj = i / headDim;
        int d = i % headDim;
        int j = j0 + jj;
        Ts[jj][d] = j <= last ? B[base + (long long) j * kvDim + d] : 0.0f;
      }
      __syncthreads();
      int jj = tid % TK;
      int j = j0 + jj;
      float acc[TQ / 4];
      for (int r = 0; r < TQ / 4; r++) {
        acc[r] = 0.0f;
      }
      for (int d = 0; d < headDim; d++) {
        float b = Ts[jj][d];
        for (int r = 0; r < TQ / 4; r++) {
          acc[r] += As[warp + 4 * r][d] * b;
        }
      }
      for (int r = 0; r < TQ / 4; r++) {
        int qi = warp + 4 * r;
        if (rowSlot[qi] == s && j <= rowPos[qi]) {
          S[((long long) (t0 + qi) * heads + h) * maxLength + j] = acc[r] * scaleA;
        }
      }
    }
    __syncthreads();  // the block's global writes of S are visible to the block after the barrier

    // pass 2: per row, one warp
    for (int qi = warp; qi < TQ; qi += TILE_THREADS / 32) {
      if (rowSlot[qi] != s) {
        continue;
      }
      long long row = ((long long) (t0 + qi) * heads + h) * maxLength;
      float* sr = S + row;
      int pos = rowPos[qi];
      if (mode == 0) {
        float mx = NEG_INF;
        for (int j = lane; j <= pos; j += 32) {
          mx = fmaxf(mx, sr[j]);
        }
        mx = warp_max(mx);
        float sum = 0.0f;
        for (int j = lane; j <= pos; j += 32) {
          float e = expf(sr[j] - mx);
          sr[j] = e;
          sum += e;
        }
        sum = warp_sum(sum);
        float inv = 1.0f / sum;
        for (int j = lane; j <= pos; j += 32) {
          sr[j] *= inv;
        }
      } else {
        const float* pr = P + row;
        float sum = 0.0f;
        for (int j = lane; j <= pos; j += 32) {
          sum += pr[j] * sr[j];
        }
        sum = warp_sum(sum);
        for (int j = lane; j <= pos; j += 32) {
          sr[j] = pr[j] * (sr[j] - sum);
        }
      }
    }
    __syncthreads();

    // pass 3: thread d accumulates the TQ rows' outputs
    float o[TQ];
    for (int qi = 0; qi < TQ; qi++) {
      o[qi] = 0.0f;
    }
    for (int j0 = 0; j0 <= last; j0 += TK) {
      __syncthreads();
      for (int i = tid; i < TK * headDim; i += TILE_THREADS) {
        int jj = i / headDim;
        int d = i % headDim;
        int j = j0 + jj;
        Ts[jj][d] = j <= last ? C[base + (long long) j * kvDim + d] : 0.0f;
      }
      for (int i = tid; i < TQ * TK; i += TILE_THREADS) {
        int qi = i / TK;
        int jj = i % TK;
        int j = j0 + jj;
        Ss[qi][jj] = rowSlot[qi] == s && j <= rowPos[qi]
            ? S[((long long) (t0 + qi) * heads + h) * maxLength + j] : 0.0f;
      }
      __syncthreads();
      if (tid < headDim) {
        for (int jj = 0; jj < TK; jj++) {
          float c = Ts[jj][tid];
          for (int qi = 0; qi < TQ; qi++) {
            o[qi] += Ss[qi][jj] * c;
          }
        }
      }
    }
    if (tid < headDim) {
      for (int qi = 0; qi < TQ; qi++) {
        if (rowSlot[qi] == s) {
          out[((long long) (t0 + qi) * heads + h) * headDim + tid] = o[qi] * scaleC;
        }
      }
    }
    __syncthreads();
  }
}

extern "C" __global__ void attention_dkv_tiled(float* dkCache, float* dvCache, const float* ds,
                                               const float* att, const float* q, const float* dout,
                                               const int* slots, const int* positions,
                                               const int* range, int heads, int kvHeads,
                                               int headDim, int maxLength, float scale) {
  __shared__ float Dsh[TQ][TK];
  __shared__ float Psh[TQ][TK];
  __shared__ int pairRow[TQ];
  int tid = threadIdx.x;
  int g = blockIdx.x % kvHeads;
  int s = blockIdx.x / kvHeads;
  int j0 = blockIdx.y * TK;
  int group = heads / kvHeads;
  int kvDim = kvHeads * headDim;
  int from = range[2 * s];
  int end = range[2 * s + 1];
  float ak[TK];
  float av[TK];
  for (int jj = 0; jj < TK; jj++) {
    ak[jj] = 0.0f;
    av[jj] = 0.0f;
  }
  // (t, h in g) pairs in chunks of TQ: pair p = (t - from) * group + (h - g * group)
  long long pairs = (long long) (end - from) * group;
  for (long long p0 = 0; p0 < pairs; p0 += TQ) {
    __syncthreads();
    if (tid < TQ) {
      long long p = p0 + tid;
      int t = p < pairs ? from + (int) (p / group) : -1;
      pairRow[tid] = t >= 0 && slots[t] == s && positions[t] >= j0 ? t : -1;
    }
    __syncthreads();
    for (int i = tid; i < TQ * TK; i += TILE_THREADS) {
      int pi = i / TK;
      int jj = i % TK;
      int t = pairRow[pi];
      float dsv = 0.0f;
      float pv = 0.0f;
      if (t >= 0 && j0 + jj <= positions[t]) {
        int h = g * group + (int) ((p0 + pi) % group);
        long long at = ((long long) t * heads + h) * maxLength + j0 + jj;
        dsv = ds[at];
        pv = att[at];
      }
      Dsh[pi][jj] = dsv;
      Psh[pi][jj] = pv;
    }
    __syncthreads();
    if (tid < headDim) {
      for (int pi = 0; pi < TQ; pi++) {
        int t = pairRow[pi];
        if (t < 0) {
          continue;
        }
        int h = g * group + (int) ((p0 + pi) % group);
        long long th = (long long) t * heads + h;
        float qd = q[th * headDim + tid];
        float od = dout[th * headDim + tid];
        for (int jj = 0; jj < TK; jj++) {
          ak[jj] += Dsh[pi][jj] * qd;
          av[jj] += Psh[pi][jj] * od;
        }
      }
    }
  }
  if (tid < headDim) {
    for (int jj = 0; jj < TK; jj++) {
      int j = j0 + jj;
      if (j < maxLength) {
        long long at = ((long long) s * maxLength + j) * kvDim + (long long) g * headDim + tid;
        dkCache[at] += ak[jj] * scale;
        dvCache[at] += av[jj];
      }
    }
  }
}
