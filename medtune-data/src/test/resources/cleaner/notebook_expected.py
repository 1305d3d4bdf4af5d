#!/usr/bin/env python3
"""Expected outputs of the original notebook's explanation cleanup, computed by CPython's re.

Run from this folder to regenerate notebook-expected.jsonl (medtune's NotebookCleanerParityTest
compares its Java translation against it):

    python3 notebook_expected.py

Inputs: every explanation of ../medmcqa/*.csv, and strings chosen to expose the differences
between Python's re and java.util.regex (Unicode whitespace, separators U+001C..U+001F, line
terminators other than \\n, numbers and combining marks as word characters).
"""
import csv
import json
import sys

# the notebook's patterns, in its order, each applied as re.sub(p, "", s)
PATTERNS = [r'^\s', r'Ans.* [^\w\s][A-Za-z][^\w\s]', r'ANS.* [^\w\s][A-Za-z][^\w\s]',
            r'^[a-dA-D]*', r'^\S*\s', r'^i\.e\.', r'^[^\w\s]', r'^\s']


def notebook(s):
    import re
    for p in PATTERNS:
        s = re.sub(p, "", s)
    return s


def main():
    inputs = []
    for name in ["train-sample.csv", "validation-sample.csv", "validation-pharmacology.csv"]:
        with open("../medmcqa/" + name, encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                if row["exp"]:
                    inputs.append(row["exp"])
    specials = ["\u00a0", "\x1c", "\x1f", "\u2028", "\u0085", "\r", "\t", "\u3000", "\u200b",
                "\u00b2", "\u0301", "_", "\u203f", "\u00bd", "\u0663", "\u2163", "\u00e9", "-"]
    for c in specials:
        inputs.append(c + "Chronic disease" + c + "x")
        inputs.append("Ans is" + c + "(c)" + c + "tail")
        inputs.append("Ans x " + c + "A" + c + " rest")
        inputs.append("ANS. A" + c + "\nAns " + "(b) line two")
        inputs.append("Dx" + c + "y z")
        inputs.append(c + "i.e. x")
    inputs += ["", " ", "Chronic", "The end", "abcd", "i.e. A", "Ans. (a) x Ans. (b) y",
               "Ans \u00e9 (a) z", "AnsA x Ans y 'b' end", "text\r\nAns x 'c'\r\n more"]
    w = sys.stdout if len(sys.argv) > 1 and sys.argv[1] == "-" else open(
        "notebook-expected.jsonl", "w", encoding="utf-8")
    for s in inputs:
        w.write(json.dumps({"input": s, "output": notebook(s)}, ensure_ascii=True) + "\n")


if __name__ == "__main__":
    main()
