#!/usr/bin/env bash
# Two local 3-replica clusters of one binary side by side (1 shard, leader-lease, fsync
# on, executors unpinned: 3 replicas on 2 cores): A `--follower-sched-batch false`, B as
# `corepax cluster` runs them there by default (followers at SCHED_BATCH); the rounds of
# ../role-placement-20261207/ab.sh (one client, `-c 50 -P 1`, `-c 50 -P 16` SETs).
#   results/follower-batch-20261207/ab.sh [ROUNDS]
A_ARGS="--follower-sched-batch false" B_ARGS="" \
    LABEL="A --follower-sched-batch false, B the default (followers at SCHED_BATCH)" \
    exec "$(dirname "$0")/../role-placement-20261207/ab.sh" "$@"
