#!/usr/bin/env bash
# Before the setting existed (b65168e's build: no policy by role): the main job as it was
# (A) and with its followers put at SCHED_BATCH by `chrt -b -a -p 0` once a leader is
# elected (C), alternated ROUNDS times (default 3); with today's binary both run with
# `--follower-sched-batch false`, as every node ran then. The runner and the summary of
# ../role-placement-20261207/mainjob.sh. Output: chrt-mainjob.txt.
#   results/follower-batch-20261207/chrt-mainjob.sh [ROUNDS]
VARIANTS="A C" CONFINE="chrt -b -a -p 0" \
    exec "$(dirname "$0")/../role-placement-20261207/mainjob.sh" "$@"
