/* bench/gen.c — the benchmark's data generator: realistic product-analytics events for tally
 * (native NDJSON, in arrival order, duplicates and late events included) and the same events
 * for ClickHouse (TSV, duplicates removed, the person already resolved to a UInt64).
 *
 * Why its own generator: the benchmark must be reproducible from the repository alone, fast
 * (about 4M events in seconds, hence C), and the two outputs must describe exactly the same
 * facts so that the two systems' answers can be compared for equality.
 *
 * Model. A "human" has a country, 1-3 devices (web, ios, android) and a number of sessions
 * spread over the 90 days. Each device has its own anonymous_id. Some humans sign up during one
 * of their sessions (a `sign_up` event carrying anonymous_id and user_id — the identity merge);
 * their other devices mostly log in later (`login`, also carrying both), some never do. After
 * a device has logged in its events carry both ids; purchases of logged-in devices are sent
 * server-side with the user_id only. The canonical person of a device is therefore the
 * human's user if that device ever carried the user_id, else the device itself: exactly the
 * connected components tally resolves at query time, precomputed here for ClickHouse.
 * Sessions are page views plus a shop funnel with drop-off (view_item → add_to_cart →
 * checkout → purchase) and searches. Properties: price (number) and category (string).
 * About 3% of events are re-sent with the same event_id (client retries, at once or up to
 * 12 hours later), and about 4% of mobile sessions arrive 1-72 hours late (offline phones);
 * the NDJSON is in arrival order.
 *
 * Usage: gen [--scale S] [--seed N] [--start-day YYYY-MM-DD] [--days 90] --out DIR
 * Writes DIR/events.ndjson, DIR/events.tsv and DIR/meta.txt (key=value facts for run.sh). */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <time.h>

#include <math.h>

/* ---- random numbers: splitmix64, deterministic for a seed ---------------------------- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t mix(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double unif(void)
{
    return (double)(rnd() >> 11) * (1.0 / 9007199254740992.0);
}

static uint32_t below(uint32_t n)
{
    return (uint32_t)(((rnd() >> 32) * (uint64_t)n) >> 32);
}

static int chance(double p)
{
    return unif() < p;
}

/* ---- reference tables ------------------------------------------------------------------ */

static const struct {
    const char *code;
    double weight;
    double utc_offset_h;
} COUNTRIES[] = {
    {"US", 26, -5}, {"DE", 9, 1},      {"GB", 8, 0},  {"IN", 8, 5.5}, {"FR", 6, 1}, {"BR", 6, -3},
    {"JP", 4, 9},   {"CA", 4, -5},     {"MX", 3, -6}, {"ES", 3, 1},   {"IT", 3, 1}, {"NL", 2, 1},
    {"PL", 2, 1},   {"AU", 2, 10},     {"KR", 2, 9},  {"TR", 2, 3},   {"ID", 2, 7}, {"SE", 1.5, 1},
    {"AR", 1, -3},  {"NP", 0.5, 5.75}, {"ZA", 1, 2},  {"NG", 1, 1},   {"CH", 1, 1}, {"AT", 1, 1},
};
#define N_COUNTRIES (sizeof COUNTRIES / sizeof COUNTRIES[0])

static const char *PLATFORMS[] = {"web", "ios", "android"};
enum { P_WEB, P_IOS, P_ANDROID };

static const char *CATEGORIES[] = {"books",  "electronics", "garden", "toys",   "fashion", "sports",
                                   "beauty", "grocery",     "music",  "office", "pets",    "home"};
#define N_CATEGORIES 12

enum {
    E_PAGE_VIEW,
    E_SEARCH,
    E_VIEW_ITEM,
    E_ADD_TO_CART,
    E_CHECKOUT,
    E_PURCHASE,
    E_SIGN_UP,
    E_LOGIN,
    N_EVENT_TYPES
};
static const char *EVENT_NAMES[] = {"page_view", "search",   "view_item", "add_to_cart",
                                    "checkout",  "purchase", "sign_up",   "login"};

