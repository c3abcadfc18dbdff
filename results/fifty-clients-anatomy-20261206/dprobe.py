"""dprobe.py OUT SECS: one 4 KiB O_DIRECT|O_DSYNC overwrite every 10 ms on /tmp's file
system (a light probe of the disk beside a benchmark); writes to OUT each write that took
over 10 ms (its wall-clock start and ms), and at the end the count and the longest."""
import mmap
import os
import sys
import time

path = "/tmp/dprobe.dat"
with open(path, "wb") as f:
    f.write(b"\0" * (1 << 20))
    f.flush()
    os.fsync(f.fileno())
fd = os.open(path, os.O_RDWR | os.O_DIRECT | os.O_DSYNC)
buf = mmap.mmap(-1, 4096)
buf.write(b"x" * 4096)
out = open(sys.argv[1], "w")
end = time.time() + float(sys.argv[2])
n, worst = 0, 0.0
while time.time() < end:
    start, t0 = time.time(), time.perf_counter()
    os.pwrite(fd, buf, (n % 256) * 4096)
    ms = (time.perf_counter() - t0) * 1e3
    n, worst = n + 1, max(worst, ms)
    if ms > 10:
        out.write(f"{start:.3f} {ms:.1f}\n")
        out.flush()
    time.sleep(0.01)
out.write(f"# {n} writes, longest {worst:.1f} ms\n")
os.unlink(path)
