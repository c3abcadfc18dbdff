#!/usr/bin/env bash
# results/follower-blocking-write-20261207/ab.sh MODE...
# Needs a corepax built with blocking-followers.patch (on 1395a2d: `git apply` it in a
# worktree, `cargo build --release`), given as BIN. Without COREPAX_EXP_BLOCKING the
# patched binary runs main's path; COREPAX_EXP_LONE=1 (exported) limits the blocking write
# to a sync started on an idle log (io::Submit::AtOnce).
# Side by side on one fresh local cluster per run (3 replicas, 1 shard, fsync on, the
# defaults of `corepax cluster`): COREPAX_EXP_BLOCKING=MODE for each MODE given ("" = main's
# path: io_uring O_DSYNC writes; "followers" = a follower's WAL write is a blocking
# pwrite on its executor thread, as the floor program's). redis-benchmark through the
# leader: 8,000 one-client SETs, then 300,000 SETs from 50 clients at -P 1; CPU per SET
# from /proc (leader, the two followers together).
BIN=${BIN:?a corepax built with blocking-followers.patch}
ticks() { local t=0 p; for p in "$@"; do set -- $(cut -d' ' -f14,15 /proc/$p/stat); t=$((t+$1+$2)); done; echo $t; }
per_op() { python3 -c "print(f'{($2-$1)*10000/$3:.2f}')"; }
for mode in "$@"; do
  d=$(mktemp -d /tmp/abx.XXXX); base=$((20000 + RANDOM % 15000))
  COREPAX_EXP_BLOCKING=$mode setsid $BIN cluster --replicas 3 --base-port $base --data $d/data > $d/log 2>&1 &
  cp=$!
  l=""; for i in $(seq 1 60); do sleep 0.5; for p in $base $((base+1)) $((base+2)); do redis-cli -p $p info 2>/dev/null | grep -q "^shards_led:1" && l=$p; done; [ -n "$l" ] && break; done
  redis-cli -p $l set a b >/dev/null
  li=$((l-base)); lp=$(pgrep -f "node --config $d/data/node-$li.toml"); fps=$(pgrep -f "node --config $d/data/node-" | grep -v "^$lp$" | tr '\n' ' ')
  a0=$(ticks $lp); b0=$(ticks $fps)
  r1=$(redis-benchmark -p $l -c 1 -P 1 -t set -n 8000 -r 100000 --csv | tail -1)
  a1=$(ticks $lp); b1=$(ticks $fps)
  r2=$(redis-benchmark -p $l -c 50 -P 1 -t set -n 300000 -r 100000 --csv | tail -1)
  a2=$(ticks $lp); b2=$(ticks $fps)
  printf '%-10s c1 SET/s,avg,p50,p99 %s  CPU µs/SET leader %s followers %s | c50 -P1 SET/s %s  CPU µs/SET leader %s followers %s\n' \
    "${mode:-main}" "$(echo "$r1" | cut -d, -f2,3,5,7 | tr -d '"')" "$(per_op $a0 $a1 8000)" "$(per_op $b0 $b1 8000)" \
    "$(echo "$r2" | cut -d, -f2 | tr -d '"')" "$(per_op $a1 $a2 300000)" "$(per_op $b1 $b2 300000)"
  kill -- -$cp 2>/dev/null; wait $cp 2>/dev/null; rm -rf $d
done
