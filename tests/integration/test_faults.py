"""Storage faults (the ASan test build's fault injection, TALLY_FAULT=kind:skip, util/fault.h):
a failed write or fsync makes the log refuse writes with 503 (Retry-After) for the rest of the
process and never answers 200 for data it could not sync (README "What is guaranteed");
queries keep working; after a restart without the fault every acknowledged event is there,
and re-sending everything counts each event exactly once."""

import random

import tally
from tally import Server, check, check_eq, day_add, event, now_ms, today_utc

P, WK, RK = "demo", "wk_demo", "rk_demo"


def run_fault(kind, skip, seed, extra=None):
    rng = random.Random(seed)
    t = today_utc()
    f = day_add(t, -3)
    batches = []
    for k in range(40):
        batches.append([event("fault", anon="fa%d" % rng.randrange(30), ts=now_ms() - rng.randrange(2 * 86400000) - 60000)
                        for _ in range(rng.choice([1, 5, 30]))])
    acked, failed = [], []
    s = Server(config_extra=extra)
    s.start()  # the data directory exists before the fault is armed
    s.collect_ok([event("fault-setup", ts=now_ms() - 60000)], key=WK)
    s.stop()
    s.env = {"TALLY_FAULT": "%s:%d" % (kind, skip)}
    try:
        s.start()
    except tally.TestFailure as e:
        # refusing to start on a storage error is fine, if it says so and leaves the data intact
        check(not s.running() and "error" in str(e).lower() or "cannot" in str(e).lower(),
              "%s:%d: start-up failure without a reason: %s" % (kind, skip, e))
        s.proc = None
        s.check_log_clean()
        s.env = {}
        s.start()
        s.wait_count(P, f, t, RK, 1, tz="UTC")
        s.stop()
        return "start-up"
    first_503 = None
    for i, b in enumerate(batches):
        r = s.collect(b, key=WK)
        check(r.status in (200, 503), "%s:%d batch %d: status %d %r" % (kind, skip, i, r.status, r.body[:200]))
        if r.status == 200:
            if first_503 is not None:
                raise tally.TestFailure("%s:%d: batch %d acknowledged (200) after batch %d got 503: the "
                                        "log must refuse writes for the rest of the process"
                                        % (kind, skip, i, first_503))
            acked.append(b)
        else:
            check(r.header("Retry-After") is not None, "503 without Retry-After")
            if first_503 is None:
                first_503 = i
            failed.append(b)
        check(s.running(), "%s:%d: the server died at batch %d:\n%s" % (kind, skip, i, s.log_tail()))
    n_acked = sum(len(b) for b in acked) + 1
    # queries still answer, with at least everything acknowledged
    got = s.count_events(P, f, t, RK, tz="UTC")
    check(n_acked <= got <= n_acked + sum(len(b) for b in failed),
          "%s:%d: %d events counted, %d acknowledged" % (kind, skip, got, n_acked))
    h = s.request("GET", "/healthz")
    if first_503 is not None:
        check_eq(h.status, 503, "%s:%d: /healthz after the log failed" % (kind, skip))
    s.stop(check_clean=False)
    s.check_log_clean()
    # restart without the fault: everything acknowledged is there; resending counts once
    s.env = {}
    s.start()
    got = s.count_events(P, f, t, RK, tz="UTC")
    check(n_acked <= got <= n_acked + sum(len(b) for b in failed),
          "%s:%d after restart: %d events counted, %d acknowledged" % (kind, skip, got, n_acked))
    for b in batches:
        s.collect_ok(b, key=WK)
    total = sum(len(b) for b in batches) + 1
    s.wait_count(P, f, t, RK, total, tz="UTC")
    s.stop()
    return first_503


def test_fsync_failure():
    fired = [run_fault("fsync", skip, 100 + skip) for skip in (0, 2, 5, 12, 25)]
    print("first 503 at batch (per skip):", fired)
    check(any(isinstance(x, int) for x in fired), "the fsync fault never made /collect answer 503: %r" % fired)


def test_write_failures():
    fired = []
    for kind in ("enospc", "eio", "short"):
        for skip in (0, 3, 8, 20):
            fired.append(run_fault(kind, skip, len(kind) * 1000 + skip))
    print("first 503 at batch (per kind and skip):", fired)
    check(any(isinstance(x, int) for x in fired), "no write fault made /collect answer 503: %r" % fired)


def test_faults_during_checkpoints():
    """Small parts and checkpoints every 50 ms: the faults also hit sealing and checkpoints."""
    extra = {"seal_rows": 20, "checkpoint_ms": 50}
    fired = []
    for kind in ("fsync", "enospc", "short"):
        for skip in (4, 9, 17):
            fired.append(run_fault(kind, skip, skip, extra))
    print("first 503 at batch (per kind and skip):", fired)
