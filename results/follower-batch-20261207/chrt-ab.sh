#!/usr/bin/env bash
# Before the setting existed (b65168e's build: no policy by role): the rounds of
# ../role-placement-20261207/ab.sh, both clusters `--no-pin`, B's followers (every thread
# of both follower processes) put at SCHED_BATCH by `chrt -b -a -p 0` after the start,
# the leader left at SCHED_OTHER (today's binary: both `--follower-sched-batch false`, as
# every node ran then). Output: chrt-ab.txt (recorded by an equivalent
# throwaway copy, whose first line still said "B by role": it is not).
#   results/follower-batch-20261207/chrt-ab.sh [ROUNDS]
A_ARGS="--no-pin --follower-sched-batch false" B_ARGS="--no-pin --follower-sched-batch false" \
    B_FOLLOWERS="chrt -b -a -p 0" \
    LABEL="A --no-pin, B --no-pin with its followers at SCHED_BATCH (chrt)" \
    exec "$(dirname "$0")/../role-placement-20261207/ab.sh" "$@"
