#!/usr/bin/env python3
"""Writes the fixture medtune's `eval` log-likelihood and loss scoring is tested against.

A small random Llama (transformers' LlamaForCausalLM, saved with save_pretrained, float32) whose
vocabulary is that of the tiny byte-level tokenizer `medtune init-model --preset tiny` writes, plus
expected.json with, for real MedMCQA dev questions, the token ids and the per-option summed
log-probabilities that transformers computes, and, for prepared validation examples, the summed
completion loss. The definitions are medtune's (medtune-cli README, `eval`):

  prompt tokens        = tokenizer(PROMPT(question), add_special_tokens=True)   (BOS first)
  continuation tokens  = tokenizer(option + ".", add_special_tokens=False)
  option log-likelihood = sum_i log softmax(logits[len(prompt) - 1 + i])[continuation[i]]
                         over the sequence prompt + continuation, one sequence at a time
  loss sequence        = [BOS] + tokenizer(prompt + completion, add_special_tokens=False) + [EOS]
                         (EOS = tokenizer_config's eos_token), as medtune's training tokenizes
  counted tokens       = from where tokenizer(prompt)'s ids stop matching the text's, through EOS
                         (TRL's completion-only boundary, medtune's LossOn.COMPLETION)
  example loss sum     = sum over counted tokens of -log p(token | everything before it)

where PROMPT is the recipe's template up to the answer slot:
  "Give an answer for the following medical question.\\n\\n### Question:\\n{question}\\n\\n### Answer:\\n"
and the option text is the choice with its own letter prefix ("A. ") removed.

Run it again (needs torch, transformers, tokenizers, safetensors; the exact steps for the GPU
machine are in reference/README.md):
    ./medtune init-model --preset tiny --output /tmp/tiny
    python3 reference/make_eval_fixtures.py /tmp/tiny \
        medtune-cli/src/test/resources/eval/dev-choices-20.jsonl \
        medtune-cli/src/test/resources/eval/val-5.jsonl /tmp/eval-fixture
    mkdir -p medtune-cli/src/test/resources/eval/fixture
    cp -r /tmp/eval-fixture/* medtune-cli/src/test/resources/eval/fixture/
"""
import json
import os
import shutil
import sys
import tempfile
import unicodedata

import torch
import transformers
from tokenizers import Tokenizer
from transformers import AutoConfig, LlamaForCausalLM

PROMPT = ("Give an answer for the following medical question.\n\n"
          "### Question:\n{question}\n\n### Answer:\n")
SEED = 4242


def java_whitespace(ch):
    """Java's Character.isWhitespace: Unicode space separators except the no-break spaces, and
    the ASCII controls \\t \\n \\x0b \\f \\r \\x1c-\\x1f (Python's isspace also counts U+00A0)."""
    if ch in "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f":
        return True
    return unicodedata.category(ch) in ("Zs", "Zl", "Zp") and ch not in "\u00a0\u2007\u202f"


def java_strip(s):
    """Java's String.strip()."""
    a, b = 0, len(s)
    while a < b and java_whitespace(s[a]):
        a += 1
    while b > a and java_whitespace(s[b - 1]):
        b -= 1
    return s[a:b]


def strip_letter(choice, k):
    """medtune's McqReader: 'A. text' -> 'text' only when the letter is the option's own."""
    prefix = "ABCDEFGHIJ"[k] + "."
    if choice.startswith(prefix) and (len(choice) == len(prefix)
                                      or java_whitespace(choice[len(prefix)])):
        choice = choice[len(prefix):]
    return java_strip(choice)


