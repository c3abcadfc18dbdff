"""Where a perf profile's samples went: each sample goes to the first category whose
functions are on its stack (interrupts, the socket send and receive calls, io_uring_enter,
other system calls), else to user space. Prints the shares.
    python3 classify.py PERF.DATA"""
import collections
import subprocess
import sys

CATEGORIES = [
    ("interrupts", {"asm_common_interrupt", "asm_sysvec_reschedule_ipi",
                    "asm_sysvec_call_function_single", "asm_sysvec_apic_timer_interrupt"}),
    ("send", {"__send", "__GI___libc_write", "__libc_write"}),
    ("recv", {"__libc_recv", "__GI___libc_read", "read"}),
    ("io_uring_enter", {"__do_sys_io_uring_enter"}),
    ("other system calls", {"entry_SYSCALL_64_after_hwframe"}),
]

script = subprocess.run(["perf", "script", "-i", sys.argv[1], "-F", "ip,sym"],
                        capture_output=True, text=True, check=True).stdout
counts, total = collections.Counter(), 0
for sample in script.split("\n\n"):
    frames = [line.split(None, 1) for line in sample.strip().splitlines() if line.strip()]
    if not frames:
        continue
    total += 1
    symbols = {f[1] for f in frames if len(f) > 1}
    counts[next((name for name, keys in CATEGORIES if symbols & keys), "user space")] += 1
for name, n in counts.most_common():
    print(f"{name:20s} {100 * n / total:5.1f} %")
print(f"{'samples':20s} {total}")
