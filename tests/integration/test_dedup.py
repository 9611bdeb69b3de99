"""Dedup over the whole retention, across restarts (docs/dedup.md): the indexer keeps every
stored (project, event_id) key in sorted run files under data/index, named by the store's
checkpoint. After a clean restart and after kill -9, events sent before it are still dropped
when sent again, however many checkpoints (runs, merges) came between; identify calls with a
messageId are deduplicated the same way."""

import base64
import json
import os
import time
import re

from tally import Server, check, check_eq, event, now_ms, recent_range

P, WK, RK = "demo", "wk_demo", "rk_demo"
PROJECTS = {"demo": ("UTC", WK, RK), "seg": ("UTC", "wk_seg", "rk_seg")}


def metric(s, name):
    r = s.request("GET", "/metrics")
    m = re.search(r"^tally_%s (\d+)$" % name, r.body.decode(), re.M)
    return int(m.group(1)) if m else 0


def index_files(s):
    """Runs and manifests in the index dir. A running server checkpoints every 50 ms here, so
    a listing can catch a manifest being written (.tmp) or the old one not yet removed: files
    being written are left out, and the listing is retried until it shows one manifest."""
    d = os.path.join(s.data_dir, "index")
    for _ in range(50):
        names = [n for n in os.listdir(d) if not n.endswith(".tmp")]
        runs = [n for n in names if n.startswith("run-")]
        mans = [n for n in names if n.startswith("manifest-")]
        if len(mans) == 1:
            break
        time.sleep(0.1)
    return runs, mans


def batches(prefix, n_batches, per):
    t = now_ms() - 3600000
    return [[event("e%d" % (i % 5), anon="%s-a%d" % (prefix, i % 97), eid="%s-%d-%d" % (prefix, k, i),
                   ts=t - k * 1000 - i, properties={"k": k})
             for i in range(per)] for k in range(n_batches)]


def send_all(s, bs, want_accepted, want_dups):
    acc = dup = 0
    for b in bs:
        j = s.collect_ok(b, key=WK)
        acc += j["accepted"]
        dup += j["duplicates"]
    check_eq((acc, dup), (want_accepted, want_dups), "accepted, duplicates")


def test_duplicates_dropped_after_restart():
    f, t = recent_range()
    # Small checkpoints: every few batches make a run, and tier-0 runs merge.
    with Server(projects=PROJECTS, config_extra={"checkpoint_ms": 50}) as s:
        first = batches("a", 60, 500)
        n = 60 * 500
        for b in first:
            s.collect_ok(b, key=WK)
        s.wait_count(P, f, t, RK, n, tz="UTC")
        runs, mans = index_files(s)
        check(len(runs) >= 1 and len(mans) == 1, "index files: %r %r" % (runs, mans))

        s.restart()  # clean: SIGTERM, final checkpoint
        s.wait_count(P, f, t, RK, n, tz="UTC")
        # /metrics shows the set: every key is in a run after the final checkpoint
        check_eq(metric(s, "dedup_keys"), n, "dedup_keys after the restart")
        check(metric(s, "dedup_runs") >= 1 and metric(s, "dedup_disk_bytes") >= 16 * n,
              "dedup runs and bytes on disk in /metrics")
        check(metric(s, "dedup_memory_bytes") > 0, "dedup memory in /metrics")
        send_all(s, first[::7], 0, len(first[::7]) * 500)  # answered as duplicates at once
        check_eq(s.count_events(P, f, t, RK, tz="UTC"), n, "count after resending")

        # New events, then kill -9 right after they are acknowledged: the replay of the log
        # after the last checkpoint rebuilds their keys, and repeats of old and new are dropped.
        second = batches("b", 10, 500)
        for b in second:
            s.collect_ok(b, key=WK)
        s.kill()
        s.start()
        s.wait_count(P, f, t, RK, n + 5000, tz="UTC")  # the replay is done
        send_all(s, second + first[1::9], 0, (len(second) + len(first[1::9])) * 500)
        check_eq(s.count_events(P, f, t, RK, tz="UTC"), n + 5000, "count after resending")

        s.restart()
        s.wait_count(P, f, t, RK, n + 5000, tz="UTC")
        runs, mans = index_files(s)
        check_eq(len(mans), 1, "one manifest after a clean stop")
        check(len(runs) < 40, "runs are merged: %d files" % len(runs))


def test_identify_retries_dedup():
    """A Segment identify retried with the same messageId is one identify: a refused merge of
    two users counts once, before and after a restart."""
    f, t = recent_range()
    auth = {"Authorization": "Basic " + base64.b64encode(b"wk_seg:").decode(),
            "Content-Type": "application/json"}

    def post(path, body):
        r = s.request("POST", path, json.dumps(body), auth)
        check_eq(r.status, 200, "%s: %r" % (path, r.body[:300]))

    with Server(projects=PROJECTS, config_extra={"checkpoint_ms": 50}) as s:
        post("/v1/track", {"userId": "u1", "anonymousId": "x1", "event": "e", "messageId": "m1"})
        post("/v1/track", {"userId": "u2", "anonymousId": "x2", "event": "e", "messageId": "m2"})
        s.wait_count("seg", f, t, "rk_seg", 2, tz="UTC")
        r0 = metric(s, "identity_merges_refused_total")
        ident = {"userId": "u2", "anonymousId": "x1", "traits": {"plan": "pro"},
                 "messageId": "id-1"}
        post("/v1/identify", ident)
        post("/v1/identify", ident)  # the retry
        s.wait_count("seg", f, t, "rk_seg", 2, tz="UTC")
        check_eq(metric(s, "identity_merges_refused_total") - r0, 1, "refused merges")
        s.restart()
        post("/v1/identify", ident)
        post("/v1/track", {"userId": "u1", "event": "e", "messageId": "m3"})
        s.wait_count("seg", f, t, "rk_seg", 3, tz="UTC")
        check_eq(metric(s, "identity_merges_refused_total"), 0, "refused after restart")
