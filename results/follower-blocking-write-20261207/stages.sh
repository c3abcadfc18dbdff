#!/usr/bin/env bash
# One replica's path through one client's SET, stage by stage: uprobes (tracefs) on the
# functions the path runs through, with the replica's receives, sends and io_uring_enters,
# for 0.4 s of `redis-benchmark -c 1 -P 1 -t set` through the leader of a fresh local
# 3-replica cluster (1 shard, leader-lease); stages.py prints the median and p90 µs of
# each stage. ROLE=follower (the default): from an accept's receive to its WAL write's
# submission. ROLE=leader: from the request's receive to its accepts' sends and its own
# write's submission, and from the deciding vote's receive to the reply's send. Needs
# root (tracefs) and a release build with symbols (the default profile keeps them). Each
# uprobe costs the traced thread about a µs, so later stages read later than they are
# without the probes. It owns tracefs while it runs: it clears every trace event, event
# pid filter and uprobe at the start and when done.
#   [ROLE=leader] results/follower-blocking-write-20261207/stages.sh [COREPAX_BIN]
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=results/follower-blocking-write-20261207
BIN=$(readlink -f "${1:-target/release/corepax}")
T=/sys/kernel/tracing
[ -d "$T/events" ] || T=/sys/kernel/debug/tracing
. scripts/lib.sh
require_tools redis-cli redis-benchmark python3 nm readelf

ROLE=${ROLE:-follower}
# name -> the function's symbol (its mangled name minus the hash)
declare -A FUNCS=(
    [on_message]='paxos7Replica10on_message17h'
    [apply_chosen]='apply_chosen17h'
)
case $ROLE in
    follower)
        FUNCS+=([accept_locally]='accept_locally17h' [finish_step]='paxos7Replica11finish_step17h'
            [append_record]='append_record17h' [begin_sync]='3wal3Wal10begin_sync17h') ;;
    leader)
        FUNCS+=([run_client_path]='run_client_path17h' [propose_at]='propose_at17h'
            [maybe_choose]='maybe_choose17h') ;;
    *) echo "ROLE is follower or leader" >&2; exit 2 ;;
esac
# A uprobe takes a file offset: a symbol's address less its segment's (address − offset).
read -r text_offset text_addr < <(readelf -lW "$BIN" | awk '$1 == "LOAD" && / E 0x/ { print $2, $3; exit }')
text_shift=$((text_addr - text_offset))
cleanup() {
    echo 0 > "$T/tracing_on"
    echo > "$T/set_event"
    echo > "$T/set_event_pid"
    echo > "$T/uprobe_events"
    CLUSTER_PID=${ST_PID:-} stop_cluster
    rm -rf "$TMP"
}
TMP=$(mktemp -d)
trap cleanup EXIT
echo 0 > "$T/tracing_on"
echo > "$T/set_event"
echo > "$T/uprobe_events"
for name in "${!FUNCS[@]}"; do
    addr=$(nm "$BIN" | grep -v drop_in_place | grep -E "${FUNCS[$name]}[0-9a-f]{16}E$" | awk '{ print $1 }')
    [ "$(wc -w <<< "$addr")" = 1 ] || { echo "no single symbol for $name" >&2; exit 1; }
    printf 'p:cpx/%s %s:0x%x\n' "$name" "$BIN" $((0x$addr - text_shift)) >> "$T/uprobe_events"
done

start_named_cluster ST "$TMP" ""
read -r leader follower _ <<< "$ST_NODES"
[ "$ROLE" = leader ] && traced=$leader || traced=$follower
echo 0 > "$T/tracing_on"
echo > "$T/trace"
echo 16384 > "$T/buffer_size_kb"
ls "/proc/$traced/task" | tr '\n' ' ' > "$T/set_event_pid"
for e in "${!FUNCS[@]}"; do echo "cpx:$e" >> "$T/set_event"; done
for e in syscalls:sys_exit_recvfrom syscalls:sys_enter_sendto syscalls:sys_enter_io_uring_enter; do
    echo "$e" >> "$T/set_event"
done
redis-benchmark -p "$ST_PORT" -c 1 -P 1 -t set -n 20000 -r 100000 -q > /dev/null 2>&1 &
bench=$!
sleep 1.5
echo 1 > "$T/tracing_on"
sleep 0.4
echo 0 > "$T/tracing_on"
wait "$bench"
python3 "$HERE/stages.py" "$ROLE" < "$T/trace"
