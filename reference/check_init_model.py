#!/usr/bin/env python3
"""Checks that Hugging Face transformers loads what `medtune init-model` writes, and records what it
computes, as fixtures for medtune's tests.

Run (where torch and transformers are installed, e.g. the GPU machine):
    python3 reference/check_init_model.py TINY_DIR CONFIG_1B_DIR TEXTS_JSON OUT_DIR
TINY_DIR       = output of `medtune init-model --preset tiny --output TINY_DIR` (default seed 0)
CONFIG_1B_DIR  = a folder with the config.json medtune writes for the llama-3.2-1b preset
TEXTS_JSON     = medtune-model/src/test/resources/tokenizer/texts.json
Writes to OUT_DIR:
  tiny_check.json      transformers' view of the tiny model: config fields, parameter count,
                       token ids of every text with its tokenizer, logits of a prompt (float32),
                       its greedy continuation
  config_1b_check.json AutoConfig fields of the 1B config and the parameter count of the model it
                       builds (on the meta device, no weights)
  config_1b_saved.json the same config saved back by transformers (its own config.json format)
"""
import json
import os
import sys

import torch
import transformers
from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM

PROMPT = ("Give an answer for the following medical question.\n\n### Question:\n"
          "Which nerve is compressed in carpal tunnel syndrome?\n\n### Answer:\n")


def check_tiny(tiny_dir, texts, out_dir):
    model = LlamaForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32)
    model.eval()
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    cfg = model.config
    cases = []
    for text in texts:
        for add in (True, False):
            ids = tok(text, add_special_tokens=add)["input_ids"]
            cases.append({"text": text, "add_special_tokens": add, "ids": ids,
                          "decoded": tok.decode(ids, skip_special_tokens=False,
                                                clean_up_tokenization_spaces=False)})
    ids = tok(PROMPT, add_special_tokens=True)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
        # greedy by hand (no generation_config defaults, no stop on EOS): 12 argmax steps
        seq = list(ids)
        for _ in range(12):
            seq.append(int(model(torch.tensor([seq])).logits[0, -1].argmax()))
        greedy = seq[len(ids):]
    out = {
        "made_by": "reference/check_init_model.py",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "model": "medtune init-model --preset tiny (seed 0)",
        "config": {k: getattr(cfg, k, None) for k in (
            "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "head_dim", "vocab_size", "max_position_embeddings",
            "rms_norm_eps", "tie_word_embeddings", "bos_token_id", "eos_token_id")},
        "rope": getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None),
        "parameters": sum(p.numel() for p in model.parameters()),
        "tokenizer_len": len(tok),
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "prompt": PROMPT,
        "prompt_ids": ids,
        "logits_shape": list(logits.shape),
        "logits": [[round(float(v), 7) for v in row] for row in logits],
        "greedy_ids": greedy,
        "token_cases": cases,
    }
    with open(os.path.join(out_dir, "tiny_check.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False)
    print("tiny: loaded, parameters", out["parameters"], "logits", out["logits_shape"],
          "greedy", greedy)


def check_1b(config_dir, out_dir):
    cfg = AutoConfig.from_pretrained(config_dir)
    with torch.device("meta"):
        model = LlamaForCausalLM(cfg)
    params = sum(p.numel() for p in model.parameters())
    out = {
        "made_by": "reference/check_init_model.py",
        "transformers": transformers.__version__,
        "config": {k: getattr(cfg, k, None) for k in (
            "model_type", "hidden_size", "intermediate_size", "num_hidden_layers",
            "num_attention_heads", "num_key_value_heads", "head_dim", "vocab_size",
            "max_position_embeddings", "rms_norm_eps", "tie_word_embeddings", "bos_token_id",
            "eos_token_id")},
        "rope": getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None),
        "parameters": params,
        "tensor_names": sorted(model.state_dict().keys())[:12],
    }
    with open(os.path.join(out_dir, "config_1b_check.json"), "w") as f:
        json.dump(out, f, indent=1, default=str)
    save = os.path.join(out_dir, "saved_1b")
    cfg.save_pretrained(save)
    os.replace(os.path.join(save, "config.json"), os.path.join(out_dir, "config_1b_saved.json"))
    print("1b config: parameters", params, "rope", out["rope"])


if __name__ == "__main__":
    tiny_dir, config_dir, texts_json, out_dir = sys.argv[1:5]
    texts = json.load(open(texts_json, encoding="utf-8"))["texts"]
    failed = False
    for name, fn in (("tiny", lambda: check_tiny(tiny_dir, texts, out_dir)),
                     ("1b", lambda: check_1b(config_dir, out_dir))):
        try:
            fn()
        except Exception as e:  # report each check, keep going
            failed = True
            print(f"{name}: FAILED: {type(e).__name__}: {e}")
    sys.exit(1 if failed else 0)