static const char *REFERRERS[] = {"https://www.google.com/", "https://news.ycombinator.com/",
                                  "https://www.facebook.com/", "https://t.co/",
                                  "https://duckduckgo.com/"};

#define N_PRODUCTS 2000
static uint32_t product_price[N_PRODUCTS]; /* cents */

/* ---- the generated world --------------------------------------------------------------- */

typedef struct {
    uint8_t country;
    uint8_t identified;
} human_t;

typedef struct {
    uint32_t human;
    uint8_t platform;
    uint8_t will_login;  /* logs in once the human has an account */
    uint8_t logged_in;   /* during generation: has carried the user_id */
    uint8_t version_lag; /* days behind the release train */
    uint8_t used;        /* has events */
    uint64_t person;     /* canonical person, after generation */
} device_t;

enum { F_USER = 1, F_ANON = 2, F_DUP = 4, F_REFERRER = 8 };

typedef struct {
    int64_t t;   /* event time, ms */
    int64_t arr; /* arrival time, ms: the NDJSON is sorted by it */
    uint32_t id; /* unique event number; a duplicate repeats it */
    uint32_t dev;
    uint32_t sess; /* global session number */
    uint16_t item; /* product, or url variant */
    uint8_t type;
    uint8_t flags;
} ev_t;

static human_t *humans;
static device_t *devices;
static uint32_t n_devices;
static size_t cap_devices;
static ev_t *evs;
static size_t n_evs, cap_evs;
static uint32_t next_id, next_sess;
static int64_t t0_ms; /* first day, 00:00 UTC */
static int n_days = 90;

static void die(const char *msg)
{
    fprintf(stderr, "gen: %s\n", msg);
    exit(1);
}

static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return p;
    size_t c = *cap ? *cap : 1024;
    while (c < need)
        c *= 2;
    p = realloc(p, c * elem);
    if (!p) die("out of memory");
    *cap = c;
    return p;
}

static int push(int64_t t, uint32_t dev, uint32_t sess, uint8_t type, uint8_t flags, uint16_t item)
{
    if (t >= t0_ms + (int64_t)n_days * 86400000LL)
        return 0; /* a session running past the last day: keep the data inside the range */
    devices[dev].used = 1;
    evs = grow(evs, &cap_evs, n_evs + 1, sizeof *evs);
    ev_t *e = &evs[n_evs++];
    e->t = t;
    e->arr = t + 50 + below(1500); /* network latency */
    e->id = next_id++;
    e->dev = dev;
    e->sess = sess;
    e->type = type;
    e->flags = flags;
    e->item = item;
    return 1;
}

static uint32_t pick_country(void)
{
    static double total;
    if (total == 0)
        for (size_t i = 0; i < N_COUNTRIES; i++)
            total += COUNTRIES[i].weight;
    double x = unif() * total;
    for (size_t i = 0; i < N_COUNTRIES; i++) {
        if (x < COUNTRIES[i].weight) return (uint32_t)i;
        x -= COUNTRIES[i].weight;
    }
    return 0;
}

static uint16_t pick_product(void)
{
    double u = unif();
    return (uint16_t)(u * u * u * N_PRODUCTS); /* a few products are popular */
}

/* Local time of day for a session start: evening-peaked curve, shifted by the country's
 * offset, so that a country's activity straddles UTC day boundaries realistically. */
static int64_t session_start(int day, uint32_t country)
{
    double h;
    for (;;) {
        h = unif() * 24.0;
        double w = 0.25 + 0.75 * (0.5 - 0.5 * cos((h - 2.0) / 24.0 * 2 * M_PI)); /* peak 14h */
        if (h > 18 && h < 22.5) w += 0.35;
        if (unif() * 1.4 < w) break;
    }
    double utc_h = h - COUNTRIES[country].utc_offset_h;
    int64_t ms = (int64_t)day * 86400000LL + (int64_t)(utc_h * 3600000.0);
    int64_t lo = 0, hi = (int64_t)n_days * 86400000LL - 1;
    if (ms < lo) ms = lo + below(3600000);
    if (ms > hi) ms = hi - below(3600000);
    return t0_ms + ms;
}

