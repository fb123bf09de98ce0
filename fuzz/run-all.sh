#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 240), one process (one core) at a time.
# See docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-240}"
for target in envelope_parse string_to_sign cert_url_policy ses_record ses_record_json; do
    mkdir -p "corpus/$target" "artifacts/$target"
    seeds=()
    [ -d "regressions/$target" ] && seeds+=("regressions/$target")
    dict=()
    [ -f "dicts/$target.dict" ] && dict+=("-dict=dicts/$target.dict")
    echo "=== $target (${secs}s)"
    cargo +nightly fuzz run --fuzz-dir . -O "$target" "corpus/$target" "${seeds[@]}" -- \
        -max_total_time="$secs" -timeout=10 -max_len=8192 -rss_limit_mb=2048 \
        -print_final_stats=1 "${dict[@]}" || echo "!!! $target failed"
done
