#!/usr/bin/env python3
"""Writes the PEFT interop and training-parity fixtures medtune's LoRA code is tested against.

Everything is float32 on the CPU (eager attention), so the numbers are reproducible.

OUT/
  base/                     a small random LlamaForCausalLM (GQA 4/2, llama3 rope scaling, untied),
                            transformers' save_pretrained: config.json, model.safetensors
  adapter-all/              PEFT LoRA on all seven projections (r 8, alpha 16), A from PEFT's
                            default init, B set to fixed non-zero values so it changes the logits;
                            saved by PEFT's save_pretrained (adapter_config.json,
                            adapter_model.safetensors)
  adapter-rslora-qv/        the same on q_proj and v_proj only, r 4, alpha 8, use_rslora
  adapter-dora/             a DoRA adapter (use_dora true): medtune must refuse it, naming it
  expected.json             token ids and, for each adapter, the logits PEFT computes with it
                            (and the base model's logits), per position
  train/
    initial_adapter/        the adapter training starts from (PEFT layout, B non-zero)
    final_adapter/          the adapter after 20 optimizer steps (PEFT's save_pretrained)
    grads.safetensors       step{k}.{PEFT tensor name}: the gradient of each LoRA tensor at step
                            k (1-based), before clipping - lets medtune's AdamW, clipping and
                            schedule be checked against torch's without a backward pass
    train.json              hyperparameters; the fixed batches (per step, per micro-batch:
                            input_ids, attention_mask, targets = next-token ids or -100); per
                            step: loss, lr used, grad_norm (before clipping), counted tokens

Training follows medtune's definition of a step: the loss is the sum of token cross-entropies
over all micro-batches of the step divided by the step's counted tokens (precomputed), so two
accumulated micro-batches equal one batch of four; then clip_grad_norm_(1.0), AdamW(lr 1e-3,
betas (0.9, 0.999), eps 1e-8, weight decay 0.01), get_linear_schedule_with_warmup(5, 20)
stepped after each optimizer step (step 1 uses lr 0, as the Trainer does).

Run (torch, transformers, peft, safetensors; written for torch 2.11, transformers 5.17, peft 0.21):
    python3 reference/make_peft_fixtures.py OUT_DIR [MEDTUNE_ADAPTER_DIR]
then copy OUT_DIR/* to medtune-model/src/test/resources/peft-fixtures/. MEDTUNE_ADAPTER_DIR is an
adapter medtune wrote for BASE's shapes (reference/medtune-written/, made by
LoraAdapter.save; shapes only, so it can be written before the base weights exist): PEFT loads
it onto base/ and its logits are recorded as expected.json's "medtune_written" (the "medtune
writes, PEFT reads" direction in the same run).

    python3 reference/make_peft_fixtures.py --check MEDTUNE_ADAPTER_DIR FIXTURES_DIR
loads an adapter medtune wrote with PEFT onto FIXTURES_DIR/base and compares its logits to
those expected.json records for the adapter it was converted from (name taken from the
adapter's folder name, e.g. adapter-all): the "medtune writes, PEFT reads" direction.
"""
import json
import os
import shutil
import sys
import tempfile

import torch
import torch.nn.functional as F
import transformers
from transformers import AutoConfig, LlamaForCausalLM, get_linear_schedule_with_warmup

import peft
from peft import LoraConfig, PeftModel, get_peft_model

SEVEN = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
BASE = dict(
    architectures=["LlamaForCausalLM"], model_type="llama", hidden_act="silu",
    attention_bias=False, mlp_bias=False, attention_dropout=0.0, initializer_range=0.2,
    pretraining_tp=1, use_cache=True, torch_dtype="float32",
    hidden_size=64, intermediate_size=176, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, head_dim=16, vocab_size=263, max_position_embeddings=256,
    rms_norm_eps=1e-5, rope_theta=500000.0,
    rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                      original_max_position_embeddings=32),
    tie_word_embeddings=False, bos_token_id=1, eos_token_id=[261, 262])
PROMPTS = [[1, 17, 200, 5, 99, 42, 7], [1, 250, 3, 3, 3, 128, 64, 12, 9, 180, 33, 2, 77]]
STEPS, WARMUP, LR, WD, MAX_NORM = 20, 5, 1e-3, 0.01, 1.0
BATCH, ACCUM = 2, 2
IGNORE = -100


