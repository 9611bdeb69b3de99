"""Physical erasure (docs/lifecycle.md): after DELETE /api/v1/persons/<id>, within the time the
docs state (two checkpoint intervals plus the checkpoints themselves), no file under the data
directory holds the person's distinct ids, event ids or the strings only its events carried:
raw bytes of every file, and every zstd frame in them decompressed (part columns are
compressed, so a plain grep would prove nothing). Other persons' answers do not change."""

import ctypes
import os
import time

from tally import (Server, check, check_eq, day_add, event, today_utc, uid, wait_until)

P, WK, RK = "demo", "wk_demo", "rk_demo"
CHECKPOINT_MS = 300

_zstd = None


def _lib():
    global _zstd
    if _zstd is None:
        z = ctypes.CDLL("libzstd.so.1")
        z.ZSTD_getFrameContentSize.restype = ctypes.c_ulonglong
        z.ZSTD_getFrameContentSize.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        z.ZSTD_findFrameCompressedSize.restype = ctypes.c_size_t
        z.ZSTD_findFrameCompressedSize.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        z.ZSTD_decompress.restype = ctypes.c_size_t
        z.ZSTD_decompress.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p,
                                      ctypes.c_size_t]
        z.ZSTD_isError.restype = ctypes.c_uint
        z.ZSTD_isError.argtypes = [ctypes.c_size_t]
        _zstd = z
    return _zstd


def _frames(data):
    """The decompressed content of every zstd frame found anywhere in data."""
    z = _lib()
    buf = ctypes.create_string_buffer(data, len(data))
    base = ctypes.addressof(buf)
    out = []
    i = data.find(b"\x28\xb5\x2f\xfd")
    while i >= 0:
        avail = len(data) - i
        size = z.ZSTD_getFrameContentSize(base + i, avail)
        clen = z.ZSTD_findFrameCompressedSize(base + i, avail)
        if size < (1 << 31) and not z.ZSTD_isError(clen):
            dst = ctypes.create_string_buffer(max(size, 1))
            got = z.ZSTD_decompress(dst, size, base + i, clen)
            if not z.ZSTD_isError(got):
                out.append(dst.raw[:got])
        i = data.find(b"\x28\xb5\x2f\xfd", i + 1)
    return out


def files_holding(root, needles):
    """{needle: [paths]} of the files under root whose bytes, or a zstd frame in them
    decompressed, contain the needle (bytes or str)."""
    needles = [n.encode() if isinstance(n, str) else n for n in needles]
    found = {n.decode(): [] for n in needles}
    for d, _, names in os.walk(root):
        for name in names:
            path = os.path.join(d, name)
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                continue  # deleted meanwhile
            blobs = [data] + _frames(data)
            for n in needles:
                if any(n in b for b in blobs):
                    found[n.decode()].append(os.path.relpath(path, root))
    return found


def day_ms(day):
    import datetime
    x = datetime.datetime.fromisoformat(day).replace(tzinfo=datetime.timezone.utc)
    return int(x.timestamp() * 1000)


def metric(s, name):
    r = s.request("GET", "/metrics")
    for line in r.body.decode().splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    return None


def wait_sealed(s, parts=1):
    """Waits until a checkpoint has sealed rows into at least `parts` part files."""
    wait_until(lambda: metric(s, "tally_store_parts") >= parts, timeout=30, what="sealed parts")


def q(d, **kw):
    base = {"project": P, "kind": "trends", "interval": "day", "from": d, "to": d}
    base.update(kw)
    return base


