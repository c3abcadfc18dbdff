import os, threading, time, ctypes, sys, statistics
libc = ctypes.CDLL("libc.so.6", use_errno=True)
libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
D = os.path.join("target", "wbphys")  # run from the project root; os.makedirs(D, exist_ok=True)
wal = os.path.join(D, "wal"); snap = os.path.join(D, "snap")
with open(wal, "wb") as f: f.write(b"\0" * (1 << 24)); os.fsync(f.fileno())
fd = os.open(wal, os.O_WRONLY | os.O_DIRECT | os.O_DSYNC)
buf = ctypes.create_string_buffer(4096 + 4096)
addr = (ctypes.addressof(buf) + 4095) & ~4095
mv = (ctypes.c_char * 4096).from_address(addr)
lat = []; stop = False
def walloop():
    off = 0
    while not stop:
        t = time.perf_counter(); os.pwrite(fd, memoryview(mv), off); lat.append(time.perf_counter() - t)
        off = (off + 4096) % (1 << 24); time.sleep(0.0005)
def snapshot(behind):
    data = os.urandom(1 << 20)
    t = time.perf_counter()
    with open(snap, "wb") as f:
        n = 0; started = 0; waited = 0
        for i in range(24):
            f.write(data); f.flush(); n += len(data)
            if behind and n - started >= (1 << 20):
                if started > waited:
                    libc.sync_file_range(f.fileno(), waited, started - waited, 1 | 2 | 4); waited = started
                libc.sync_file_range(f.fileno(), started, n - started, 2); started = n
        os.fsync(f.fileno())
    return time.perf_counter() - t
for rnd in range(3):
    for behind in (False, True):
        lat.clear(); stop = False
        th = threading.Thread(target=walloop); th.start(); time.sleep(0.2)
        dt = snapshot(behind); time.sleep(0.1); stop = True; th.join()
        s = sorted(lat)
        print(f"round {rnd} write-behind={behind}: snapshot 24 MiB {dt*1000:.0f} ms; WAL 4K O_DSYNC writes n={len(s)} p50 {s[len(s)//2]*1e3:.2f} p99 {s[int(len(s)*0.99)]*1e3:.2f} max {s[-1]*1e3:.2f} ms")
os.unlink(snap)