def save_base(out):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(BASE, f, indent=2)
    torch.manual_seed(11)
    model = LlamaForCausalLM(AutoConfig.from_pretrained(out)).float()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
    tmp = tempfile.mkdtemp()
    model.save_pretrained(tmp)
    shutil.copy(os.path.join(tmp, "model.safetensors"), os.path.join(out, "model.safetensors"))
    shutil.rmtree(tmp)


def load_base(base_dir):
    return LlamaForCausalLM.from_pretrained(base_dir, dtype=torch.float32,
                                            attn_implementation="eager").eval()


def lora_tensors(model):
    """LoRA parameters under the names PEFT saves them (adapter name removed)."""
    return {n.replace(".default", ""): p for n, p in model.named_parameters() if "lora_" in n}


def make_adapter(base_dir, out, config, seed, b_scale=0.05):
    torch.manual_seed(seed)  # PEFT's kaiming_uniform_ init of A draws from torch's global RNG
    model = get_peft_model(load_base(base_dir), config)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=g) * b_scale)
    model.save_pretrained(out)
    return model


def logits_of(model, ids):
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0].float()


def check_reload(base_dir, adapter_dir, model, name):
    again = PeftModel.from_pretrained(load_base(base_dir), adapter_dir).eval()
    err = max(float((logits_of(again, p) - logits_of(model, p)).abs().max()) for p in PROMPTS)
    print(f"{name}: PEFT reloading its own save changes logits by {err:.2e}")


def interop(out):
    base_dir = os.path.join(out, "base")
    save_base(base_dir)
    expected = {"prompts": PROMPTS, "peft_version": peft.__version__,
                "transformers_version": transformers.__version__, "torch_version": torch.__version__}
    base = load_base(base_dir)
    expected["base_logits"] = [logits_of(base, p).tolist() for p in PROMPTS]
    adapters = {
        "adapter-all": LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=SEVEN,
                                  task_type="CAUSAL_LM"),
        "adapter-rslora-qv": LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, use_rslora=True,
                                        target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
    }
    expected["adapters"] = {}
    for i, (name, cfg) in enumerate(adapters.items()):
        d = os.path.join(out, name)
        model = make_adapter(base_dir, d, cfg, 100 + i).eval()
        lg = [logits_of(model, p) for p in PROMPTS]
        delta = max(float((a - b).abs().max()) for a, b in zip(lg, [logits_of(base, p) for p in PROMPTS]))
        print(f"{name}: the adapter moves the logits by up to {delta:.3f}")
        check_reload(base_dir, d, model, name)
        expected["adapters"][name] = {"logits": [x.tolist() for x in lg],
                                      "tensors": sorted(lora_tensors(model))}
    make_adapter(base_dir, os.path.join(out, "adapter-dora"),
                 LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj"], use_dora=True,
                            task_type="CAUSAL_LM"), 300)
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f)


def batches(vocab, seed):
    """STEPS x ACCUM micro-batches of BATCH right-padded rows; the first tokens of each row are an
    uncounted 'prompt'; targets are next-token ids or -100 (last real token, prompt, padding)."""
    g = torch.Generator().manual_seed(seed)
    steps = []
    for _ in range(STEPS):
        micro = []
        for _ in range(ACCUM):
            lens = [int(torch.randint(5, 25, (1,), generator=g)) for _ in range(BATCH)]
            width = max(lens)
            ids, mask, targets = [], [], []
            for n in lens:
                prompt = int(torch.randint(1, n - 2, (1,), generator=g))
                row = [1] + torch.randint(3, vocab - 4, (n - 2,), generator=g).tolist() + [261]
                t = [row[k + 1] if k + 1 < n and k + 1 > prompt else IGNORE for k in range(n)]
                ids.append(row + [0] * (width - n))
                mask.append([1] * n + [0] * (width - n))
                targets.append(t + [IGNORE] * (width - n))
            micro.append({"input_ids": ids, "attention_mask": mask, "targets": targets})
        steps.append(micro)
    return steps


