/* bench/load.c — the benchmark's ingest client: sends an NDJSON file of native events to
 * tally's POST /collect in batches ({"events":[…]}), over a few concurrent keep-alive
 * connections, and reports events/s and the server's accepted / duplicate / rejected counts.
 *
 * Why C with plain sockets: a Python client tops out far below what the server should take;
 * the client must not be the bottleneck it measures. The file is mmap'ed and the batch
 * boundaries found before the clock starts, so reading the file is not timed either.
 * A 429 or 503 is retried after its Retry-After (the server said "later", not "no"), and a
 * dropped connection is reopened and the batch resent — the same at-least-once behaviour as a
 * real SDK, which dedup by event_id makes harmless.
 *
 * Usage: load --port P --key WRITE_KEY --file F [--host 127.0.0.1] [--batch 1000]
 *             [--conns 4] [--path /collect]
 * Prints key=value lines: events, seconds, events_per_s, accepted, duplicates, rejected,
 * retries, p50_ms, p99_ms. Exit status 1 when any batch failed for good. */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <strings.h>

static const char *host = "127.0.0.1", *key, *file, *path = "/collect";
static int port, batch = 1000, conns = 4;

static const char *data;
static size_t data_len;
static size_t *bounds; /* batch i is data[bounds[i] .. bounds[i+1]) */
static size_t n_batches;
static atomic_size_t next_batch;
static atomic_uint_fast64_t accepted, duplicates, rejected, retries, failed;
static double *lat_ms; /* per batch */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int connect_to(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1 ||
        connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

typedef struct {
    char *buf;
    size_t len, cap, pos; /* pos: consumed bytes */
} rbuf;

static int fill(int fd, rbuf *r)
{
    if (r->pos && r->pos == r->len) r->pos = r->len = 0;
    if (r->cap - r->len < 4096) {
        r->cap = r->cap * 2 + 65536;
        r->buf = realloc(r->buf, r->cap);
        if (!r->buf) return -1;
    }
    ssize_t n;
    do
        n = recv(fd, r->buf + r->len, r->cap - r->len - 1, 0);
    while (n < 0 && errno == EINTR);
    if (n <= 0) return -1;
    r->len += (size_t)n;
    r->buf[r->len] = 0;
    return 0;
}

static const char *header(const char *head, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p && p[2] != '\r'; p = strstr(p + 2, "\r\n"))
        if (!strncasecmp(p + 2, name, nl) && p[2 + nl] == ':') return p + 3 + nl;
    return NULL;
}

/* Reads one response: status, and its body copied to *body (NUL-terminated). 0 or -1. */
static int read_response(int fd, rbuf *r, int *status, char **body, int *retry_after, int *closes)
{
    char *end;
    while (!(end = strstr(r->buf ? r->buf + r->pos : "", "\r\n\r\n")))
        if (fill(fd, r) != 0) return -1;
    size_t head_len = (size_t)(end - (r->buf + r->pos)) + 4;
    char *head = strndup(r->buf + r->pos, head_len);
    r->pos += head_len;
    *status = atoi(head + 9);
    const char *v = header(head, "Retry-After");
    *retry_after = v ? atoi(v) : 0;
    v = header(head, "Connection");
    *closes = v && strstr(v, "close") != NULL;
    const char *cl = header(head, "Content-Length");
    const char *te = header(head, "Transfer-Encoding");
    size_t blen = 0, bcap = 256;
    char *b = malloc(bcap);
    if (cl) {
        size_t want = strtoull(cl, NULL, 10);
        while (r->len - r->pos < want)
            if (fill(fd, r) != 0) goto fail;
        b = realloc(b, want + 1);
        memcpy(b, r->buf + r->pos, want);
        blen = want;
        r->pos += want;
    } else if (te && strstr(te, "chunked")) {
        for (;;) {
            char *crlf;
            while (!(crlf = strstr(r->buf + r->pos, "\r\n")))
                if (fill(fd, r) != 0) goto fail;
            size_t n = strtoull(r->buf + r->pos, NULL, 16);
            r->pos = (size_t)(crlf - r->buf) + 2;
            while (r->len - r->pos < n + 2)
                if (fill(fd, r) != 0) goto fail;
            b = realloc(b, blen + n + 1);
            memcpy(b + blen, r->buf + r->pos, n);
            blen += n;
            r->pos += n + 2;
            if (n == 0) break;
        }
    } else { /* body until the connection closes */
        while (fill(fd, r) == 0)
            ;
        b = realloc(b, r->len - r->pos + 1);
        memcpy(b, r->buf + r->pos, r->len - r->pos);
        blen = r->len - r->pos;
        r->pos = r->len;
        *closes = 1;
    }
    b[blen] = 0;
    *body = b;
    free(head);
    return 0;
fail:
    free(b);
    free(head);
    return -1;
}

static uint64_t json_count(const char *body, const char *name)
{
    const char *p = strstr(body, name);
    if (!p) return 0;
    p = strchr(p, ':');
    return p ? strtoull(p + 1, NULL, 10) : 0;
}

