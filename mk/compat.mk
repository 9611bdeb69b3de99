# SDK-compatible endpoints (src/compat/, src/http/compat.c, docs/compat.md). tests/compat is a
# small npm project with the official Segment, PostHog and Snowplow Node clients, and
# analytics.js, posthog-js and plausible-tracker driven in Debian's chromium by playwright-core,
# which tests/integration/test_compat.py runs against a tally on loopback; `npm ci` installs
# them from the committed lock file before the tests (and with `make deps`). node_modules is
# never committed. (Included before the Makefile's first rule: keep `all` the default goal.)
.DEFAULT_GOAL := all
DEB_DEPS += nodejs chromium

# npm ci writes node_modules/.package-lock.json: the stamp of an install that matches the lock.
COMPAT_NPM := tests/compat/node_modules/.package-lock.json

$(COMPAT_NPM): tests/compat/package.json tests/compat/package-lock.json
	@command -v npm >/dev/null 2>&1 || bash tools/deps.sh nodejs npm
	cd tests/compat && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

.PHONY: compat-npm
compat-npm: $(COMPAT_NPM)
test integration deps: $(COMPAT_NPM)
