"""Publish/subscribe through corepax with redis-py's defaults (HELLO 3: RESP3 pushes).

Usage: redis_py_pubsub.py SUB_PORT PUB_PORT  (two nodes of one cluster)
Exits non-zero with a message on the first thing that does not work.
"""
import sys
import time

import redis


def next_message(p, deadline_s=10.0):
    """The next message or pmessage, skipping confirmations."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        m = p.get_message(ignore_subscribe_messages=True, timeout=0.5)
        if m is not None:
            return m
    raise AssertionError("no message within %.0f s" % deadline_s)


def main() -> None:
    sub_port, pub_port = int(sys.argv[1]), int(sys.argv[2])
    sub = redis.Redis(host="127.0.0.1", port=sub_port)
    pub = redis.Redis(host="127.0.0.1", port=pub_port)
    p = sub.pubsub()
    p.subscribe("py:news")
    p.psubscribe("py:al*")
    # Wait for both confirmations before publishing.
    confirmed = set()
    end = time.monotonic() + 10
    while len(confirmed) < 2 and time.monotonic() < end:
        m = p.get_message(timeout=0.5)
        if m is not None:
            confirmed.add(m["type"])
    assert confirmed == {"subscribe", "psubscribe"}, confirmed

    # The publisher's node has no subscriber: PUBLISH counts that node's receivers.
    assert pub.publish("py:news", "one") == 0
    assert pub.publish("py:alerts", "two") == 0
    assert sub.publish("py:news", "three") == 1, "one receiver on the subscriber's node"

    # Ordered per channel; the two channels may live in different shards.
    got = [next_message(p) for _ in range(3)]
    news = [m["data"] for m in got if m["channel"] == b"py:news"]
    assert news == [b"one", b"three"], got
    alerts = [m for m in got if m["channel"] == b"py:alerts"]
    assert len(alerts) == 1 and alerts[0]["type"] == "pmessage", got
    assert alerts[0]["pattern"] == b"py:al*" and alerts[0]["data"] == b"two", got
    assert sub.pubsub_numsub("py:news") == [(b"py:news", 1)], sub.pubsub_numsub("py:news")
    assert sub.pubsub_numpat() == 1
    assert b"py:news" in sub.pubsub_channels()

    p.unsubscribe("py:news")
    p.punsubscribe()
    end = time.monotonic() + 10
    while p.subscribed and time.monotonic() < end:
        p.get_message(timeout=0.5)
    assert not p.subscribed, "unsubscribed from everything"
    p.close()
    print("redis-py pub/sub ok")


if __name__ == "__main__":
    main()