def test_erased_person_is_gone_from_every_file():
    t = today_utc()
    d = day_add(t, -1)
    tag = uid("zq")  # unique text in every string of the erased person
    anon, user = "anon-" + tag, "user-" + tag
    email = "mail-%s@example.test" % tag
    with Server(extra_args=["--checkpoint-ms", str(CHECKPOINT_MS)]) as s:
        def ms(hour):
            return day_ms(d) + hour * 3600000
        evs = [event("pageview", anon=anon, ts=ms(8), eid="ev1-" + tag,
                     properties={"email": email, "plan": "pro"}),
               event("signup", anon=anon, user=user, ts=ms(9), eid="ev2-" + tag,
                     user_properties={"email": email}),
               event("pageview", user=user, ts=ms(10), eid="ev3-" + tag,
                     url="https://shop.example/u/" + tag)]
        others = []
        for i in range(30):
            others.append(event("pageview", anon="keep-%d" % (i % 7), ts=ms(11) + i,
                                properties={"plan": "pro" if i % 2 else "free"}))
        s.collect_ok(evs + others, key=WK)
        s.wait_count(P, d, d, RK, 33)
        before_p = s.query_ok(q(d, metric="persons"), key=RK)["rows"]
        check_eq(before_p, [[d, 8]], "persons before")
        # Sealed into parts first, so the erasure has part files to rewrite.
        wait_sealed(s)
        needles = [anon, user, email, "ev1-" + tag, "ev2-" + tag, "ev3-" + tag, tag]
        there = files_holding(s.data_dir, needles)
        check(any("store" in p for p in there[user]), "the user id is in the store: %r" % there)
        check(any(p.endswith(".part") for p in there["ev1-" + tag]),
              "the event id is in a part file (decompressed): %r" % there)

        r = s.request("DELETE", "/api/v1/persons/%s?project=%s" % (user, P),
                      headers={"Authorization": "Bearer " + RK})
        check(200 <= r.status < 300, "DELETE: %d %r" % (r.status, r.body[:200]))
        t_erase = time.monotonic()
        # Answers exclude the person at once.
        check_eq(s.query_ok(q(d, metric="persons"), key=RK)["rows"], [[d, 7]], "persons after")
        check_eq(s.query_ok(q(d, metric="events"), key=RK)["rows"], [[d, 30]], "events after")
        # Physically gone within the stated bound: two checkpoint intervals plus the
        # checkpoints (slack for a sanitizer build on a loaded machine).
        bound = 2 * CHECKPOINT_MS / 1000.0 + 10.0
        left = None
        while time.monotonic() - t_erase < bound:
            left = {n: p for n, p in files_holding(s.data_dir, needles).items() if p}
            if not left:
                break
            time.sleep(0.2)
        check(not left, "still in files %.1fs after the erasure: %r"
              % (time.monotonic() - t_erase, left))
        took = time.monotonic() - t_erase
        # Everything else is still there and counts the same.
        check_eq(s.query_ok(q(d, metric="events"), key=RK)["rows"], [[d, 30]], "events")
        check_eq(s.query_ok(q(d, metric="persons", where=[{"prop": "properties.plan", "op": "=",
                                                              "value": "pro"}]), key=RK)["rows"],
                 [[d, 7]], "persons with plan=pro")
        kept = files_holding(s.data_dir, ["keep-3", "free"])
        check(kept["keep-3"] and kept["free"], "other persons' data kept: %r" % kept)
        # And after a restart (the checkpoint is the state): still gone, still the same.
        s.restart()
        check_eq(s.query_ok(q(d, metric="persons"), key=RK)["rows"], [[d, 7]], "after restart")
        left = {n: p for n, p in files_holding(s.data_dir, needles).items() if p}
        check(not left, "back in files after a restart: %r" % left)
        # The id seen again later is a new person, counted again.
        s.collect_ok([event("pageview", user=user, ts=ms(12))], key=WK)
        s.wait_count(P, d, d, RK, 31)
        check_eq(s.query_ok(q(d, metric="persons"), key=RK)["rows"], [[d, 8]], "a new person")
        print("gone from every file %.2fs after the erasure (checkpoint every %d ms)"
              % (took, CHECKPOINT_MS))


def test_erasure_survives_a_crash_before_its_checkpoint():
    """kill -9 right after the erasure is acknowledged (before any checkpoint records it):
    the log replay erases again, and the bound holds from the restart."""
    t = today_utc()
    d = day_add(t, -1)
    tag = uid("zk")
    user = "user-" + tag
    with Server(extra_args=["--checkpoint-ms", "1500"]) as s:
        evs = [event("pageview", user=user, ts=day_ms(d) + 3600000 + i, eid="ev%d-%s" % (i, tag))
               for i in range(3)]
        evs += [event("pageview", anon="other-%d" % i, ts=day_ms(d) + 7200000 + i)
                for i in range(5)]
        s.collect_ok(evs, key=WK)
        s.wait_count(P, d, d, RK, 8)
        wait_sealed(s)
        r = s.request("DELETE", "/api/v1/persons/%s?project=%s" % (user, P),
                      headers={"Authorization": "Bearer " + RK})
        check(200 <= r.status < 300, "DELETE: %d" % r.status)
        s.kill()
        s.start()
        t0 = time.monotonic()
        check_eq(s.query_ok(q(d, metric="persons"), key=RK)["rows"], [[d, 5]], "after the crash")
        needles = [user, "ev0-" + tag, "ev2-" + tag]
        left = None
        while time.monotonic() - t0 < 2 * 1.5 + 10.0:
            left = {n: p for n, p in files_holding(s.data_dir, needles).items() if p}
            if not left:
                break
            time.sleep(0.2)
        check(not left, "still in files %.1fs after the restart: %r"
              % (time.monotonic() - t0, left))
        check_eq(s.query_ok(q(d, metric="events"), key=RK)["rows"], [[d, 5]], "others kept")
