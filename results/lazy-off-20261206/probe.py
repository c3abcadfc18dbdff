import socket, time, random, sys
port=int(sys.argv[1]); n=int(sys.argv[2]); out=sys.argv[3]
s=socket.create_connection(("127.0.0.1",port)); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY,1)
rows=[]
t0=time.perf_counter_ns()
for i in range(n):
    k=b"key:%012d"%random.randrange(100000)
    msg=b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$3\r\nxxx\r\n"%(len(k),k)
    a=time.perf_counter_ns()
    s.sendall(msg)
    buf=b""
    while not buf.endswith(b"\r\n"):
        buf+=s.recv(64)
    b=time.perf_counter_ns()
    rows.append((a-t0,b-a))
with open(out,"w") as f:
    for a,d in rows: f.write("%d %d\n"%(a,d))
lat=sorted(d for _,d in rows)
q=lambda p: lat[int(p*len(lat))]/1000
print("n=%d p50=%.0f p90=%.0f p95=%.0f p99=%.0f p999=%.0f max=%.0f us"%(n,q(.5),q(.9),q(.95),q(.99),q(.999),lat[-1]/1000))