/* One session of device `dev` starting at t; `signup` / `login`: it identifies in it, and its
 * events carry the user id from then on. */
static void gen_session(uint32_t dev, int64_t t, int signup, int login)
{
    device_t *d = &devices[dev];
    uint32_t sess = next_sess++;
    size_t first = n_evs;
    int web = d->platform == P_WEB;
    uint8_t idf = d->logged_in ? (F_USER | F_ANON) : F_ANON;

#define STEP() (t += 3000 + (int64_t)below(90000))
    /* landing page */
    push(t, dev, sess, E_PAGE_VIEW, idf | (web && chance(0.4) ? F_REFERRER : 0), below(4));
    if (signup || login) {
        STEP();
        if (push(t, dev, sess, signup ? E_SIGN_UP : E_LOGIN, F_USER | F_ANON, 0)) {
            d->logged_in = 1;
            idf = F_USER | F_ANON;
        }
    }
    int pages = 0;
    while (pages < 12 && chance(0.6)) {
        STEP();
        push(t, dev, sess, E_PAGE_VIEW, idf, below(4));
        pages++;
    }
    if (chance(0.3)) {
        STEP();
        push(t, dev, sess, E_SEARCH, idf, below(N_PRODUCTS));
    }
    if (chance(0.6)) {
        int views = 1 + (int)below(4);
        uint16_t item = 0;
        for (int i = 0; i < views; i++) {
            STEP();
            item = pick_product();
            push(t, dev, sess, E_VIEW_ITEM, idf, item);
        }
        if (chance(0.3)) {
            STEP();
            push(t, dev, sess, E_ADD_TO_CART, idf, item);
            if (chance(0.5)) {
                STEP();
                push(t, dev, sess, E_CHECKOUT, idf, item);
                if (chance(0.6)) {
                    STEP();
                    /* server-side purchase: the backend only knows the user */
                    push(t, dev, sess, E_PURCHASE, d->logged_in ? F_USER : F_ANON, item);
                }
            }
        }
    }
#undef STEP
    /* offline phone: the whole session arrives 1-72 h late */
    if (!web && chance(0.04)) {
        int64_t delay = 3600000LL + (int64_t)(unif() * 71 * 3600000.0);
        for (size_t i = first; i < n_evs; i++)
            evs[i].arr += delay;
    }
}

