#!/usr/bin/env python3
"""Each thread's share of the wall time running and waiting on a run queue, its wakes a
second and its wait per wake, over SECONDS (from /proc/*/task/*/schedstat: run ns, wait
ns, slices); threads above 1 % of either, busiest first.

    runqueue.py SECONDS"""
import os, sys, time
def snap():
    d={}
    for pid in os.listdir('/proc'):
        if not pid.isdigit(): continue
        try:
            tasks=os.listdir(f'/proc/{pid}/task')
        except OSError: continue  # the process ended meanwhile
        for t in tasks:
            try:
                comm=open(f'/proc/{pid}/task/{t}/comm').read().strip()
                pcomm=open(f'/proc/{pid}/comm').read().strip()
                run,wait,n=map(int,open(f'/proc/{pid}/task/{t}/schedstat').read().split())
            except (OSError, ValueError): continue  # the thread ended meanwhile
            d[(pid,t)]=(pcomm,comm,run,wait,n)
    return d
a=snap(); t0=time.time(); time.sleep(float(sys.argv[1])); b=snap(); dt=time.time()-t0
rows=[]
for k,v in b.items():
    o=a.get(k,(v[0],v[1],0,0,0))
    run=(v[2]-o[2])/1e9; wait=(v[3]-o[3])/1e9; n=v[4]-o[4]
    if run>0.01*dt or wait>0.01*dt: rows.append((run,wait,n,v[0],v[1],k))
rows.sort(reverse=True)
tr=tw=0
for run,wait,n,pc,c,k in rows:
    tr+=run; tw+=wait
    print(f"{pc:>12} {c:>16} {k[1]:>7} run {run/dt*100:5.1f}% wait {wait/dt*100:5.1f}% slices/s {n/dt:8.0f} wait/slice {wait/max(n,1)*1e6:6.1f}us")
print(f"total run {tr/dt:.2f} cores, wait {tw/dt:.2f} thread-s/s")
