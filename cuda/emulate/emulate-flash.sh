#!/usr/bin/env bash
# Runs the flash-attention kernels (medtune-cuda/.../kernels/flash_attention.cu) on the CPU, with
# no GPU: the kernel source minus its PTX helpers (ldmatrix, mma, bf16 packing, shared
# addresses) is compiled as C++ against flash_emulator.h, which emulates a block's threads, its
# barriers and the warp collectives from the PTX ISA's fragment layouts, and the kernels' outputs
# are compared with attention in double (flash_emulator_test.cpp). For checking the kernels'
# index math after an edit, before GPU time; cuda/check-kernels.sh checks that they compile for
# sm_90. Needs g++ with C++20. About 5 minutes (2 cores); `emulate-flash.sh all` runs every
# shape with every layout (about 10 minutes).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$here/../../medtune-cuda/src/main/resources/dev/medtune/cuda/kernels/flash_attention.cu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - "$src" "$tmp/flash_kernels.inc" <<'PY'
import re, sys
src = open(sys.argv[1]).read()
# drop the helpers the emulator provides: from their signature line to the closing brace at column 0
for name in ["fa_pack", "fa_smem_address", "fa_ldsm", "fa_ldsm_trans", "fa_mma"]:
    m = re.search(r"^__device__ __forceinline__ [^\n]*\b" + name + r"\(.*?^}\n", src, re.S | re.M)
    if not m:
        sys.exit("emulate-flash.sh: no helper " + name + " in " + sys.argv[1])
    src = src[:m.start()] + src[m.end():]
n = src.count("extern __shared__ fa_float4 fa_shared[];")
if n == 0:
    sys.exit("emulate-flash.sh: no dynamic shared memory declaration")
src = src.replace("extern __shared__ fa_float4 fa_shared[];", "fa_float4* fa_shared = (fa_float4*) emu_shared;")
open(sys.argv[2], "w").write(src)
PY
g++ -std=c++20 -O2 -fno-strict-aliasing -I"$here" -I"$tmp" "$here/flash_emulator_test.cpp" -o "$tmp/emulate"
"$tmp/emulate" "$@"
