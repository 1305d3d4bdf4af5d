#!/usr/bin/env python3
"""Issue 5's baseline: LoRA training with Hugging Face transformers + PEFT on the GPU.

Random weights of the llama-3.1-8b shape (built from the config on the GPU, nothing downloaded),
bf16, SDPA attention, LoRA r=16 alpha=16 dropout 0 on the seven projections, torch AdamW
(lr 2e-4, weight decay 0.01), sequences of 2048 random tokens, every token counted (labels =
input_ids). Two settings, as the issue states them: gradient checkpointing with batch 4, and
without it with batch 2. A few warm-up steps, then timed steps (torch.cuda.synchronize around
each); prints tokens/s (median step) and peak memory (torch.cuda.max_memory_allocated, which
leaves out the CUDA context), and appends a markdown line per setting to the results file.

Usage: python3 bench/peft_baseline.py RESULTS.md COMMIT [--layers N] [--warmup 2] [--steps 4]
Needs torch, transformers, peft (the GPU machine has torch 2.11, transformers 5.17, peft 0.21).
"""
import argparse
import datetime
import gc
import statistics
import time


def run(args, checkpointing, batch):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        hidden_size=4096, intermediate_size=14336, num_hidden_layers=args.layers,
        num_attention_heads=32, num_key_value_heads=8, head_dim=128, vocab_size=128256,
        max_position_embeddings=131072, rms_norm_eps=1e-5, rope_theta=500000.0,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
        tie_word_embeddings=False, bos_token_id=128000, eos_token_id=128001,
        attn_implementation="sdpa", torch_dtype=torch.bfloat16)
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)  # built in bf16 on the GPU: no float32 copy of 8B
    with torch.device("cuda"):
        model = LlamaForCausalLM(config)
    torch.set_default_dtype(torch.float32)
    torch.cuda.reset_peak_memory_stats()
    model.config.use_cache = False
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    lora = LoraConfig(r=16, lora_alpha=16, lora_dropout=0.0, bias="none", task_type="CAUSAL_LM",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    model = get_peft_model(model, lora)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=2e-4, weight_decay=0.01)
    gen = torch.Generator(device="cuda").manual_seed(1)
    ids = torch.randint(0, config.vocab_size - 1000, (batch, args.seq), device="cuda", generator=gen)
    times = []
    for step in range(args.warmup + args.steps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss = out.loss.item()
        torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        print(f"  step {step + 1}: {dt:.3f} s, {batch * args.seq / dt:.0f} tokens/s, loss {loss:.4f}", flush=True)
        if step >= args.warmup:
            times.append(dt)
    tps = batch * args.seq / statistics.median(times)
    peak = torch.cuda.max_memory_allocated() / 2**30
    name = torch.cuda.get_device_name(0)
    del model, opt, params, out, ids
    gc.collect()
    torch.cuda.empty_cache()
    return name, tps, peak


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("commit")
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=4)
    args = ap.parse_args()
    import peft
    import torch
    import transformers
    versions = f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}"
    print(versions, flush=True)
    lines = []
    for checkpointing, batch in ((True, 4), (False, 2)):
        print(f"PEFT, gradient checkpointing {'on' if checkpointing else 'off'}, batch {batch} x {args.seq}:", flush=True)
        try:
            name, tps, peak = run(args, checkpointing, batch)
        except torch.OutOfMemoryError as e:
            print(f"  out of memory: {str(e).splitlines()[0]}", flush=True)
            gc.collect()
            torch.cuda.empty_cache()
            lines.append(f"| {datetime.date.today()} | {torch.cuda.get_device_name(0)} | {args.commit} | PEFT baseline ({versions}), "
                         f"llama-3.1-8b shape{'' if args.layers == 32 else f' ({args.layers} of 32 layers)'} | {batch} x {args.seq} | "
                         f"{'on' if checkpointing else 'off'} | out of memory | - | - |")
            continue
        mfu = tps * 33.5e9 * args.layers / 32 / 989e12
        print(f"  {tps:.0f} tokens/s, peak {peak:.1f} GiB, MFU {100 * mfu:.1f}%", flush=True)
        lines.append(f"| {datetime.date.today()} | {name} | {args.commit} | PEFT baseline ({versions}), SDPA, "
                     f"llama-3.1-8b shape{'' if args.layers == 32 else f' ({args.layers} of 32 layers)'}, bf16, LoRA r=16 a=16 x7, AdamW | "
                     f"{batch} x {args.seq} | {'on' if checkpointing else 'off'} | {tps:.0f} | {peak:.1f} GiB (max_memory_allocated) | {100 * mfu:.1f}% |")
    with open(args.results, "a") as f:
        for line in lines:
            f.write(line + "\n")
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
