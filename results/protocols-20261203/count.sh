#!/usr/bin/env bash
# Instructions per command of the protocol core (benches/core.rs counting mode) for
# multipaxos and raft, write-only and 95 % GETs through the log, batch_max 1 and 64.
# Usage: count.sh BENCH_BINARY OUT_DIR
# Per command = (Ir at N=22,000 - Ir at N=2,000) / 20,000 (setup and election cancel out).
set -euo pipefail
bin=$1
out=$2
mkdir -p "$out"
for proto in multipaxos raft; do
  for reads in 0 95; do
    for batch in 1 64; do
      for n in 2000 22000; do
        f="$out/cg-$proto-r$reads-b$batch-n$n.out"
        CORE_BENCH_PROTOCOL=$proto CORE_BENCH_READS=$reads CORE_BENCH_COMMANDS=$n \
          CORE_BENCH_BATCH=$batch valgrind --tool=cachegrind --cache-sim=no \
          --cachegrind-out-file="$f" "$bin" >/dev/null 2>&1
      done
      small=$(grep '^summary:' "$out/cg-$proto-r$reads-b$batch-n2000.out" | awk '{print $2}')
      big=$(grep '^summary:' "$out/cg-$proto-r$reads-b$batch-n22000.out" | awk '{print $2}')
      echo "$proto reads=$reads batch=$batch: $(( (big - small) / 20000 )) instructions/command"
    done
  done
done
