// Runs flash_attention.cu's kernels on the CPU emulator (flash_emulator.h) against attention
// computed in double, for the layouts CudaFlashAttentionTest uses on the GPU (smaller head
// counts: the emulator is slow). Built and run by cuda/emulate/emulate-flash.sh. Prints one line
// per case with the largest error relative to the largest reference value; exits 1 on a failure.
#include <cstdio>
#include <random>
#include <string>

#include "flash_emulator.h"
#include "flash_kernels.inc"  // flash_attention.cu with the PTX helpers taken out

struct Case {
  std::string name;
  int slots, maxLength;
  std::vector<int> slot, pos;
};

static Case sequences(const std::string& name, int maxLength, std::vector<int> firsts, std::vector<int> lengths) {
  Case c{name, (int) lengths.size(), maxLength, {}, {}};
  for (size_t s = 0; s < lengths.size(); s++) {
    for (int i = 0; i < lengths[s]; i++) {
      c.slot.push_back((int) s);
      c.pos.push_back(firsts[s] + i);
    }
  }
  return c;
}

// FlashItems.of, as in CudaBackend: runs of <= 64 rows, sorted by slot (stable)
static void items(const Case& c, std::vector<int>& out, std::vector<int>& ranges, int& lastPosition) {
  int rows = (int) c.slot.size();
  std::vector<std::vector<int>> bySlot(c.slots);
  lastPosition = 0;
  for (int t = 0; t < rows;) {
    int start = t++;
    while (t < rows && t - start < 64 && c.slot[t] == c.slot[start] && c.pos[t] == c.pos[t - 1] + 1) {
      t++;
    }
    bySlot[c.slot[start]].insert(bySlot[c.slot[start]].end(), {start, t - start, c.slot[start], c.pos[start]});
    lastPosition = std::max(lastPosition, c.pos[t - 1]);
  }
  out.clear();
  ranges.clear();
  for (int s = 0; s < c.slots; s++) {
    ranges.push_back((int) out.size() / 4);
    out.insert(out.end(), bySlot[s].begin(), bySlot[s].end());
    ranges.push_back((int) out.size() / 4);
  }
}

static double maxAbs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m;
}

static bool report(const char* what, const std::string& name, const std::vector<double>& want,
                   const std::vector<float>& got, double tolRel) {
  double m = maxAbs(want);
  double worst = 0;
  for (size_t i = 0; i < want.size(); i++) {
    double e = std::fabs(got[i] - want[i]);
    if (std::isnan(e)) worst = NAN;
    else if (!std::isnan(worst)) worst = std::max(worst, e);
  }
  bool ok = !std::isnan(worst) && worst <= tolRel * m && m > 0;
  std::printf("%-5s %-4s %-60s max err %.3e of max %.3e (%.2e)\n", ok ? "pass" : "FAIL", what, name.c_str(), worst, m,
              worst / m);
  return ok;
}

