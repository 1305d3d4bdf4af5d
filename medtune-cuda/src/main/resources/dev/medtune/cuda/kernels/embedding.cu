// Embedding lookup (also the row gather before lm_head): out[t,:] = table[tokens[t],:] as float32.
// One block per row. Backward with a trained table: dTable[tokens[t],:] += dout[t,:] (atomics).

extern "C" __global__ void embedding_forward(float* out, const void* table, int dtype,
                                             const int* tokens, int dim) {
  int t = blockIdx.x;
  long long src = (long long) tokens[t] * dim;
  long long dst = (long long) t * dim;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) {
    out[dst + i] = load_as_float(table, src + i, dtype);
  }
}
