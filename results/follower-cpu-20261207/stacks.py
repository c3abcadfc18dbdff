"""Share of a profile's samples whose stack holds each of some functions (a substring of
the frame's name; one sample counts for each function it holds).
    perf script -i PERF.DATA -F ip,sym > STACKS
    python3 stacks.py STACKS "name1,name2,..."
"""
import collections, sys
stacks=[]; cur=[]
for line in open(sys.argv[1]):
    line=line.strip()
    if not line:
        if cur: stacks.append(cur); cur=[]
        continue
    parts=line.split(None,1)
    cur.append(parts[1] if len(parts)>1 else parts[0])
if cur: stacks.append(cur)
n=len(stacks)
print("samples",n)
def has(s,sub): return any(sub in f for f in s)
keys=sys.argv[2].split(",")
for k in keys:
    c=sum(1 for s in stacks if has(s,k))
    print(f"{k:40s} {100*c/n:5.1f}")
