"""Compares an expected JSON answer with tally's, for the differential tests: numbers to a
relative 1e-9, everything else exactly; the differences come back as lines naming their path."""

import json


def close(a, b):
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def diff(exp, got, path=""):
    """Differences between two JSON values, as lines."""
    if isinstance(exp, dict):
        if not isinstance(got, dict):
            return ["%s: expected an object, got %r" % (path, got)]
        out = []
        for k in exp:
            out += diff(exp[k], got.get(k, "<missing>"), "%s.%s" % (path, k))
        return out
    if isinstance(exp, list):
        if not isinstance(got, list) or len(got) != len(exp):
            n = "%d items" % len(got) if isinstance(got, list) else repr(got)
            return ["%s: expected %d items, got %s: %s" % (path, len(exp), n, json.dumps(got)[:300])]
        out = []
        for i, (x, y) in enumerate(zip(exp, got)):
            out += diff(x, y, "%s[%d]" % (path, i))
        return out
    if isinstance(exp, (int, float)) and isinstance(got, (int, float)) and not isinstance(exp, bool) \
            and not isinstance(got, bool):
        return [] if close(float(exp), float(got)) else ["%s: expected %r, got %r" % (path, exp, got)]
    return [] if exp == got else ["%s: expected %r, got %r" % (path, exp, got)]
