/* Unit tests of the configuration (src/config.h): defaults; the config file with project
 * sections, comments and every kind of bad line (the error names file:line); precedence
 * defaults < file < environment < flags; both flag forms; unknown flags, bounds and the
 * positional arguments left in rest. Every test clears the TALLY_* environment first and
 * writes its files in its own mkdtemp directory. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

/* cmocka needs setjmp.h (and stdarg.h, stddef.h) included before it. */
/* clang-format off */
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include "config.h"
#include "util/diag.h"
#include "util/io.h"

extern char **environ;

typedef struct fixture {
    char dir[64];
    char path[128]; /* dir/tally.conf */
} fixture;

static void clear_env(void)
{
    /* Collect the names first: unsetenv changes environ. */
    char names[64][64];
    int n = 0;
    for (char **e = environ; *e && n < 64; e++) {
        if (strncmp(*e, "TALLY_", 6)) continue;
        const char *eq = strchr(*e, '=');
        size_t len = eq ? (size_t)(eq - *e) : strlen(*e);
        if (len >= sizeof names[0]) continue;
        memcpy(names[n], *e, len);
        names[n++][len] = 0;
    }
    for (int i = 0; i < n; i++)
        unsetenv(names[i]);
}

static int setup(void **state)
{
    clear_env();
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/tl_config_test.XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    snprintf(f->path, sizeof f->path, "%s/tally.conf", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    clear_env();
    tl_rm_rf(f->dir);
    free(f);
    return 0;
}

static void write_conf(const fixture *f, const char *text)
{
    FILE *fp = fopen(f->path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

/* Loads with argv = {"tally", args..., NULL}; returns tl_config_load's result. */
#define MAX_ARGS 16
typedef struct run {
    tl_config c;
    tl_err err;
    char **rest;
    int n_rest;
    int rc;
} run;

static void load_v(run *r, int scope, const char *const *args)
{
    char *argv[MAX_ARGS + 2] = {"tally"};
    int argc = 1;
    for (; args && args[argc - 1]; argc++)
        argv[argc] = (char *)args[argc - 1];
    memset(r, 0, sizeof *r);
    r->rest = (char **)1; /* must be reset */
    r->n_rest = -1;
    r->rc = tl_config_load(&r->c, scope, argc, argv, &r->rest, &r->n_rest, &r->err);
    if (r->rc) {
        /* On failure nothing is left to free. */
        assert_null(r->rest);
        assert_int_equal(r->n_rest, 0);
        assert_null(r->c.projects);
        assert_true(r->err.msg[0] != 0);
    }
}

#define LOAD(r, scope, ...) load_v((r), (scope), (const char *const[]){__VA_ARGS__, NULL})

static void done(run *r)
{
    free(r->rest);
    tl_config_fini(&r->c);
    tl_config_fini(&r->c); /* twice is fine */
}

static void expect_ok(run *r)
{
    if (r->rc) fail_msg("unexpected error %d: %s", r->rc, r->err.msg);
}

static void expect_err(run *r, const char *needle)
{
    if (!r->rc) fail_msg("expected an error containing '%s'", needle);
    assert_int_equal(r->rc, r->err.code);
    if (!strstr(r->err.msg, needle))
        fail_msg("error '%s' does not contain '%s'", r->err.msg, needle);
}

static void test_defaults(void **state)
{
    (void)state;
    run r;
    load_v(&r, TL_CFG_SERVE, NULL);
    expect_ok(&r);
    assert_string_equal(r.c.data_dir, "./data");
    assert_string_equal(r.c.listen, "127.0.0.1:8080");
    assert_string_equal(r.c.config_file, "");
    assert_int_equal(r.c.log_level, TL_LOG_INFO);
    assert_int_equal(r.c.threads, 4);
    assert_int_equal(r.c.max_body_bytes, 20971520);
    assert_int_equal(r.c.max_event_bytes, 32768);
    assert_int_equal(r.c.max_string_bytes, 8192);
    assert_int_equal(r.c.max_props, 1000);
    assert_int_equal(r.c.max_depth, 16);
    assert_int_equal(r.c.max_future_s, 86400);
    assert_int_equal(r.c.segment_bytes, 64u << 20);
    assert_int_equal(r.c.seal_rows, 1u << 20);
    assert_int_equal(r.c.checkpoint_ms, 60000);
    assert_int_equal(r.c.cache_mb, 1024);
    assert_false(r.c.repair);
    assert_int_equal(r.c.session_gap_s, 1800);
    assert_int_equal(r.c.retention_days, 90);
    assert_int_equal(r.c.n_projects, 0);
    assert_null(tl_config_project(&r.c, "default"));
    assert_non_null(r.rest);
    assert_int_equal(r.n_rest, 0);
    done(&r);
    /* rest may be NULL when the caller takes no positional arguments. */
    tl_config c;
    char *argv[] = {"tally", "pos", NULL};
    assert_int_equal(tl_config_load(&c, TL_CFG_CLIENT, 2, argv, NULL, NULL, NULL), 0);
    tl_config_fini(&c);
}

static void test_file(void **state)
{
    fixture *f = *state;
    write_conf(f, "# tally.conf\n"
                  "\n"
                  "   # indented comment\n"
                  "data_dir = /var/lib/tally   # trailing comment\n"
                  "listen=0.0.0.0:9000\n"
                  "\tthreads\t=\t8\t\n"
                  "max_body_bytes = 1048576\n"
                  "max-props = 50\n"
                  "log_level = debug\n"
                  "repair = yes\n"
                  "session_gap_s = 600\n"
                  "\n"
                  "[project demo]\n"
                  "timezone  = Asia/Kathmandu\n"
                  "write_key = wk_demo\n"
                  "read_key  = rk_demo\n"
                  "retention_days = 30\n"
                  "[ project   shop-2 ]   # spaces inside the brackets\n"
                  "tz = Europe/Paris\n"
                  "write_key = wk_shop\n"
                  "read_key = rk_shop\n"
                  "session_gap_s = 60\n");
    run r;
    LOAD(&r, TL_CFG_SERVE, "--config", f->path);
    expect_ok(&r);
    assert_string_equal(r.c.config_file, f->path);
    assert_string_equal(r.c.data_dir, "/var/lib/tally");
    assert_string_equal(r.c.listen, "0.0.0.0:9000");
    assert_int_equal(r.c.threads, 8);
    assert_int_equal(r.c.max_body_bytes, 1048576);
    assert_int_equal(r.c.max_props, 50);
    assert_int_equal(r.c.log_level, TL_LOG_DEBUG);
    assert_true(r.c.repair);
    assert_int_equal(r.c.session_gap_s, 600);
    assert_int_equal(r.c.n_projects, 2);
    const tl_project_conf *d = tl_config_project(&r.c, "demo");
    assert_non_null(d);
    assert_string_equal(d->name, "demo");
    assert_string_equal(d->timezone, "Asia/Kathmandu");
    assert_string_equal(d->write_key, "wk_demo");
    assert_string_equal(d->read_key, "rk_demo");
    assert_int_equal(d->retention_days, 30);
    assert_int_equal(d->session_gap_s, 600); /* from the global default */
    const tl_project_conf *s = tl_config_project(&r.c, "shop-2");
    assert_non_null(s);
    assert_string_equal(s->timezone, "Europe/Paris");
    assert_int_equal(s->session_gap_s, 60);
    assert_int_equal(s->retention_days, 90);
    assert_null(tl_config_project(&r.c, "shop"));
    assert_int_equal(r.n_rest, 0);
    done(&r);
}

static void test_project_default_timezone(void **state)
{
    fixture *f = *state;
    write_conf(f, "[project p]\nwrite_key = w\nread_key = r\n");
    run r;
    LOAD(&r, TL_CFG_SERVE,
         "--config="
         "/nonexistent-overridden",
         "--config", f->path);
    expect_ok(&r);
    assert_string_equal(tl_config_project(&r.c, "p")->timezone, "UTC");
    done(&r);
}

/* Each bad file gives an error that names the file and the line. */
static void test_bad_lines(void **state)
{
    fixture *f = *state;
    static const struct {
        const char *text, *needle;
    } cases[] = {
        {"threads = 4\njust words\n", ":2: expected key = value"},
        {"# c\n\n[project]\n", ":3: expected [project NAME]"},
        {"[project a b]\nwrite_key = w\nread_key = r\n", ":1: "},
        {"[projectx]\nwrite_key = w\nread_key = r\n", ":1: expected [project NAME]"},
        {"[project x] junk\n", ":1: expected [project NAME]"},
        {"[project x\n", ":1: expected [project NAME]"},
        {"[section x]\n", ":1: expected [project NAME]"},
        {"[project bad/name]\n", ":1: project name 'bad/name'"},
        {"[project "
         "a123456789012345678901234567890123456789012345678901234567890123]\n",
         ":1: project name"},
        {"nosuch = 1\n", ":1: unknown setting 'nosuch'"},
        {"config = other.conf\n", ":1: unknown setting 'config'"},
        {"threads = 4\n[project p]\nwrite_key = w\nread_key = r\nlisten = x\n",
         ":5: unknown project setting 'listen'"},
        {"[project p]\nwrite_key =\n", ":2: write_key: empty or too long"},
        {"[project p]\nsession_gap_s = 0\n", ":2: session_gap_s: expected a positive number"},
        {"[project p]\n\ntimezone = Mars/Olympus_Mons\n", ":3: timezone: "},
        {"[project p]\ntz = ../../etc/passwd\n", ":2: tz: "},
        {"[project p]\nretention_days = ten\n", ":2: retention_days"},
        {"\n\nthreads = many\n", ":3: threads: not a number: 'many'"},
        {"threads = 0\n", ":1: threads: 0 is outside 1..256"},
        {"log_level = loud\n", ":1: log-level: expected error|warn|info|debug"},
        {"repair = maybe\n", ":1: repair: expected true or false"},
        {"= 5\n", ":1: unknown setting ''"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_conf(f, cases[i].text);
        run r;
        LOAD(&r, TL_CFG_SERVE, "--config", f->path);
        if (!r.rc) fail_msg("case %zu: accepted", i);
        assert_int_equal(r.rc, TL_EINVAL);
        if (!strstr(r.err.msg, f->path) || !strstr(r.err.msg, cases[i].needle))
            fail_msg("case %zu: error '%s' lacks '%s'", i, r.err.msg, cases[i].needle);
        done(&r);
    }
}

static void test_long_line(void **state)
{
    fixture *f = *state;
    size_t n = 5000;
    char *text = malloc(n + 64);
    snprintf(text, n + 64, "listen = 127.0.0.1:1\n[project p]\nwrite_key = ");
    size_t at = strlen(text);
    memset(text + at, 'k', n);
    strcpy(text + at + n, "\nread_key = r\n");
    write_conf(f, text);
    free(text);
    run r;
    LOAD(&r, TL_CFG_SERVE, "--config", f->path);
    expect_err(&r, ":3: line longer than");
    done(&r);
}

static void test_missing_file(void **state)
{
    fixture *f = *state;
    run r;
    LOAD(&r, TL_CFG_SERVE, "--config", "/nonexistent/tally.conf");
    assert_int_equal(r.rc, TL_ENOENT);
    assert_non_null(strstr(r.err.msg, "/nonexistent/tally.conf"));
    done(&r);
    /* An empty file is a valid config. */
    write_conf(f, "");
    LOAD(&r, TL_CFG_SERVE, "--config", f->path);
    expect_ok(&r);
    done(&r);
}

static void test_projects(void **state)
{
    fixture *f = *state;
    static const struct {
        const char *text, *needle;
    } cases[] = {
        {"[project a]\nwrite_key = w1\nread_key = r1\n[project a]\n",
         ":4: project 'a' declared twice"},
        {"[project a]\nwrite_key = w1\nread_key = r1\n[project b]\nwrite_key = w1\n"
         "read_key = r2\n",
         "projects 'a' and 'b' share a key"},
        {"[project a]\nwrite_key = w1\nread_key = r1\n[project b]\nwrite_key = w2\n"
         "read_key = r1\n",
         "projects 'a' and 'b' share a key"},
        /* A read key equal to another project's (public) write key. */
        {"[project a]\nwrite_key = k\nread_key = r1\n[project b]\nwrite_key = w2\n"
         "read_key = k\n",
         "projects 'a' and 'b' share a key"},
        /* A project whose read key is its own write key. */
        {"[project a]\nwrite_key = same\nread_key = same\n", "share a key"},
        {"[project a]\nwrite_key = w1\n", "project 'a' needs write_key and read_key"},
        {"[project a]\nread_key = r1\n", "project 'a' needs write_key and read_key"},
        {"[project a]\nwrite_key = w1\nread_key = r1\n[project b]\n",
         "project 'b' needs write_key and read_key"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_conf(f, cases[i].text);
        run r;
        LOAD(&r, TL_CFG_SERVE, "--config", f->path);
        if (!r.rc) fail_msg("case %zu: accepted", i);
        if (!strstr(r.err.msg, cases[i].needle) || !strstr(r.err.msg, f->path))
            fail_msg("case %zu: error '%s' lacks '%s'", i, r.err.msg, cases[i].needle);
        done(&r);
    }
    /* Later keys of a section replace earlier ones. */
    write_conf(f, "[project a]\nwrite_key = w0\nwrite_key = w1\nread_key = r1\n");
    run r;
    LOAD(&r, TL_CFG_CLIENT, "--config", f->path);
    expect_ok(&r);
    assert_string_equal(r.c.projects[0].write_key, "w1");
    /* tl_config_add_project appends (the generated default project). */
    tl_project_conf p = {.name = "default", .timezone = "UTC", .write_key = "wd", .read_key = "rd"};
    tl_config_add_project(&r.c, &p);
    assert_int_equal(r.c.n_projects, 2);
    assert_string_equal(tl_config_project(&r.c, "default")->write_key, "wd");
    assert_string_equal(tl_config_project(&r.c, "a")->read_key, "r1");
    done(&r);
}

static void test_precedence(void **state)
{
    fixture *f = *state;
    write_conf(f, "threads = 8\nlisten = 10.0.0.1:1\ndata_dir = /from/file\nmax_depth = 20\n");
    run r;
    /* file over defaults */
    LOAD(&r, TL_CFG_SERVE, "--config", f->path);
    expect_ok(&r);
    assert_int_equal(r.c.threads, 8);
    assert_int_equal(r.c.max_depth, 20);
    done(&r);
    /* environment over file */
    setenv("TALLY_THREADS", "9", 1);
    setenv("TALLY_DATA", "/from/env", 1);
    LOAD(&r, TL_CFG_SERVE, "--config", f->path);
    expect_ok(&r);
    assert_int_equal(r.c.threads, 9);
    assert_string_equal(r.c.data_dir, "/from/env");
    assert_string_equal(r.c.listen, "10.0.0.1:1");
    assert_int_equal(r.c.max_depth, 20);
    done(&r);
    /* flags over environment, in both forms */
    LOAD(&r, TL_CFG_SERVE, "--config", f->path, "--threads", "10", "--data=/from/flag",
         "--max-depth=30");
    expect_ok(&r);
    assert_int_equal(r.c.threads, 10);
    assert_string_equal(r.c.data_dir, "/from/flag");
    assert_int_equal(r.c.max_depth, 30);
    assert_string_equal(r.c.listen, "10.0.0.1:1");
    done(&r);
    /* The last of repeated flags wins. */
    LOAD(&r, TL_CFG_SERVE, "--threads=2", "--threads", "3");
    expect_ok(&r);
    assert_int_equal(r.c.threads, 3);
    done(&r);
    /* TALLY_CONFIG names the file; --config beats it. */
    unsetenv("TALLY_THREADS");
    unsetenv("TALLY_DATA");
    setenv("TALLY_CONFIG", f->path, 1);
    LOAD(&r, TL_CFG_SERVE, "pos");
    expect_ok(&r);
    assert_string_equal(r.c.config_file, f->path);
    assert_int_equal(r.c.threads, 8);
    done(&r);
    setenv("TALLY_CONFIG", "/nonexistent.conf", 1);
    LOAD(&r, TL_CFG_SERVE, "--config", f->path);
    expect_ok(&r);
    assert_int_equal(r.c.threads, 8);
    done(&r);
    LOAD(&r, TL_CFG_SERVE, "--threads", "2");
    assert_int_equal(r.rc, TL_ENOENT);
    done(&r);
}

static void test_env(void **state)
{
    (void)state;
    run r;
    setenv("TALLY_LOG_LEVEL", "error", 1);
    setenv("TALLY_REPAIR", "true", 1);
    setenv("TALLY_MAX_BODY_BYTES", "4096", 1);
    setenv("TALLY_LISTEN", "127.0.0.1:0", 1);
    LOAD(&r, TL_CFG_SERVE, "x");
    expect_ok(&r);
    assert_int_equal(r.c.log_level, TL_LOG_ERROR);
    assert_true(r.c.repair);
    assert_int_equal(r.c.max_body_bytes, 4096);
    assert_string_equal(r.c.listen, "127.0.0.1:0");
    done(&r);
    /* Variables of settings another command does not read are ignored there. */
    LOAD(&r, TL_CFG_CLIENT, "x");
    expect_ok(&r);
    assert_string_equal(r.c.listen, "127.0.0.1:8080");
    assert_int_equal(r.c.max_body_bytes, 20971520);
    done(&r);
    /* A bad value names the variable. */
    setenv("TALLY_MAX_BODY_BYTES", "12", 1);
    LOAD(&r, TL_CFG_SERVE, "x");
    expect_err(&r, "TALLY_MAX_BODY_BYTES: max-body-bytes: 12 is outside 1024..");
    done(&r);
    setenv("TALLY_MAX_BODY_BYTES", "1k", 1);
    LOAD(&r, TL_CFG_SERVE, "x");
    expect_err(&r, "TALLY_MAX_BODY_BYTES: max-body-bytes: not a number");
    done(&r);
    unsetenv("TALLY_MAX_BODY_BYTES");
    /* A flag fixes what the environment got wrong? No: the environment is read first and
     * refused on its own. */
    setenv("TALLY_THREADS", "0", 1);
    LOAD(&r, TL_CFG_SERVE, "--threads", "2");
    expect_err(&r, "TALLY_THREADS");
    done(&r);
}

static void test_flags(void **state)
{
    (void)state;
    run r;
    LOAD(&r, TL_CFG_SERVE, "--nope");
    expect_err(&r, "unknown flag '--nope'");
    assert_int_equal(r.rc, TL_EINVAL);
    done(&r);
    LOAD(&r, TL_CFG_SERVE, "--nope=3");
    expect_err(&r, "unknown flag '--nope'");
    done(&r);
    /* A serve-only flag is unknown to the client commands. */
    LOAD(&r, TL_CFG_CLIENT, "--listen", "127.0.0.1:1");
    expect_err(&r, "unknown flag '--listen'");
    done(&r);
    LOAD(&r, TL_CFG_CLIENT, "--threads=2");
    expect_err(&r, "unknown flag '--threads'");
    done(&r);
    /* Underscore spellings are file keys but also accepted as flags. */
    LOAD(&r, TL_CFG_CLIENT, "--max_props=7", "--data_dir", "/d");
    expect_ok(&r);
    assert_int_equal(r.c.max_props, 7);
    assert_string_equal(r.c.data_dir, "/d");
    done(&r);
    LOAD(&r, TL_CFG_SERVE, "--data");
    expect_err(&r, "flag --data needs a value");
    done(&r);
    /* Booleans: bare, =true, =false, =0, =1; anything else refused. */
    LOAD(&r, TL_CFG_SERVE, "--repair");
    expect_ok(&r);
    assert_true(r.c.repair);
    done(&r);
    LOAD(&r, TL_CFG_SERVE, "--repair", "--repair=false");
    expect_ok(&r);
    assert_false(r.c.repair);
    done(&r);
    LOAD(&r, TL_CFG_SERVE, "--repair=1");
    expect_ok(&r);
    assert_true(r.c.repair);
    done(&r);
    LOAD(&r, TL_CFG_SERVE, "--repair=perhaps");
    expect_err(&r, "flag --repair: repair: expected true or false, got 'perhaps'");
    done(&r);
    /* A bare boolean flag does not swallow the next argument. */
    LOAD(&r, TL_CFG_CLIENT, "--repair", "file.ndjson");
    expect_ok(&r);
    assert_int_equal(r.n_rest, 1);
    assert_string_equal(r.rest[0], "file.ndjson");
    done(&r);
    LOAD(&r, TL_CFG_SERVE, "--log-level", "warn");
    expect_ok(&r);
    assert_int_equal(r.c.log_level, TL_LOG_WARN);
    done(&r);
    /* Empty value in the = form. */
    LOAD(&r, TL_CFG_SERVE, "--threads=");
    expect_err(&r, "flag --threads: threads: not a number: ''");
    done(&r);
    LOAD(&r, TL_CFG_SERVE, "--data=");
    expect_ok(&r);
    assert_string_equal(r.c.data_dir, "");
    done(&r);
}

static void test_bounds(void **state)
{
    (void)state;
    static const struct {
        const char *flag, *value, *needle;
    } bad[] = {
        {"--threads", "0", "0 is outside 1..256"},
        {"--threads", "257", "257 is outside 1..256"},
        {"--threads", "-1", "not a number"},
        {"--threads", "4x", "not a number"},
        {"--threads", "99999999999999999999999", "not a number"},
        {"--max-body-bytes", "1023", "outside 1024..4294967296"},
        {"--max-body-bytes", "4294967297", "outside 1024..4294967296"},
        {"--checkpoint-ms", "9", "outside 10.."},
        {"--seal-rows", "0", "outside 1.."},
        {"--segment-bytes", "65535", "outside 65536.."},
        {"--session-gap-s", "86401", "outside 1..86400"},
        {"--retention-days", "0", "outside 1..100000"},
        {"--max-string-bytes", "63", "outside 64.."},
        {"--log-level", "trace", "expected error|warn|info|debug"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        run r;
        LOAD(&r, TL_CFG_SERVE, bad[i].flag, bad[i].value);
        if (!r.rc || !strstr(r.err.msg, bad[i].needle) || !strstr(r.err.msg, bad[i].flag))
            fail_msg("%s %s: rc %d '%s'", bad[i].flag, bad[i].value, r.rc, r.err.msg);
        done(&r);
    }
    /* The limits themselves are accepted. */
    run r;
    LOAD(&r, TL_CFG_SERVE, "--threads", "256", "--max-body-bytes=4294967296", "--max-future-s", "0",
         "--threads=1");
    expect_ok(&r);
    assert_int_equal(r.c.threads, 1);
    assert_int_equal(r.c.max_body_bytes, 4294967296ull);
    assert_int_equal(r.c.max_future_s, 0);
    done(&r);
    /* A string longer than its field is refused, not cut. */
    char big[1100];
    memset(big, 'd', sizeof big - 1);
    big[sizeof big - 1] = 0;
    LOAD(&r, TL_CFG_SERVE, "--data", big);
    expect_err(&r, "longer than 1023 bytes");
    done(&r);
}

static void test_positional(void **state)
{
    (void)state;
    run r;
    LOAD(&r, TL_CFG_CLIENT, "a.ndjson", "--data", "/d", "b.ndjson", "-", "--max-depth=3", "--",
         "c");
    expect_ok(&r);
    assert_int_equal(r.n_rest, 5);
    assert_string_equal(r.rest[0], "a.ndjson");
    assert_string_equal(r.rest[1], "b.ndjson");
    assert_string_equal(r.rest[2], "-");
    assert_string_equal(r.rest[3], "--");
    assert_string_equal(r.rest[4], "c");
    assert_null(r.rest[5]);
    assert_string_equal(r.c.data_dir, "/d");
    assert_int_equal(r.c.max_depth, 3);
    done(&r);
    /* A flag's value is not positional even when it looks like a file. */
    LOAD(&r, TL_CFG_CLIENT, "--data", "x.ndjson");
    expect_ok(&r);
    assert_int_equal(r.n_rest, 0);
    done(&r);
}

static void test_help(void **state)
{
    fixture *f = *state;
    FILE *fp = fopen(f->path, "w+");
    assert_non_null(fp);
    tl_config_print_help(fp, TL_CFG_SERVE);
    long serve_len = ftell(fp);
    rewind(fp);
    char *text = calloc(1, (size_t)serve_len + 1);
    assert_int_equal(fread(text, 1, (size_t)serve_len, fp), (size_t)serve_len);
    fclose(fp);
    assert_non_null(strstr(text, "--data V"));
    assert_non_null(strstr(text, "TALLY_DATA"));
    assert_non_null(strstr(text, "--listen V"));
    assert_non_null(strstr(text, "--repair "));
    assert_null(strstr(text, "--repair V"));
    free(text);
    fp = fopen(f->path, "w+");
    tl_config_print_help(fp, TL_CFG_CLIENT);
    long client_len = ftell(fp);
    rewind(fp);
    text = calloc(1, (size_t)client_len + 1);
    assert_int_equal(fread(text, 1, (size_t)client_len, fp), (size_t)client_len);
    fclose(fp);
    assert_null(strstr(text, "--listen"));
    assert_non_null(strstr(text, "--data V"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_project_default_timezone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_projects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_precedence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_positional, setup, teardown),
        cmocka_unit_test_setup_teardown(test_help, setup, teardown),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
