// SwiGLU (Shazeer 2020) as Llama's MLP uses it: out = silu(gate) * up, silu(x) = x / (1 + e^-x).
// Backward (swiglu_backward, both overwritten): s = sigmoid(gate),
//   dgate = dout * up * s * (1 + gate * (1 - s)),   dup = dout * gate * s

extern "C" __global__ void swiglu_forward(float* out, const float* gate, const float* up, long long n) {
  for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n;
       i += (long long) gridDim.x * blockDim.x) {
    float x = gate[i];
    out[i] = x / (1.0f + expf(-x)) * up[i];
  }
}

extern "C" __global__ void swiglu_backward(float* dgate, float* dup, const float* dout,
                                           const float* gate, const float* up, long long n) {
  for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n;
       i += (long long) gridDim.x * blockDim.x) {
    float x = gate[i];
    float s = 1.0f / (1.0f + expf(-x));
    float dy = dout[i];
    dup[i] = dy * (x * s);
    dgate[i] = dy * up[i] * (s * (1.0f + x * (1.0f - s)));
  }
}