static void gen_human(uint32_t h)
{
    human_t *hu = &humans[h];
    hu->country = (uint8_t)pick_country();

    int nd = chance(0.6) ? 1 : chance(0.75) ? 2 : 3;
    uint32_t dev0 = n_devices;
    for (int i = 0; i < nd; i++) {
        devices = grow(devices, &cap_devices, n_devices + 1, sizeof *devices);
        device_t *d = &devices[n_devices++];
        memset(d, 0, sizeof *d);
        d->human = h;
        double u = unif();
        d->platform = u < 0.5 ? P_WEB : u < 0.75 ? P_IOS : P_ANDROID;
        d->will_login = i == 0 ? 1 : chance(0.85);
        d->version_lag = (uint8_t)(chance(0.7) ? below(4) : below(40));
    }

    /* activity: many one-off visitors, some regulars, a few heavy users */
    double u = unif();
    int n_sess;
    int span;
    if (u < 0.45) {
        n_sess = 1, span = 1;
    } else if (u < 0.80) {
        n_sess = 2 + (int)below(5), span = 10 + (int)below(40);
    } else if (u < 0.95) {
        n_sess = 8 + (int)below(20), span = 30 + (int)below(61);
    } else {
        n_sess = 30 + (int)below(90), span = n_days;
    }
    int start = (int)below((uint32_t)n_days);
    if (span >= n_days) start = (int)below(10);
    int end = start + span;
    if (end > n_days) end = n_days;

    int64_t *starts = malloc(sizeof *starts * (size_t)n_sess);
    if (!starts) die("out of memory");
    for (int i = 0; i < n_sess; i++)
        starts[i] = session_start(start + (int)below((uint32_t)(end - start)), hu->country);
    for (int i = 1; i < n_sess; i++) /* insertion sort: n_sess is small */
        for (int j = i; j > 0 && starts[j] < starts[j - 1]; j--) {
            int64_t x = starts[j];
            starts[j] = starts[j - 1];
            starts[j - 1] = x;
        }

    hu->identified = chance(n_sess > 1 ? 0.55 : 0.15);
    int id_at = hu->identified ? (int)below((uint32_t)n_sess) : n_sess;
    /* extra devices appear from some session on */
    int avail_from[3] = {0, 1 + (int)below((uint32_t)n_sess), 1 + (int)below((uint32_t)n_sess)};
    for (int i = 0; i < n_sess; i++) {
        int k = 0;
        if (nd > 1 && i >= avail_from[1] && chance(0.4)) k = 1;
        if (nd > 2 && i >= avail_from[2] && chance(0.3)) k = 2;
        if (i == id_at) k = 0; /* signs up on the first device */
        device_t *d = &devices[dev0 + (uint32_t)k];
        int signup = i == id_at;
        int login = !signup && i > id_at && !d->logged_in && d->will_login;
        gen_session(dev0 + (uint32_t)k, starts[i], signup, login);
    }
    free(starts);
}

/* ---- output ---------------------------------------------------------------------------- */

typedef struct {
    FILE *f;
    char *buf;
    size_t len, cap;
} out_t;

static void out_flush(out_t *o)
{
    if (o->len && fwrite(o->buf, 1, o->len, o->f) != o->len) die(strerror(errno));
    o->len = 0;
}

