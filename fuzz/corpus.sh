#!/usr/bin/env bash
# Grows and minimizes the committed corpus of one fuzz target:
#   fuzz/corpus.sh onnx_import|weights_load [SECONDS]
# fuzzes for SECONDS (default 240) from fuzz/seeds/ and the committed corpus, then keeps in
# testdata/fuzz/TARGET/ the inputs `cargo fuzz cmin` needs for the same coverage, plus the past
# crashers (libFuzzer artifacts named crash-…, timeout-…, slow-unit-…), which are never minimized
# away. A crash stops it with the input in fuzz/artifacts/TARGET/: fix the bug, then add the input
# to the corpus under its artifact name. Needs nightly Rust and cargo-fuzz (`cargo install cargo-fuzz`).
set -euo pipefail
target=${1:?usage: fuzz/corpus.sh onnx_import|weights_load [SECONDS]}
seconds=${2:-240}
cd "$(dirname "$0")"
committed=../testdata/fuzz/$target
case $target in
  onnx_import) seeds=(seeds/*.onnx) ;;
  weights_load) seeds=(seeds/*.weights) ;;
  *) echo "unknown target $target" >&2; exit 2 ;;
esac
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "artifacts/$target" "$committed"
cp "${seeds[@]}" "$work/corpus/"
find "$committed" -maxdepth 1 -type f ! -name 'crash-*' ! -name 'timeout-*' ! -name 'oom-*' \
  ! -name 'slow-unit-*' ! -name 'leak-*' -exec cp {} "$work/corpus/" \;
cargo +nightly fuzz run "$target" "$work/corpus" -- -max_total_time="$seconds" -timeout=20 \
  -rss_limit_mb=2048 -max_len=8192 -artifact_prefix="artifacts/$target/"
cargo +nightly fuzz cmin "$target" "$work/corpus" -- -timeout=20 -rss_limit_mb=2048
find "$committed" -maxdepth 1 -type f ! -name 'crash-*' ! -name 'timeout-*' ! -name 'oom-*' \
  ! -name 'slow-unit-*' ! -name 'leak-*' -delete
cp "$work/corpus/"* "$committed/"
echo "$committed: $(find "$committed" -type f | wc -l) files, $(du -sh "$committed" | cut -f1)"