def train(out):
    from safetensors.torch import save_file
    base_dir = os.path.join(out, "base")
    tdir = os.path.join(out, "train")
    os.makedirs(tdir, exist_ok=True)
    cfg = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=SEVEN, task_type="CAUSAL_LM")
    model = make_adapter(base_dir, os.path.join(tdir, "initial_adapter"), cfg, 500, b_scale=0.02)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    named = lora_tensors(model)
    opt = torch.optim.AdamW(params, lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=WD)
    sched = get_linear_schedule_with_warmup(opt, WARMUP, STEPS)
    data = batches(BASE["vocab_size"], 77)
    log, grads = [], {}
    for k, micro in enumerate(data, start=1):
        counted = sum(int((torch.tensor(m["targets"]) != IGNORE).sum()) for m in micro)
        total = 0.0
        for m in micro:
            logits = model(input_ids=torch.tensor(m["input_ids"]),
                           attention_mask=torch.tensor(m["attention_mask"])).logits
            ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                                 torch.tensor(m["targets"]).reshape(-1), ignore_index=IGNORE,
                                 reduction="sum")
            (ce / counted).backward()
            total += float(ce) / counted
        for n, p in named.items():
            grads[f"step{k}.{n}"] = p.grad.detach().clone().contiguous()
        lr = opt.param_groups[0]["lr"]
        norm = float(torch.nn.utils.clip_grad_norm_(params, MAX_NORM))
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        log.append({"step": k, "loss": total, "lr": lr, "grad_norm": norm, "counted_tokens": counted})
        print(f"step {k:2d} loss {total:.6f} lr {lr:.2e} grad_norm {norm:.4f}")
    model.save_pretrained(os.path.join(tdir, "final_adapter"))
    save_file(grads, os.path.join(tdir, "grads.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(tdir, "train.json"), "w") as f:
        json.dump({"hyperparameters": {"lr": LR, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": WD,
                                       "schedule": "linear", "warmup_steps": WARMUP, "max_steps": STEPS,
                                       "max_grad_norm": MAX_NORM, "batch_size": BATCH, "grad_accum": ACCUM,
                                       "lora_r": 8, "lora_alpha": 16, "target_modules": SEVEN},
                   "steps": log, "batches": data}, f)


def check(adapter_dir, fixtures):
    name = os.path.basename(os.path.normpath(adapter_dir))
    with open(os.path.join(fixtures, "expected.json")) as f:
        expected = json.load(f)
    model = PeftModel.from_pretrained(load_base(os.path.join(fixtures, "base")), adapter_dir).eval()
    worst = 0.0
    for p, want in zip(expected["prompts"], expected["adapters"][name]["logits"]):
        worst = max(worst, float((logits_of(model, p) - torch.tensor(want)).abs().max()))
    print(f"PEFT {peft.__version__} loads {adapter_dir}: max |logit - expected| = {worst:.2e}")
    return 0 if worst < 1e-4 else 1


def medtune_written(out, adapter_dir):
    """PEFT loads an adapter medtune wrote (for BASE's shapes, made before the base weights
    existed) onto base/; its logits go to expected.json under "medtune_written" and the adapter
    is copied to OUT/medtune-written/, so medtune's test compares its own logits with PEFT's."""
    shutil.copytree(adapter_dir, os.path.join(out, "medtune-written"), dirs_exist_ok=True)
    base_dir = os.path.join(out, "base")
    model = PeftModel.from_pretrained(load_base(base_dir), adapter_dir).eval()
    base = load_base(base_dir)
    lg = [logits_of(model, p) for p in PROMPTS]
    delta = max(float((a - logits_of(base, p)).abs().max()) for a, p in zip(lg, PROMPTS))
    print(f"medtune-written: PEFT {peft.__version__} loads it; it moves the logits by up to {delta:.3f}")
    with open(os.path.join(out, "expected.json")) as f:
        expected = json.load(f)
    expected["medtune_written"] = {"logits": [x.tolist() for x in lg],
                                   "tensors": sorted(lora_tensors(model))}
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f)


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--check":
        sys.exit(check(sys.argv[2], sys.argv[3]))
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    torch.set_num_threads(1)  # one thread: summation order, hence every float, is reproducible
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}")
    interop(out)
    if len(sys.argv) == 3:
        medtune_written(out, sys.argv[2])
    train(out)
    print("done:", out)


if __name__ == "__main__":
    main()