static void out_open(out_t *o, const char *path)
{
    o->f = fopen(path, "wb");
    if (!o->f) {
        fprintf(stderr, "gen: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    o->cap = 1 << 22;
    o->len = 0;
    o->buf = malloc(o->cap);
    if (!o->buf) die("out of memory");
}

static void out_close(out_t *o)
{
    out_flush(o);
    if (fclose(o->f) != 0) die(strerror(errno));
    free(o->buf);
}

static inline void put(out_t *o, const char *s, size_t n)
{
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}
#define PUTS(o, lit) put((o), (lit), sizeof(lit) - 1)

static inline void puts_z(out_t *o, const char *s)
{
    put(o, s, strlen(s));
}

static inline void put_u64(out_t *o, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        o->buf[o->len++] = tmp[--n];
}

static inline void put_hex(out_t *o, uint64_t v, int digits)
{
    static const char hx[] = "0123456789abcdef";
    for (int i = digits - 1; i >= 0; i--)
        o->buf[o->len++] = hx[(v >> (4 * i)) & 15];
}

/* UUID-looking id from a number and a salt */
static inline void put_uuid(out_t *o, uint64_t n, uint64_t salt)
{
    uint64_t a = mix(n ^ salt), b = mix(a ^ n);
    put_hex(o, a >> 32, 8);
    PUTS(o, "-");
    put_hex(o, (a >> 16) & 0xffff, 4);
    PUTS(o, "-4");
    put_hex(o, a & 0xfff, 3);
    PUTS(o, "-");
    put_hex(o, 0x8000 | (b >> 48 & 0x3fff), 4);
    PUTS(o, "-");
    put_hex(o, b & 0xffffffffffffull, 12);
}

static inline void put_price(out_t *o, uint32_t cents)
{
    put_u64(o, cents / 100);
    PUTS(o, ".");
    o->buf[o->len++] = (char)('0' + cents / 10 % 10);
    o->buf[o->len++] = (char)('0' + cents % 10);
}

static inline void put_user(out_t *o, uint32_t human)
{
    PUTS(o, "user_");
    put_u64(o, human);
}

static void put_version(out_t *o, const device_t *d, int64_t t)
{
    int day = (int)((t - t0_ms) / 86400000LL) - d->version_lag;
    int minor = 20 + (day < 0 ? 0 : day / 14);
    if (d->platform == P_WEB) {
        PUTS(o, "web-");
        put_u64(o, 2024);
        PUTS(o, ".");
        put_u64(o, (uint64_t)minor);
    } else {
        PUTS(o, "4.");
        put_u64(o, (uint64_t)minor);
        PUTS(o, ".");
        put_u64(o, (uint64_t)((day < 0 ? 0 : day) % 14 / 5));
    }
}

static void put_url(out_t *o, const ev_t *e, int web)
{
    if (web)
        PUTS(o, "https://shop.example.com/");
    else
        PUTS(o, "app://");
    switch (e->type) {
    case E_PAGE_VIEW:
        switch (e->item % 4) {
        case 0:
            if (!web) PUTS(o, "home");
            break;
        case 1: PUTS(o, "deals"); break;
        case 2:
            PUTS(o, "category/");
            puts_z(o, CATEGORIES[(e->sess + e->id) % N_CATEGORIES]);
            break;
        default: PUTS(o, "help"); break;
        }
        break;
    case E_SEARCH: PUTS(o, "search"); break;
    case E_VIEW_ITEM:
    case E_ADD_TO_CART:
        PUTS(o, "product/");
        put_u64(o, e->item);
        break;
    case E_CHECKOUT:
    case E_PURCHASE: PUTS(o, "checkout"); break;
    case E_SIGN_UP: PUTS(o, "signup"); break;
    default: PUTS(o, "login"); break;
    }
}

static int is_commerce(int type)
{
    return type == E_VIEW_ITEM || type == E_ADD_TO_CART || type == E_CHECKOUT || type == E_PURCHASE;
}

static void write_ndjson(out_t *o, const ev_t *e)
{
    const device_t *d = &devices[e->dev];
    const human_t *hu = &humans[d->human];
    int web = d->platform == P_WEB;
    if (o->cap - o->len < 4096) out_flush(o);
    PUTS(o, "{\"event\":\"");
    puts_z(o, EVENT_NAMES[e->type]);
    PUTS(o, "\",\"event_id\":\"");
    put_uuid(o, e->id, 0xe7e7);
    if (e->flags & F_ANON) {
        PUTS(o, "\",\"anonymous_id\":\"");
        put_uuid(o, e->dev, 0xa0a0);
    }
    if (e->flags & F_USER) {
        PUTS(o, "\",\"user_id\":\"");
        put_user(o, d->human);
    }
    PUTS(o, "\",\"session_id\":\"");
    put_hex(o, mix(e->sess), 16);
    PUTS(o, "\",\"timestamp\":");
    put_u64(o, (uint64_t)e->t);
    PUTS(o, ",\"platform\":\"");
    puts_z(o, PLATFORMS[d->platform]);
    PUTS(o, "\",\"app_version\":\"");
    put_version(o, d, e->t);
    PUTS(o, "\",\"country\":\"");
    puts_z(o, COUNTRIES[hu->country].code);
    PUTS(o, "\",\"url\":\"");
    put_url(o, e, web);
    if (e->flags & F_REFERRER) {
        PUTS(o, "\",\"referrer\":\"");
        puts_z(o, REFERRERS[e->sess % 5]);
    }
    PUTS(o, "\"");
    if (is_commerce(e->type)) {
        PUTS(o, ",\"properties\":{\"price\":");
        put_price(o, product_price[e->item]);
        PUTS(o, ",\"category\":\"");
        puts_z(o, CATEGORIES[e->item % N_CATEGORIES]);
        PUTS(o, "\"}");
    } else if (e->type == E_SEARCH) {
        PUTS(o, ",\"properties\":{\"category\":\"");
        puts_z(o, CATEGORIES[e->item % N_CATEGORIES]);
        PUTS(o, "\"}");
    }
    PUTS(o, "}\n");
}

/* TSV columns, in the order of the ClickHouse table in run.sh:
 * event person time event_id anonymous_id user_id session_id platform app_version country
 * url referrer price category */
static void write_tsv(out_t *o, const ev_t *e)
{
    const device_t *d = &devices[e->dev];
    const human_t *hu = &humans[d->human];
    if (o->cap - o->len < 4096) out_flush(o);
    puts_z(o, EVENT_NAMES[e->type]);
    PUTS(o, "\t");
    put_u64(o, d->person);
    PUTS(o, "\t");
    put_u64(o, (uint64_t)(e->t / 1000));
    PUTS(o, "\t");
    put_uuid(o, e->id, 0xe7e7);
    PUTS(o, "\t");
    if (e->flags & F_ANON) put_uuid(o, e->dev, 0xa0a0);
    PUTS(o, "\t");
    if (e->flags & F_USER) put_user(o, d->human);
    PUTS(o, "\t");
    put_hex(o, mix(e->sess), 16);
    PUTS(o, "\t");
    puts_z(o, PLATFORMS[d->platform]);
    PUTS(o, "\t");
    put_version(o, d, e->t);
    PUTS(o, "\t");
    puts_z(o, COUNTRIES[hu->country].code);
    PUTS(o, "\t");
    put_url(o, e, d->platform == P_WEB);
    PUTS(o, "\t");
    if (e->flags & F_REFERRER) puts_z(o, REFERRERS[e->sess % 5]);
    PUTS(o, "\t");
    if (is_commerce(e->type))
        put_price(o, product_price[e->item]);
    else
        PUTS(o, "0");
    PUTS(o, "\t");
    if (is_commerce(e->type) || e->type == E_SEARCH) puts_z(o, CATEGORIES[e->item % N_CATEGORIES]);
    PUTS(o, "\n");
}

static int by_arrival(const void *a, const void *b)
{
    const ev_t *x = a, *y = b;
    if (x->arr != y->arr) return x->arr < y->arr ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int64_t parse_day(const char *s)
{
    int y, m, d;
    if (sscanf(s, "%d-%d-%d", &y, &m, &d) != 3) die("--start-day wants YYYY-MM-DD");
    /* days from civil (Howard Hinnant) */
    y -= m <= 2;
    int era = (y >= 0 ? y : y - 399) / 400;
    int yoe = y - era * 400;
    int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return ((int64_t)era * 146097 + doe - 719468) * 86400000LL;
}

int main(int argc, char **argv)
{
    double scale = 1.0;
    uint64_t seed = 42;
    const char *out_dir = NULL, *start_day = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--scale") && i + 1 < argc)
            scale = atof(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out_dir = argv[++i];
        else if (!strcmp(argv[i], "--start-day") && i + 1 < argc)
            start_day = argv[++i];
        else if (!strcmp(argv[i], "--days") && i + 1 < argc)
            n_days = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: gen [--scale S] [--seed N] [--start-day YYYY-MM-DD] "
                            "[--days N] --out DIR\n");
            return 2;
        }
    }
    if (!out_dir || scale <= 0 || n_days < 1) die("need --out DIR, a positive --scale and --days");
    rng_state = seed;
    if (start_day) {
        t0_ms = parse_day(start_day);
    } else { /* the last n_days full days before today (UTC) */
        int64_t today = (int64_t)time(NULL) / 86400 * 86400000LL;
        t0_ms = today - (int64_t)n_days * 86400000LL;
    }

    for (int i = 0; i < N_PRODUCTS; i++) /* log-uniform 1.99 .. ~500 */
        product_price[i] = (uint32_t)(exp(log(199) + unif() * log(250.0))) / 100 * 100 + 99;

    uint32_t n_humans = (uint32_t)(105000.0 * scale);
    if (n_humans < 1) n_humans = 1;
    humans = calloc(n_humans, sizeof *humans);
    if (!humans) die("out of memory");
    for (uint32_t h = 0; h < n_humans; h++)
        gen_human(h);
    size_t n_unique = n_evs;

    /* canonical persons: the user when the device ever carried the user id */
    uint64_t n_persons = 0;
    for (uint32_t i = 0; i < n_devices; i++) {
        device_t *d = &devices[i];
        d->person = d->logged_in ? (uint64_t)d->human + 1 : (1ull << 32) + i;
    }
    for (uint32_t h = 0, i = 0; h < n_humans; h++) {
        int user_counted = 0;
        for (; i < n_devices && devices[i].human == h; i++) {
            if (!devices[i].used) continue;
            if (!devices[i].logged_in)
                n_persons++;
            else if (!user_counted)
                n_persons++, user_counted = 1;
        }
    }

    /* client retries: the same event (same event_id) sent again — a fifth at once (beacon and
     * XHR both fired), the rest from a retry queue 1 min to 12 h later, mostly soon; most
     * land in a later request than the original, so dedup must look beyond one batch */
    size_t n_dups = 0;
    for (size_t i = 0; i < n_unique; i++) {
        if (!chance(0.03)) continue;
        evs = grow(evs, &cap_evs, n_evs + 1, sizeof *evs);
        ev_t *e = &evs[n_evs++];
        *e = evs[i];
        e->flags |= F_DUP;
        e->arr += chance(0.2) ? 1 : 60000 + (int64_t)(unif() * unif() * 12 * 3600000.0);
        n_dups++;
    }
    qsort(evs, n_evs, sizeof *evs, by_arrival);

    char path[4096];
    out_t nd, tsv;
    snprintf(path, sizeof path, "%s/events.ndjson", out_dir);
    out_open(&nd, path);
    snprintf(path, sizeof path, "%s/events.tsv", out_dir);
    out_open(&tsv, path);
    size_t late = 0;
    int64_t max_arr = 0;
    for (size_t i = 0; i < n_evs; i++) {
        const ev_t *e = &evs[i];
        write_ndjson(&nd, e);
        if (!(e->flags & F_DUP)) write_tsv(&tsv, e);
        if (!(e->flags & F_DUP) && e->t < max_arr - 3600000LL) late++;
        if (e->arr > max_arr) max_arr = e->arr;
    }
    out_close(&nd);
    out_close(&tsv);

    snprintf(path, sizeof path, "%s/meta.txt", out_dir);
    FILE *m = fopen(path, "w");
    if (!m) die(strerror(errno));
    time_t t0s = (time_t)(t0_ms / 1000), t1s = t0s + (time_t)(n_days - 1) * 86400;
    char d0[16], d1[16];
    strftime(d0, sizeof d0, "%Y-%m-%d", gmtime(&t0s));
    strftime(d1, sizeof d1, "%Y-%m-%d", gmtime(&t1s));
    fprintf(m,
            "scale=%g\nseed=%" PRIu64 "\nfrom=%s\nto=%s\nfrom_epoch=%" PRId64 "\ndays=%d\n"
            "events_sent=%zu\nevents_unique=%zu\nduplicates=%zu\nlate_over_1h=%zu\n"
            "humans=%u\ndevices=%u\npersons=%" PRIu64 "\n",
            scale, seed, d0, d1, t0_ms / 1000, n_days, n_evs, n_unique, n_dups, late, n_humans,
            n_devices, n_persons);
    if (fclose(m) != 0) die(strerror(errno));
    fprintf(stderr,
            "gen: %zu events sent (%zu unique, %zu duplicates, %zu late > 1 h), %u humans, "
            "%u devices, %" PRIu64 " persons, %s .. %s\n",
            n_evs, n_unique, n_dups, late, n_humans, n_devices, n_persons, d0, d1);
    return 0;
}