def main():
    tiny_dir, questions_file, val_file, out = sys.argv[1:5]
    torch.manual_seed(SEED)
    torch.set_num_threads(4)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}")

    tok = Tokenizer.from_file(os.path.join(tiny_dir, "tokenizer.json"))
    with open(os.path.join(tiny_dir, "config.json")) as f:
        tiny_cfg = json.load(f)
    with open(os.path.join(tiny_dir, "tokenizer_config.json")) as f:
        tok_cfg = json.load(f)
    eos_text = tok_cfg["eos_token"]
    eos_text = eos_text["content"] if isinstance(eos_text, dict) else eos_text
    eos_id = tok.token_to_id(eos_text)
    bos_text = tok_cfg["bos_token"]
    bos_id = tok.token_to_id(bos_text["content"] if isinstance(bos_text, dict) else bos_text)
    vocab = tiny_cfg["vocab_size"]
    print(f"tiny tokenizer: {tok.get_vocab_size(with_added_tokens=True)} ids, config vocab {vocab},"
          f" bos {tiny_cfg['bos_token_id']}, eos_token {eos_text!r} = {eos_id}")

    # grouped-query attention and Llama 3.1 rope scaling, untied head, like the real models; a
    # classic config.json written by hand (as make_llama_fixtures.py does), weights by save_pretrained
    fields = dict(
        architectures=["LlamaForCausalLM"], model_type="llama", hidden_act="silu",
        attention_bias=False, mlp_bias=False, attention_dropout=0.0, initializer_range=0.1,
        pretraining_tp=1, use_cache=True, torch_dtype="float32",
        hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, vocab_size=vocab, max_position_embeddings=512,
        rms_norm_eps=1e-5, rope_theta=500000.0,
        rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                          high_freq_factor=4.0, original_max_position_embeddings=64),
        tie_word_embeddings=False, bos_token_id=tiny_cfg["bos_token_id"],
        eos_token_id=tiny_cfg["eos_token_id"])
    model_dir = os.path.join(out, "model")
    os.makedirs(model_dir, exist_ok=True)
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(fields, f, indent=2)
        f.write("\n")
    config = AutoConfig.from_pretrained(model_dir)
    model = LlamaForCausalLM(config).float().eval()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)  # norm weights of 1 would not test the multiplication
    tmp = tempfile.mkdtemp()
    model.save_pretrained(tmp)
    for name in ("model.safetensors", "generation_config.json"):
        if os.path.exists(os.path.join(tmp, name)):
            shutil.copy(os.path.join(tmp, name), model_dir)
    shutil.rmtree(tmp)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if os.path.exists(os.path.join(tiny_dir, name)):
            shutil.copy(os.path.join(tiny_dir, name), model_dir)

    # expectations from the files as written, loaded back
    ref = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32,
                                           attn_implementation="eager").eval()

    def token_logprobs(context, continuation):
        ids = torch.tensor([context + continuation])
        with torch.no_grad():
            logits = ref(input_ids=ids).logits[0].double()
        lp = torch.log_softmax(logits, dim=-1)
        start = len(context) - 1
        return [float(lp[start + i, t]) for i, t in enumerate(continuation)]

    questions = []
    with open(questions_file, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            q = json.loads(line)
            options = [strip_letter(c, k) for k, c in enumerate(q["choices"])]
            prompt_ids = tok.encode(PROMPT.format(question=q["question"]),
                                    add_special_tokens=True).ids
            opts = []
            for text in options:
                cont = tok.encode(text + ".", add_special_tokens=False).ids
                lps = token_logprobs(prompt_ids, cont)
                opts.append(dict(text=text, ids=cont, token_logprobs=lps, logprob=sum(lps)))
            questions.append(dict(line=line_no, answer=q["answer"], prompt_ids=prompt_ids,
                                  options=opts))
            print(f"question {line_no}: prompt {len(prompt_ids)} tokens, option sums "
                  + ", ".join(f"{o['logprob']:.4f}" for o in opts))

    examples = []
    with open(val_file, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            ex = json.loads(line)
            body = tok.encode(ex["prompt"] + ex["completion"], add_special_tokens=False).ids
            prompt_only = tok.encode(ex["prompt"], add_special_tokens=False).ids
            k = 0
            while k < len(prompt_only) and k < len(body) and prompt_only[k] == body[k]:
                k += 1
            seq = [bos_id] + body + [eos_id]
            prompt_ids, target = seq[:1 + k], seq[1 + k:]
            lps = token_logprobs(prompt_ids, target)
            examples.append(dict(line=line_no, prompt_ids=prompt_ids, loss_ids=target,
                                 nll_sum=-sum(lps), tokens=len(target)))
            print(f"example {line_no}: {len(target)} loss tokens, mean loss {-sum(lps) / len(target):.4f}")
    total_nll = sum(e["nll_sum"] for e in examples)
    total_tokens = sum(e["tokens"] for e in examples)

    expected = dict(
        source=f"reference/make_eval_fixtures.py, torch {torch.__version__}, "
               f"transformers {transformers.__version__}, float32 forward, float64 log-softmax, "
               f"eager attention, CPU",
        questions_file=os.path.basename(questions_file), val_file=os.path.basename(val_file),
        eos_id=eos_id, questions=questions, loss_examples=examples,
        mean_loss=total_nll / total_tokens, counted_tokens=total_tokens)
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f)
    print(f"mean loss {total_nll / total_tokens:.6f} over {total_tokens} tokens; "
          f"model.safetensors {os.path.getsize(os.path.join(model_dir, 'model.safetensors'))} bytes")


if __name__ == "__main__":
    main()
