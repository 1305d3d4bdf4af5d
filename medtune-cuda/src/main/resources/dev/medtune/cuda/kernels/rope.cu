// Rotary position embedding (Su et al. 2021) in place, Hugging Face layout (rotate_half):
//   x1' = x1 cos - x2 sin,  x2' = x2 cos + x1 sin,   x1 = x[i], x2 = x[i + headDim/2]
// table[p, :] holds cos of the angles in its first half and sin in its second (made by Rope.java,
// where Llama 3.1's frequency scaling lives). One thread per rotated pair.
// Backward (rope_backward, in place on the gradient): the rotation is orthogonal, so the gradient
// turns by the negative angle: dx1' = dx1 cos + dx2 sin,  dx2' = dx2 cos - dx1 sin.

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

extern "C" __global__ void rope_backward(float* dx, const float* table, const int* positions,
                                         int rows, int heads, int headDim) {
  int half = headDim / 2;
  long long n = (long long) rows * heads * half;
  for (long long idx = blockIdx.x * (long long) blockDim.x + threadIdx.x; idx < n;
       idx += (long long) gridDim.x * blockDim.x) {
    int i = (int) (idx % half);
    long long th = idx / half;
    int t = (int) (th / heads);
    const float* c = table + (long long) positions[t] * headDim;
    float cs = c[i];
    float sn = c[half + i];
    float* b = dx + th * headDim;
    float g1 = b[i];
    float g2 = b[half + i];
    b[i] = g1 * cs + g2 * sn;
    b[half + i] = g2 * cs - g1 * sn;
  }
}
