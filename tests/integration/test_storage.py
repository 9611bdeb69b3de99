"""The data directory (README "Layout", the opening comment of src/log.c): log segments are
deleted once their events are sealed into column files; a torn tail of the last segment (what
a crash during a write leaves) is truncated at start; damage before the tail means
acknowledged data was damaged, so `tally serve` refuses to start, naming the file, unless
--repair, which drops the damage and says how much was lost."""

import os

import tally
from tally import Server, check, check_eq, day_add, event, now_ms, today_utc

P, WK, RK = "demo", "wk_demo", "rk_demo"


def segments(s):
    d = os.path.join(s.data_dir, "log")
    return sorted(os.path.join(d, n) for n in os.listdir(d) if n.endswith(".log"))


def load(s, n_batches, per_batch, prefix):
    t = now_ms()
    for k in range(n_batches):
        s.collect_ok([event(prefix, anon="%s%d" % (prefix, i % 40), ts=t - 3600000 - k * 1000 - i,
                            properties={"pad": "p" * 300, "k": k})
                      for i in range(per_batch)], key=WK)
    return n_batches * per_batch


def test_log_segments_are_released():
    t = today_utc()
    f = day_add(t, -2)
    with Server(config_extra={"segment_bytes": 65536, "checkpoint_ms": 100}) as s:
        n = load(s, 40, 100, "rel")  # ~1.6 MB of log
        s.wait_count(P, f, t, RK, n, tz="UTC")
        tally.wait_until(lambda: len(segments(s)) <= 3, timeout=15,
                         what="log segments deleted once sealed (have %d)" % len(segments(s)))
        s.restart()
        s.wait_count(P, f, t, RK, n, tz="UTC")
        check(len(segments(s)) <= 3, "segments after restart: %d" % len(segments(s)))


def test_torn_tail_is_truncated():
    t = today_utc()
    f = day_add(t, -2)
    s = Server(config_extra={"checkpoint_ms": 3600000})
    s.start()
    n = load(s, 10, 20, "torn")
    s.wait_count(P, f, t, RK, n, tz="UTC")
    s.kill()
    seg = segments(s)[-1]
    size = os.path.getsize(seg)
    with open(seg, "r+b") as fh:
        fh.truncate(size - 7)  # cut into the last record, as a crash during its write would
    s.start()
    s.wait_count(P, f, t, RK, n - 1, tz="UTC")
    s.stop()


def test_damage_refuses_start_unless_repair():
    t = today_utc()
    f = day_add(t, -2)
    s = Server(config_extra={"checkpoint_ms": 3600000})
    s.start()
    n = load(s, 10, 20, "dmg")
    s.wait_count(P, f, t, RK, n, tz="UTC")
    s.kill()
    seg = segments(s)[-1]
    size = os.path.getsize(seg)
    off = 20 + (size - 20) * 2 // 5
    with open(seg, "r+b") as fh:
        fh.seek(off)
        b = fh.read(1)
        fh.seek(off)
        fh.write(bytes([b[0] ^ 0x5A]))
    try:
        s.start()
        refused = False
    except tally.TestFailure as e:
        refused = True
        msg = str(e)
    if not refused:
        got = s.count_events(P, f, t, RK, tz="UTC")
        s.kill()
        raise tally.TestFailure("started on a log damaged in the middle (byte %d of %d flipped in %s) and "
                                "counts %d of %d events" % (off, size, os.path.basename(seg), got, n))
    s.proc = None
    check(os.path.basename(seg) in msg, "the refusal names the damaged file: %s" % msg[-500:])
    s.check_log_clean()
    # --repair drops the damage (and what follows) and says so
    s.extra_args = ["--repair"]
    s.start()
    got = s.count_events(P, f, t, RK, tz="UTC")
    check(0 < got < n, "after --repair: %d of %d events (those before the damage)" % (got, n))
    log = s.log_text()
    check("repair" in log.lower() or "lost" in log.lower() or "drop" in log.lower(),
          "--repair says what it dropped:\n%s" % s.log_tail())
    s.stop()
    s.extra_args = []
    s.start()
    check_eq(s.count_events(P, f, t, RK, tz="UTC"), got, "after --repair and a normal restart")
    s.stop()
