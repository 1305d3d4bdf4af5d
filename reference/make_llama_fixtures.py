#!/usr/bin/env python3
"""Writes the Llama reference fixtures medtune's CPU backend is tested against.

Each fixture is a small random Llama model in Hugging Face layout (a hand-written classic
Llama 3.x config.json, model.safetensors written by transformers' save_pretrained) plus
expected.json: fixed prompt token ids, the logits transformers computes for every prompt
position (float32, eager attention, CPU), the greedy continuation of
generate(do_sample=False) and the greedy continuation with a repetition penalty.

Run it again (needs torch, transformers >= 4.45, safetensors, numpy):
    python3 reference/make_llama_fixtures.py OUT_DIR
then copy OUT_DIR/* to medtune-cpu/src/test/resources/fixtures/.
"""
import json
import math
import os
import shutil
import sys
import tempfile

import torch
import transformers
from transformers import AutoConfig, LlamaForCausalLM

MAX_NEW_TOKENS = 12
REPETITION_PENALTY = 1.3
PROMPT_LENGTHS = [1, 7, 23]

# name -> (config fields, storage dtype). Sizes are deliberately not multiples of the vector length.
MODELS = {
    # grouped-query attention, Llama 3.1 rope scaling, untied lm_head, float32 weights
    "gqa-llama3-untied-f32": (dict(
        hidden_size=64, intermediate_size=176, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, vocab_size=263, max_position_embeddings=256,
        rms_norm_eps=1e-5, rope_theta=500000.0,
        rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                          high_freq_factor=4.0, original_max_position_embeddings=32),
        tie_word_embeddings=False, bos_token_id=1, eos_token_id=[261, 262]), "float32"),
    # multi-head attention, no rope scaling, tied embeddings, float32 weights
    "mha-tied-f32": (dict(
        hidden_size=48, intermediate_size=100, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=4, head_dim=12, vocab_size=250, max_position_embeddings=128,
        rms_norm_eps=1e-6, rope_theta=10000.0, rope_scaling=None,
        tie_word_embeddings=True, bos_token_id=0, eos_token_id=249), "float32"),
    # the Llama 3.2 1B layout in small: GQA 3:1, llama3 scaling factor 32, tied, bfloat16 weights
    "gqa-llama3-tied-bf16": (dict(
        hidden_size=96, intermediate_size=200, num_hidden_layers=3, num_attention_heads=6,
        num_key_value_heads=2, head_dim=16, vocab_size=300, max_position_embeddings=512,
        rms_norm_eps=1e-5, rope_theta=500000.0,
        rope_scaling=dict(rope_type="llama3", factor=32.0, low_freq_factor=1.0,
                          high_freq_factor=4.0, original_max_position_embeddings=64),
        tie_word_embeddings=True, bos_token_id=2, eos_token_id=[297, 298, 299]), "bfloat16"),
    # head_dim * heads != hidden_size, a single KV head, float16 weights, untied
    "mqa-headdim-untied-f16": (dict(
        hidden_size=40, intermediate_size=72, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, head_dim=24, vocab_size=200, max_position_embeddings=64,
        rms_norm_eps=1e-5, rope_theta=10000.0, rope_scaling=None,
        tie_word_embeddings=False, bos_token_id=1, eos_token_id=[2]), "float16"),
}


def llama3_inv_freq(cfg):
    """Meta's apply_scaling (llama-models), computed independently of transformers."""
    d = cfg["head_dim"]
    inv = [1.0 / (cfg["rope_theta"] ** (i / d)) for i in range(0, d, 2)]
    rs = cfg["rope_scaling"]
    if rs is None:
        return inv
    low_wl = rs["original_max_position_embeddings"] / rs["low_freq_factor"]
    high_wl = rs["original_max_position_embeddings"] / rs["high_freq_factor"]
    out = []
    for f in inv:
        wl = 2 * math.pi / f
        if wl < high_wl:
            out.append(f)
        elif wl > low_wl:
            out.append(f / rs["factor"])
        else:
            s = (rs["original_max_position_embeddings"] / wl - rs["low_freq_factor"]) / (
                rs["high_freq_factor"] - rs["low_freq_factor"])
            out.append((1 - s) * f / rs["factor"] + s * f)
    return out


def write_config(path, fields, dtype):
    cfg = dict(architectures=["LlamaForCausalLM"], model_type="llama", hidden_act="silu",
               attention_bias=False, mlp_bias=False, attention_dropout=0.0,
               initializer_range=0.2, pretraining_tp=1, use_cache=True, torch_dtype=dtype)
    cfg.update(fields)
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")


