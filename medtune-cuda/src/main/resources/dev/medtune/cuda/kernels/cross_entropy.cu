// Cross-entropy with its gradient in one pass (llm.c's fused classifier), in place on the logits:
// for a row t with targets[t] != ignoreIndex,
//   losses[t] = logsumexp(logits[t,:]) - logits[t, targets[t]]
//   logits[t,:] = gradScale * (softmax(logits[t,:]) - onehot(targets[t]))
// ignored rows get loss 0 and a zero gradient. The caller passes the logits of a chunk of rows
// (the model never holds float32 logits for the whole batch), gradScale = 1 / counted tokens of
// the optimizer step. One block per row; max and sum are block reductions in float32.

extern "C" __global__ void cross_entropy_forward(float* losses, float* logits, const int* targets,
                                                 int ignoreIndex, int vocab, float gradScale) {
  __shared__ float scratch[32];
  int t = blockIdx.x;
  float* z = logits + (long long) t * vocab;
  int target = targets[t];
  if (target == ignoreIndex) {
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
      z[i] = 0.0f;
    }
    if (threadIdx.x == 0) {
      losses[t] = 0.0f;
    }
    return;
  }
  float mx = NEG_INF;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    mx = fmaxf(mx, z[i]);
  }
  mx = block_max(mx, scratch);
  float sum = 0.0f;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    sum += expf(z[i] - mx);
  }
  sum = block_sum(sum, scratch);
  float zt = z[target];
  __syncthreads();  // z[target] is read before any thread overwrites it
  if (threadIdx.x == 0) {
    losses[t] = logf(sum) - (zt - mx);
  }
  float inv = gradScale / sum;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    float gi = expf(z[i] - mx) * inv;
    z[i] = i == target ? gi - gradScale : gi;
  }
}
