// Greedy decoding on the device: out[t] = argmax_i x[t, i] over i < dim, so that one int per row
// comes back to the host instead of a row of logits (128,256 floats for Llama 3).
//
// Meaning (Backend.argmaxOf, the CPU reference): the largest value, the lowest index among equal
// values (as torch.argmax and the host Sampler; -0.0 equals +0.0); NaN entries are passed over,
// and a row of only NaN gives 0. The order "larger value, then lower index" is total over the
// non-NaN entries, so any reduction tree gives the sequential scan's answer.
//
// One block per row: each thread scans a strided slice (increasing indices, so its first maximum
// is its lowest), then warp shuffles and one shared-memory round combine the candidates.

// (v, i) beats (bv, bi); i < 0 marks "no candidate"
__device__ __forceinline__ bool argmax_beats(float v, int i, float bv, int bi) {
  if (i < 0) {
    return false;
  }
  if (bi < 0) {
    return true;
  }
  return v > bv || (v == bv && i < bi);
}

__device__ __forceinline__ void argmax_warp(float& bv, int& bi) {
  for (int o = 16; o > 0; o >>= 1) {
    float v = __shfl_xor_sync(0xffffffffu, bv, o);
    int i = __shfl_xor_sync(0xffffffffu, bi, o);
    if (argmax_beats(v, i, bv, bi)) {
      bv = v;
      bi = i;
    }
  }
}

extern "C" __global__ void argmax_rows(int* out, const float* x, int dim) {
  __shared__ float values[32];
  __shared__ int indices[32];
  const float* row = x + (long long) blockIdx.x * dim;
  float bv = NEG_INF;
  int bi = -1;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) {
    float v = row[i];
    if (v == v && (bi < 0 || v > bv)) {  // v == v: not NaN
      bv = v;
      bi = i;
    }
  }
  argmax_warp(bv, bi);
  int lane = threadIdx.x & 31;
  int warp = threadIdx.x >> 5;
  if (lane == 0) {
    values[warp] = bv;
    indices[warp] = bi;
  }
  __syncthreads();
  if (warp == 0) {
    int warps = blockDim.x >> 5;
    bv = lane < warps ? values[lane] : NEG_INF;
    bi = lane < warps ? indices[lane] : -1;
    argmax_warp(bv, bi);
    if (lane == 0) {
      out[blockIdx.x] = bi < 0 ? 0 : bi;
    }
  }
}
