#!/usr/bin/env bash
# The main job (`corepax bench`, its embedded 3-replica cluster, executors unpinned on
# this 2-core machine), alternated ROUNDS times (default 4): A with `-- --follower-sched-batch
# false`, B as it runs by default (followers at SCHED_BATCH); the runner and the summary
# of ../role-placement-20261207/mainjob.sh.
#   results/follower-batch-20261207/mainjob.sh [ROUNDS]
VARIANTS="A B" ARGS_A="-- --follower-sched-batch false" ARGS_B="" \
    exec "$(dirname "$0")/../role-placement-20261207/mainjob.sh" "${1:-4}"
