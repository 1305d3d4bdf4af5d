// Rotary position embedding (Su et al. 2021) in place, Hugging Face layout (rotate_half):
//   x1' = x1 cos - x2 sin,  x2' = x2 cos + x1 sin,   x1 = x[i], x2 = x[i + headDim/2]
// table[p, :] holds cos of the angles in its first half and sin in its second (made by Rope.java,
// where Llama 3.1's frequency scaling lives). One thread per rotated pair.
// Backward (planned): the same rotation by the negative angle.

extern "C" __global__ void rope_forward(float* x, const float* table, const int* positions,
                                        int rows, int heads, int headDim) {
  int half = headDim / 2;
  long long n = (long long) rows * heads * half;
  for (long long idx = blockIdx.x * (long long) blockDim.x + threadIdx.x; idx < n;
       idx += (long long) gridDim.x * blockDim.x) {
    int i = (int) (idx % half);
    long long th = idx / half;          // t * heads + h
    int t = (int) (th / heads);
    const float* c = table + (long long) positions[t] * headDim;
    float cs = c[i];
    float sn = c[half + i];
    float* b = x + th * headDim;
    float x1 = b[i];
    float x2 = b[half + i];
    b[i] = x1 * cs - x2 * sn;
    b[half + i] = x2 * cs + x1 * sn;
  }
}