static void *worker(void *arg)
{
    (void)arg;
    int fd = -1;
    rbuf r = {0};
    size_t cap = 0;
    char *req = NULL;
    for (;;) {
        size_t i = atomic_fetch_add(&next_batch, 1);
        if (i >= n_batches) break;
        const char *p = data + bounds[i], *e = data + bounds[i + 1];
        size_t need = (size_t)(e - p) + 1024;
        if (need > cap) {
            cap = need * 2;
            req = realloc(req, cap);
        }
        /* body: {"events":[line,line,…]} — newlines become commas */
        char *body = req + 512;
        size_t bl = 0;
        memcpy(body, "{\"events\":[", 11);
        bl = 11;
        while (p < e) {
            const char *nl = memchr(p, '\n', (size_t)(e - p));
            size_t n = nl ? (size_t)(nl - p) : (size_t)(e - p);
            if (n) {
                if (bl > 11) body[bl++] = ',';
                memcpy(body + bl, p, n);
                bl += n;
            }
            p += n + 1;
        }
        memcpy(body + bl, "]}", 2);
        bl += 2;
        char head[512];
        int hl = snprintf(head, sizeof head,
                          "POST %s HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer %s\r\n"
                          "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                          path, host, port, key, bl);
        char *msg = body - hl;
        memcpy(msg, head, (size_t)hl);

        double t = now_s();
        int attempts = 0;
        for (;;) {
            if (attempts++ > 50) {
                fprintf(stderr, "load: batch %zu failed for good\n", i);
                atomic_fetch_add(&failed, 1);
                break;
            }
            if (fd < 0) {
                fd = connect_to();
                r.pos = r.len = 0;
                if (fd < 0) {
                    usleep(100000);
                    atomic_fetch_add(&retries, 1);
                    continue;
                }
            }
            int status, retry_after, closes;
            char *rb = NULL;
            if (send_all(fd, msg, (size_t)hl + bl) != 0 ||
                read_response(fd, &r, &status, &rb, &retry_after, &closes) != 0) {
                close(fd);
                fd = -1;
                atomic_fetch_add(&retries, 1);
                continue;
            }
            if (closes) {
                close(fd);
                fd = -1;
            }
            if (status == 200) {
                atomic_fetch_add(&accepted, json_count(rb, "\"accepted\""));
                atomic_fetch_add(&duplicates, json_count(rb, "\"duplicates\""));
                atomic_fetch_add(&rejected, json_count(rb, "\"rejected\""));
                if (json_count(rb, "\"rejected\"") && !atomic_load(&failed))
                    fprintf(stderr, "load: batch %zu: %.300s\n", i, rb);
                free(rb);
                break;
            }
            if (status == 429 || status == 503) {
                free(rb);
                atomic_fetch_add(&retries, 1);
                usleep(retry_after > 0 ? (useconds_t)retry_after * 1000000 : 100000);
                continue;
            }
            fprintf(stderr, "load: batch %zu: HTTP %d %.300s\n", i, status, rb);
            free(rb);
            atomic_fetch_add(&failed, 1);
            break;
        }
        lat_ms[i] = (now_s() - t) * 1000.0;
    }
    if (fd >= 0) close(fd);
    free(r.buf);
    free(req);
    return NULL;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) goto usage;
        if (!strcmp(argv[i], "--host"))
            host = argv[++i];
        else if (!strcmp(argv[i], "--port"))
            port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--key"))
            key = argv[++i];
        else if (!strcmp(argv[i], "--file"))
            file = argv[++i];
        else if (!strcmp(argv[i], "--batch"))
            batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--conns"))
            conns = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--path"))
            path = argv[++i];
        else
            goto usage;
    }
    if (!port || !key || !file || batch < 1 || conns < 1) goto usage;

    int fd = open(file, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        fprintf(stderr, "load: %s: %s\n", file, strerror(errno));
        return 1;
    }
    data_len = (size_t)st.st_size;
    data = data_len ? mmap(NULL, data_len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0) : "";
    if (data == MAP_FAILED) {
        fprintf(stderr, "load: mmap: %s\n", strerror(errno));
        return 1;
    }
    size_t cap = 1024, lines = 0;
    bounds = malloc(cap * sizeof *bounds);
    bounds[n_batches = 0] = 0;
    for (const char *p = data, *e = data + data_len; p < e;) {
        const char *nl = memchr(p, '\n', (size_t)(e - p));
        p = nl ? nl + 1 : e;
        lines++;
        if (lines % (size_t)batch == 0 || p == e) {
            if (n_batches + 2 > cap) bounds = realloc(bounds, (cap *= 2) * sizeof *bounds);
            bounds[++n_batches] = (size_t)(p - data);
        }
    }
    lat_ms = calloc(n_batches + 1, sizeof *lat_ms);

    double t0 = now_s();
    pthread_t th[256];
    if (conns > 256) conns = 256;
    for (int i = 0; i < conns; i++)
        pthread_create(&th[i], NULL, worker, NULL);
    for (int i = 0; i < conns; i++)
        pthread_join(th[i], NULL);
    double secs = now_s() - t0;

    qsort(lat_ms, n_batches, sizeof *lat_ms, cmp_d);
    printf("events=%zu\nbatches=%zu\nseconds=%.3f\nevents_per_s=%.0f\naccepted=%" PRIu64
           "\nduplicates=%" PRIu64 "\nrejected=%" PRIu64 "\nretries=%" PRIu64 "\nfailed=%" PRIu64
           "\np50_ms=%.1f\np99_ms=%.1f\n",
           lines, n_batches, secs, secs > 0 ? (double)lines / secs : 0.0, (uint64_t)accepted,
           (uint64_t)duplicates, (uint64_t)rejected, (uint64_t)retries, (uint64_t)failed,
           n_batches ? lat_ms[n_batches / 2] : 0.0,
           n_batches ? lat_ms[(size_t)((double)n_batches * 0.99)] : 0.0);
    return failed ? 1 : 0;
usage:
    fprintf(stderr, "usage: load --port P --key WRITE_KEY --file F [--host H] [--batch 1000] "
                    "[--conns 4] [--path /collect]\n");
    return 2;
}
