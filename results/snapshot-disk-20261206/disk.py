#!/usr/bin/env python3
"""disk.py DIR MODE MIB [STEP_KIB]: the longest 4 KiB O_DIRECT|O_DSYNC write (a WAL's write)
while a snapshot-sized file is written or deleted on the same file system.

A thread overwrites 4 KiB blocks of a 64 MiB file in DIR in a loop, timing each write. After
0.5 s, the main thread does MODE to a file of MIB MiB (written with random bytes):
  write     write it in 1 MiB pieces, fsync once, rename, fsync the directory
  stepped   the same, with an fdatasync every STEP_KIB (default 1024) KiB written
  zeros     a new file filled with zeros by 1 MiB O_DIRECT writes, one at a time (a WAL
            segment being made), fdatasync'd once at the end, renamed, fsync dir
  zeros-stepped  the same, with an fdatasync every STEP_KIB (default 1024) KiB written
  unlink    (a file written and synced 6 s before, past a journal commit) unlink, fsync dir
  truncate  the same file truncated STEP_KIB (default 4096) KiB at a time, each step
            fdatasync'd, then unlinked, fsync dir
and the loop goes on 1 s after. Prints the WAL writes' p50 before, and from the start of
MODE to 1 s after: their count, p99, the longest and when it began (ms after MODE began)."""
import mmap, os, sys, threading, time

d, mode, mib = sys.argv[1], sys.argv[2], int(sys.argv[3])
step = int(sys.argv[4]) << 10 if len(sys.argv) > 4 else (4 << 20 if mode == "truncate" else 1 << 20)
os.makedirs(d, exist_ok=True)
target = os.path.join(d, "snap")
piece = os.urandom(1 << 20)

def write_file(path, stepped, direct=False):
    """MIB MiB written to path + ".tmp" in 1 MiB pieces (with `direct`: zeros, O_DIRECT, one
    write at a time, fdatasync'd at the end; else random bytes through the page cache,
    fsync'd), synced every `step` bytes if `stepped`, then renamed and the directory synced."""
    f = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (os.O_DIRECT if direct else 0))
    buf = mmap.mmap(-1, 1 << 20) if direct else piece
    unsynced = 0
    for k in range(mib):
        os.pwrite(f, buf, k << 20)
        unsynced += 1 << 20
        if stepped and unsynced >= step:
            os.fdatasync(f)
            unsynced = 0
    (os.fdatasync if direct else os.fsync)(f)
    os.close(f)
    os.rename(path + ".tmp", path)
    sync_dir()

def sync_dir():
    fd = os.open(d, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)

if mode in ("unlink", "truncate"):
    write_file(target, False)
    time.sleep(6)
wal = os.open(os.path.join(d, "wal"), os.O_RDWR | os.O_CREAT | os.O_DIRECT | os.O_DSYNC)
os.ftruncate(wal, 64 << 20)
block = mmap.mmap(-1, 4096)
block.write(os.urandom(4096))
lat, stop = [], False

def wal_loop():
    i = 0
    while not stop:
        t = time.perf_counter()
        os.pwrite(wal, block, (i % 16384) * 4096)
        lat.append((t, time.perf_counter() - t))
        i += 1

th = threading.Thread(target=wal_loop)
th.start()
time.sleep(0.5)
t0 = time.perf_counter()
if mode in ("write", "stepped"):
    write_file(target, mode == "stepped")
elif mode in ("zeros", "zeros-stepped"):
    write_file(target, mode == "zeros-stepped", direct=True)
elif mode == "unlink":
    os.unlink(target)
    sync_dir()
else:
    f = os.open(target, os.O_WRONLY)
    size = os.fstat(f).st_size
    while size > step:
        size -= step
        os.ftruncate(f, size)
        os.fdatasync(f)
    os.close(f)
    os.unlink(target)
    sync_dir()
t1 = time.perf_counter()
time.sleep(1)
stop = True
th.join()
if os.path.exists(target):
    os.unlink(target)
before = sorted(l for t, l in lat if t < t0)
during = [(l, t) for t, l in lat if t >= t0]
worst = max(during)
ms = sorted(l for l, _ in during)
how = f" (step {step >> 10} KiB)" if mode in ("stepped", "zeros-stepped", "truncate") else ""
print(f"{mode} {mib} MiB{how}: took {1e3 * (t1 - t0):.1f} ms; WAL writes "
      f"before p50 {1e3 * before[len(before) // 2]:.3f} ms; from then to 1 s after: "
      f"{len(ms)} writes, p99 {1e3 * ms[int(len(ms) * 0.99)]:.3f} ms, longest "
      f"{1e3 * worst[0]:.2f} ms at +{1e3 * (worst[1] - t0):.0f} ms")
