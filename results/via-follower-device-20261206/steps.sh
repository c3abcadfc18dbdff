#!/usr/bin/env bash
# One client through the leader, traced per thread: for each WAL write that reaches the
# disk, the steps of the thread that wrote it since it was woken (steps.py OUT). trace.sh
# with the scheduler, receives, sends, io_uring submissions and block issues, for 1 s.
#   results/via-follower-device-20261206/steps.sh corepax BIN OUT | floor - OUT
set -euo pipefail
EVENTS='sched:sched_switch sched:sched_wakeup syscalls:sys_enter_recvfrom syscalls:sys_exit_recvfrom syscalls:sys_enter_sendto syscalls:sys_enter_io_uring_enter syscalls:sys_exit_io_uring_enter io_uring:io_uring_submit_req block:block_rq_issue syscalls:sys_enter_pwrite64 syscalls:sys_exit_read syscalls:sys_enter_write' \
    SECS=1.0 exec "$(dirname "$0")/trace.sh" "$1" "$2" lead "$3"