def make(name, fields, dtype, out_root, seed):
    out = os.path.join(out_root, name)
    os.makedirs(out, exist_ok=True)
    write_config(os.path.join(out, "config.json"), fields, dtype)
    torch.manual_seed(seed)
    config = AutoConfig.from_pretrained(out)
    model = LlamaForCausalLM(config).float().eval()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)  # norm weights of 1 would not test the multiplication
    model.to(getattr(torch, dtype))
    tmp = tempfile.mkdtemp()
    model.save_pretrained(tmp)
    shutil.copy(os.path.join(tmp, "model.safetensors"), os.path.join(out, "model.safetensors"))
    if os.path.exists(os.path.join(tmp, "generation_config.json")):
        shutil.copy(os.path.join(tmp, "generation_config.json"), out)
    shutil.rmtree(tmp)

    # everything expected comes from the files as committed, loaded back in float32
    ref = LlamaForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").eval()
    try:
        inv = ref.model.rotary_emb.inv_freq.double().tolist()
        mine = llama3_inv_freq(fields)
        inv_err = max(abs(a - b) / abs(b) for a, b in zip(inv, mine))
        print(f"{name}: rope inv_freq relative difference to Meta's formula {inv_err:.2e}")
        if inv_err > 1e-5:
            print(f"{name}: WARNING transformers did not read the rope scaling as expected")
    except Exception as e:  # a check only; the fixture stays usable
        print(f"{name}: could not check inv_freq: {e!r}")

    g = torch.Generator().manual_seed(seed + 1)
    vocab = fields["vocab_size"]
    eos = fields["eos_token_id"] if isinstance(fields["eos_token_id"], list) else [fields["eos_token_id"]]
    prompts, logits, greedy, greedy_rep, margins = [], [], [], [], []
    for n in PROMPT_LENGTHS:
        ids = torch.randint(0, vocab - 4, (1, n), generator=g)
        with torch.no_grad():
            lg = ref(input_ids=ids).logits[0].float()
        prompts.append(ids[0].tolist())
        logits.append(lg.tolist())
        attn = torch.ones_like(ids)
        with torch.no_grad():
            gen = ref.generate(input_ids=ids, attention_mask=attn, do_sample=False,
                               max_new_tokens=MAX_NEW_TOKENS, eos_token_id=eos,
                               pad_token_id=eos[0], output_scores=True,
                               return_dict_in_generate=True)
            gen_rep = ref.generate(input_ids=ids, attention_mask=attn, do_sample=False,
                                   max_new_tokens=MAX_NEW_TOKENS, eos_token_id=eos,
                                   pad_token_id=eos[0], repetition_penalty=REPETITION_PENALTY)
        greedy.append(gen.sequences[0, n:].tolist())
        seq_rep = gen_rep.sequences if hasattr(gen_rep, "sequences") else gen_rep
        greedy_rep.append(seq_rep[0, n:].tolist())
        for s in gen.scores or []:
            top2 = torch.topk(s[0].float(), 2).values
            margins.append(float(top2[0] - top2[1]))
    expected = dict(
        source=f"reference/make_llama_fixtures.py, torch {torch.__version__}, "
               f"transformers {transformers.__version__}, float32, eager attention, CPU",
        storage_dtype=dtype, prompts=prompts, logits=logits,
        max_new_tokens=MAX_NEW_TOKENS, greedy=greedy,
        repetition_penalty=REPETITION_PENALTY, greedy_repetition_penalty=greedy_rep,
        greedy_min_top2_margin=min(margins) if margins else None)
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f)
    from safetensors import safe_open
    with safe_open(os.path.join(out, "model.safetensors"), "pt") as f:
        names = sorted(f.keys())
    print(f"{name}: {len(names)} tensors ({names[0]} ... {names[-1]}), "
          f"lm_head stored: {'lm_head.weight' in names}, greedy {greedy}, rep {greedy_rep}, "
          f"min top-2 margin {min(margins) if margins else None}, "
          f"size {os.path.getsize(os.path.join(out, 'model.safetensors'))} bytes")


def main():
    out_root = sys.argv[1] if len(sys.argv) > 1 else "fixtures"
    torch.set_num_threads(4)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    for i, (name, (fields, dtype)) in enumerate(MODELS.items()):
        make(name, fields, dtype, out_root, seed=1000 + 17 * i)


if __name__ == "__main__":
    main()