int main(int argc, char** argv) {
  std::mt19937_64 rng(7);
  std::normal_distribution<float> gauss;
  bool allOk = true;
  std::vector<Case> cases = {
      sequences("packed 1+17+64+65+130", 130, {0, 0, 0, 0, 0}, {1, 17, 64, 65, 130}),
      sequences("prefill at 100 and 37", 230, {100, 37}, {130, 63}),
  };
  {
    Case sh = cases[0];
    std::vector<int> order(sh.slot.size());
    for (size_t i = 0; i < order.size(); i++) order[i] = (int) i;
    std::shuffle(order.begin(), order.end(), rng);
    Case c{"packed, shuffled", sh.slots, sh.maxLength, {}, {}};
    for (int i : order) {
      c.slot.push_back(sh.slot[i]);
      c.pos.push_back(sh.pos[i]);
    }
    cases.push_back(c);
  }
  struct Shape {
    int heads, kvHeads, headDim;
  };
  // (shape, layout) pairs: each head-dim variant, the padded path (16 in the 64 variant, scalar
  // loads) and every layout at least once; "all" as the argument runs every pair (about 10 min)
  std::vector<Shape> shapes = {{4, 2, 64}, {2, 1, 128}, {2, 2, 16}};
  std::vector<std::pair<int, int>> runs = {{1, 0}, {1, 1}, {2, 2}, {0, 1}};
  if (argc > 1 && std::string(argv[1]) == "all") {
    runs.clear();
    for (int a = 0; a < 3; a++)
      for (int b = 0; b < 3; b++) runs.push_back({a, b});
  }
  for (auto [shapeIndex, caseIndex] : runs) {
    {
      const Shape& sh = shapes[shapeIndex];
      const Case& c = cases[caseIndex];
      int heads = sh.heads, kvHeads = sh.kvHeads, headDim = sh.headDim;
      int variant = headDim <= 64 ? 64 : 128;
      int vec = headDim == variant ? 1 : 0;
      int rows = (int) c.slot.size();
      int kvDim = kvHeads * headDim;
      int maxLength = c.maxLength;
      size_t cache = (size_t) c.slots * maxLength * kvDim;
      std::string name = c.name + ", " + std::to_string(heads) + "/" + std::to_string(kvHeads) + " heads of " +
                         std::to_string(headDim);
      std::vector<int> slotLast(c.slots, -1);
      for (int t = 0; t < rows; t++) slotLast[c.slot[t]] = std::max(slotLast[c.slot[t]], c.pos[t]);
      std::vector<float> q(rows * heads * headDim), dout(q.size()), k(cache), v(cache);
      for (auto& x : q) x = gauss(rng);
      for (auto& x : dout) x = gauss(rng);
      for (size_t i = 0; i < cache; i++) {
        int s = (int) (i / ((size_t) maxLength * kvDim));
        int j = (int) (i / kvDim % maxLength);
        bool used = j <= slotLast[s];
        k[i] = used ? gauss(rng) : NAN;  // never to be read
        v[i] = used ? gauss(rng) : NAN;
      }
      // reference in double
      int group = heads / kvHeads;
      double scale = 1 / std::sqrt((double) headDim);
      std::vector<double> outR(q.size()), lseR(rows * heads), dqR(q.size(), 0), dkR(cache, 0), dvR(cache, 0);
      for (int t = 0; t < rows; t++) {
        for (int h = 0; h < heads; h++) {
          int g = h / group;
          int n = c.pos[t] + 1;
          std::vector<double> s(n), p(n), dp(n);
          const float* qr = &q[(t * heads + h) * headDim];
          const float* dr = &dout[(t * heads + h) * headDim];
          double mx = -INFINITY;
          for (int j = 0; j < n; j++) {
            const float* kr = &k[((size_t) c.slot[t] * maxLength + j) * kvDim + g * headDim];
            double d = 0;
            for (int e = 0; e < headDim; e++) d += (double) qr[e] * kr[e];
            s[j] = d * scale;
            mx = std::max(mx, s[j]);
          }
          double sum = 0;
          for (int j = 0; j < n; j++) sum += std::exp(s[j] - mx);
          lseR[t * heads + h] = mx + std::log(sum);
          double D = 0;
          for (int j = 0; j < n; j++) {
            p[j] = std::exp(s[j] - mx) / sum;
            const float* vr = &v[((size_t) c.slot[t] * maxLength + j) * kvDim + g * headDim];
            double d = 0;
            for (int e = 0; e < headDim; e++) {
              outR[(t * heads + h) * headDim + e] += p[j] * vr[e];
              d += (double) dr[e] * vr[e];
            }
            dp[j] = d;
            D += p[j] * d;
          }
          for (int j = 0; j < n; j++) {
            double ds = p[j] * (dp[j] - D) * scale;
            size_t at = ((size_t) c.slot[t] * maxLength + j) * kvDim + g * headDim;
            for (int e = 0; e < headDim; e++) {
              dqR[(t * heads + h) * headDim + e] += ds * k[at + e];
              dkR[at + e] += ds * qr[e];
              dvR[at + e] += p[j] * dr[e];
            }
          }
        }
      }
      std::vector<int> it, ranges;
      int lastPosition;
      items(c, it, ranges, lastPosition);
      int count = (int) it.size() / 4;
      std::vector<float> out(q.size(), NAN), lse(rows * heads, NAN), D(rows * heads, NAN), dq(q.size(), NAN);
      std::vector<float> dk(cache, 0.0f), dv(cache, 0.0f);
      float scaleLog2 = (float) (scale / std::log(2.0));
      size_t tile = 64 * (variant + 8) * 2;
      emu_launch(count, heads, 2 * tile, [&]() {
        if (variant == 64)
          flash_attention_forward_64(out.data(), lse.data(), q.data(), k.data(), v.data(), it.data(), heads, kvHeads,
                                     headDim, maxLength, scaleLog2, vec);
        else
          flash_attention_forward_128(out.data(), lse.data(), q.data(), k.data(), v.data(), it.data(), heads, kvHeads,
                                      headDim, maxLength, scaleLog2, vec);
      });
      allOk &= report("out", name, outR, out, 1e-2);
      std::vector<double> lseShift(lseR.size());
      std::vector<float> lseGot(lseR.size());
      for (size_t i = 0; i < lseR.size(); i++) {  // absolute error, as a fraction of 1 + max|lse|
        lseShift[i] = lseR[i];
        lseGot[i] = lse[i];
      }
      allOk &= report("lse", name, lseShift, lseGot, 1e-2);
      emu_launch((rows * heads + 3) / 4, 1, 0, [&]() {
        flash_attention_d(D.data(), dout.data(), out.data(), rows * heads, headDim);
      });
      emu_launch(c.slots * kvHeads, (lastPosition + 64) / 64, 4 * tile + 512, [&]() {
        if (variant == 64)
          flash_attention_dkv_64(dk.data(), dv.data(), q.data(), k.data(), v.data(), dout.data(), lse.data(), D.data(),
                                 it.data(), ranges.data(), heads, kvHeads, headDim, maxLength, scaleLog2,
                                 (float) scale, vec);
        else
          flash_attention_dkv_128(dk.data(), dv.data(), q.data(), k.data(), v.data(), dout.data(), lse.data(), D.data(),
                                  it.data(), ranges.data(), heads, kvHeads, headDim, maxLength, scaleLog2,
                                  (float) scale, vec);
      });
      emu_launch(count, heads, 4 * tile + 512, [&]() {
        if (variant == 64)
          flash_attention_dq_64(dq.data(), q.data(), k.data(), v.data(), dout.data(), lse.data(), D.data(), it.data(),
                                heads, kvHeads, headDim, maxLength, scaleLog2, (float) scale, vec);
        else
          flash_attention_dq_128(dq.data(), q.data(), k.data(), v.data(), dout.data(), lse.data(), D.data(), it.data(),
                                 heads, kvHeads, headDim, maxLength, scaleLog2, (float) scale, vec);
      });
      allOk &= report("dq", name, dqR, dq, 1e-2);
      allOk &= report("dK", name, dkR, dk, 1e-2);
      allOk &= report("dV", name, dvR, dv, 1e-2);
      std::fflush(stdout);
    }
  }
  std::printf(allOk ? "all passed\n" : "FAILURES\n");
  return allOk ? 0 : 1;
}
