# Reports (src/report/): the scheduler POSTs reports to webhooks and `tally report --server`
# asks a running server, both through libcurl (Debian's OpenSSL flavour).
PKGS     += libcurl
DEB_DEPS += libcurl4-openssl-dev
