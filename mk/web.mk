# The dashboard (web/, docs/dashboard.md): npm ci, the esbuild build and the generated C table
# of its files, compiled into libtally (so into build/tally and build/san/tally). Rebuilt only
# when something under web/ changes; the build fails when the page weight is over budget.
# (Included before the Makefile's first rule: keep `all` the default goal.)
.DEFAULT_GOAL := all
DEB_DEPS += nodejs chromium
GEN_SRCS += build/gen/web_assets.c

WEB_SRCS := $(shell find web/src -type f 2>/dev/null) web/build.mjs web/package.json \
            web/package-lock.json

# npm ci writes node_modules/.package-lock.json: the stamp of an install that matches the lock.
web/node_modules/.package-lock.json: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

build/gen/web_assets.c: $(WEB_SRCS) web/node_modules/.package-lock.json
	@mkdir -p build/gen
	cd web && node build.mjs --out ../build/web --gen ../build/gen/web_assets.c

# The C table is compiled into libtally through GEN_SRCS; order-only here so the link lines
# ($^) stay as they are.
build/tally build/san/tally: | build/gen/web_assets.c

.PHONY: web
web: build/gen/web_assets.c

# `make fuzz` and `make test-tsan` compile LIB_SRCS (so the generated table) themselves.
fuzz test-tsan: build/gen/web_assets.c
