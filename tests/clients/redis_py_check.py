"""Drives a corepax node through redis-py with its default settings.

Usage: redis_py_check.py PORT KEY_A KEY_B  (KEY_A and KEY_B live in the same shard)
Exits non-zero with a message on the first thing that does not work.
"""
import sys
import time

import redis


def main() -> None:
    port, key_a, key_b = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    # Defaults: redis-py 8 says HELLO 3 first and reads RESP3 replies.
    r = redis.Redis(host="127.0.0.1", port=port)
    assert r.ping() is True
    assert r.set("py:greeting", "hello") is True
    assert r.get("py:greeting") == b"hello"
    assert r.get("py:missing") is None
    assert r.incr("py:n") == 1
    assert r.incrby("py:n", 41) == 42
    assert r.decr("py:n") == 41
    assert r.set("py:lock", "me", nx=True) is True
    assert r.set("py:lock", "you", nx=True) is None
    assert r.set("py:lock", "me2", xx=True, get=True) == b"me"
    assert r.getdel("py:lock") == b"me2"
    assert r.exists("py:lock") == 0
    assert r.mset({"py:m1": "1", "py:m2": "2"}) is True
    assert r.mget(["py:m1", "py:nope", "py:m2"]) == [b"1", None, b"2"]

    # The default pipeline wraps its commands in MULTI/EXEC: one log entry.
    with r.pipeline() as p:
        p.set(key_a, "1").incr(key_a).setnx(key_b, "x").get(key_a)
        assert p.execute() == [True, 2, True, b"2"], "transaction"
    # Without a transaction the commands may span shards.
    with r.pipeline(transaction=False) as p:
        p.set("py:p1", "a").set("py:p2", "b").mget(["py:p1", "py:p2"])
        assert p.execute() == [True, True, [b"a", b"b"]], "pipeline"

    # A lock without Lua: SET NX to take it, DELIFEQ to release only one's own.
    assert r.set("py:res", "token-1", nx=True) is True
    assert r.execute_command("DELIFEQ", "py:res", "token-2") == 0
    assert r.execute_command("DELIFEQ", "py:res", "token-1") == 1
    assert r.client_setname("worker-1") is True
    assert r.client_getname() in ("worker-1", b"worker-1")

    # The same through RESP2.
    r2 = redis.Redis(host="127.0.0.1", port=port, protocol=2)
    assert r2.get("py:greeting") == b"hello"
    with r2.pipeline() as p:
        p.incr(key_a).get(key_a)
        assert p.execute() == [3, b"3"], "RESP2 transaction"
    # Lists, an atomic move to a processing list, blocking pops (the two keys of one
    # shard: LMOVE's keys must be).
    q, work = key_a, key_b
    assert r.delete(q, work) == 2
    assert r.rpush(q, "t1", "t2", "t3") == 3
    assert r.lpush(q, "t0") == 4
    assert r.lrange(q, 0, -1) == [b"t0", b"t1", b"t2", b"t3"]
    assert r.llen(q) == 4
    assert r.lindex(q, -1) == b"t3"
    assert r.type(q) in (b"list", "list")
    assert r.lpop(q) == b"t0"
    assert r.rpop(q, 1) == [b"t3"]
    assert r.lmove(q, work, "LEFT", "RIGHT") == b"t1"
    assert r.lrem(work, 1, "t1") == 1
    assert r.blmove(q, work, 1, "LEFT", "RIGHT") == b"t2"
    assert r.blpop([q], timeout=0.2) is None
    assert r.rpush(q, "t4") == 1
    assert r.blpop([q], timeout=1) in ([q.encode(), b"t4"], (q.encode(), b"t4"))
    assert r.exists(q) == 0
    try:
        r.lpush("py:greeting", "x")
        raise AssertionError("LPUSH on a string must fail")
    except redis.ResponseError as e:
        assert str(e).startswith("WRONGTYPE"), e

    check_watch(r, key_a)
    check_watch_list(r, key_b)
    check_scan(r)
    print("redis-py", redis.__version__, "ok")


def check_watch(r: "redis.Redis", key: str) -> None:
    """Optimistic locking: WATCH, read, MULTI … EXEC, retried when someone else wrote."""
    import threading

    r.set(key, "0")
    workers, per_worker = 3, 15

    def add_one(pipe) -> None:
        value = int(pipe.get(key) or 0)
        pipe.multi()
        pipe.set(key, value + 1)

    def work() -> None:
        own = redis.Redis(host="127.0.0.1", port=r.connection_pool.connection_kwargs["port"])
        for _ in range(per_worker):
            own.transaction(add_one, key)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert int(r.get(key)) == workers * per_worker, ("lost increments", r.get(key))

    # A write by another client between WATCH and EXEC aborts the transaction.
    with r.pipeline() as p:
        p.watch(key)
        assert p.get(key) is not None
        r.set(key, "100")
        p.multi()
        p.set(key, "lost")
        try:
            p.execute()
            raise AssertionError("EXEC applied although a watched key changed")
        except redis.WatchError:
            pass
    assert r.get(key) == b"100"


def check_watch_list(r: "redis.Redis", key: str) -> None:
    """A list write changes the key's version: a transaction watching the list aborts."""
    r.delete(key)
    assert r.rpush(key, "a") == 1
    with r.pipeline() as p:
        p.watch(key)
        assert p.llen(key) == 1
        r.rpush(key, "b")
        p.multi()
        p.lpop(key)
        try:
            p.execute()
            raise AssertionError("EXEC applied although a watched list changed")
        except redis.WatchError:
            pass
    assert r.lrange(key, 0, -1) == [b"a", b"b"]


def check_scan(r: "redis.Redis") -> None:
    """scan_iter walks every shard through SCAN's cursors."""
    keys = {f"py:scan:{i}" for i in range(40)}
    r.mset({k: "1" for k in keys})
    # SCAN reads this node's applied state: writes acknowledged through the leader reach
    # it within milliseconds.
    deadline = time.time() + 5
    while True:
        found = {k.decode() for k in r.scan_iter(match="py:scan:*", count=7)}
        if found == keys or time.time() > deadline:
            break
        time.sleep(0.05)
    assert found == keys, sorted(keys - found)
    assert {k.decode() for k in r.keys("py:scan:1*")} == {k for k in keys if k.startswith("py:scan:1")}
    # TYPE tells lists from strings.
    assert r.rpush("py:list:scan", "x") == 1
    deadline = time.time() + 5
    while True:
        lists = {k.decode() for k in r.scan_iter(match="py:*", _type="list")}
        if "py:list:scan" in lists or time.time() > deadline:
            break
        time.sleep(0.05)
    assert "py:list:scan" in lists and not lists & keys, lists
    strings = {k.decode() for k in r.scan_iter(match="py:*", _type="string")}
    assert "py:list:scan" not in strings and keys <= strings


if __name__ == "__main__":
    main()
