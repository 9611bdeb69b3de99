/* The identity map: distinct ids (anonymous ids and user ids) get dense integers (dids), and
 * persons are sets of dids merged by events that carry both ids and by identify calls.
 *
 * Representation: person[did] is the root of did's set, kept eagerly up to date (union by
 * size: the smaller set's members are relabelled, so each did is relabelled O(log n) times).
 * Queries read person[] directly, so persons are resolved at query time and a merge is
 * retroactive without rewriting any event. user[root] is the identified user of the set; a
 * merge of two sets with different users is refused (PostHog's rule) and counted.
 *
 * Person properties ($set / $set_once from user_properties) are kept per did, one entry per
 * (did, key) updated in place, and combined over the person's dids when read, so they follow
 * merges like everything else here.
 *
 * Files: ids.dat is a dictionary file (tl_dict) whose entries are a flag byte ('u' user,
 * 'a' anonymous) followed by the id, so did = entry - 1. An erased person's entries are
 * scrubbed there (dead entries, see dict.c) once a checkpoint records the erasure; the did
 * stays taken and erased, and the same text seen again later is a new distinct id. ident.ops holds
 * 9-byte records (u8 op, 8 bytes) replayed in order at load: 'M' merge (u32 a, u32 b), 'E' erase
 * (u32 did), and a property as three records: 'S' ($set) or 'O' ($set_once) with u32 did, u32 key;
 * 'T' with i64 ts; 'N' with an f64 or 'V' with a u32 string id. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <unistd.h>

#include "store/store_int.h"
#include "util/io.h"

void tl_ident__init(tl_ident *id)
{
    memset(id, 0, sizeof *id);
    tl_dict__init(&id->ids);
}

void tl_ident__fini(tl_ident *id)
{
    tl_dict__fini(&id->ids);
    free(id->person);
    free(id->next);
    free(id->size);
    free(id->user);
    free(id->is_user);
    free(id->props);
    free(id->phead);
    tl_buf_fini(&id->ops);
    memset(id, 0, sizeof *id);
}

static void add_did(tl_ident *id, bool user)
{
    if (id->n == id->cap) {
        id->cap = id->cap ? id->cap * 2 : 1024;
        id->person = tl_xrealloc(id->person, id->cap * sizeof *id->person);
        id->next = tl_xrealloc(id->next, id->cap * sizeof *id->next);
        id->size = tl_xrealloc(id->size, id->cap * sizeof *id->size);
        id->user = tl_xrealloc(id->user, id->cap * sizeof *id->user);
        id->is_user = tl_xrealloc(id->is_user, id->cap);
        id->phead = tl_xrealloc(id->phead, id->cap * sizeof *id->phead);
    }
    uint32_t d = id->n++;
    id->person[d] = d;
    id->next[d] = d;
    id->size[d] = 1;
    id->user[d] = user ? d : TL_DID_NONE;
    id->is_user[d] = user;
    id->phead[d] = 0;
}

uint32_t tl_ident__did(tl_ident *id, tl_str s, bool user, bool create)
{
    /* The key is flag byte + id, so a user id and an anonymous id with the same text are
     * distinct ids (a device id that happens to equal a user name is not that user). */
    char stackbuf[256];
    char *k = s.len + 1 <= sizeof stackbuf ? stackbuf : tl_xmalloc(s.len + 1);
    k[0] = user ? 'u' : 'a';
    memcpy(k + 1, s.p, s.len);
    tl_str key = {k, s.len + 1};
    uint32_t e = tl_dict__find(&id->ids, key);
    if (!e && create) {
        e = tl_dict__intern(&id->ids, key);
        add_did(id, user);
    }
    if (k != stackbuf) free(k);
    return e ? e - 1 : TL_DID_NONE;
}

static void log_op(tl_ident *id, char op, uint32_t a, uint32_t b)
{
    tl_buf_addc(&id->ops, op);
    tl_buf_u32(&id->ops, a);
    tl_buf_u32(&id->ops, b);
}

int tl_ident__merge(tl_ident *id, uint32_t a, uint32_t b, bool log)
{
    if (a >= id->n || b >= id->n) return TL_EINVAL;
    uint32_t ra = id->person[a], rb = id->person[b];
    if (ra == TL_PERSON_ERASED || rb == TL_PERSON_ERASED)
        return 0; /* erased persons stay erased; nothing to merge into */
    if (ra == rb) return 0;
    if (id->user[ra] != TL_DID_NONE && id->user[rb] != TL_DID_NONE) {
        id->refused++;
        return TL_EEXIST;
    }
    if (id->size[ra] < id->size[rb]) {
        uint32_t t = ra;
        ra = rb;
        rb = t;
    }
    /* Relabel rb's members, then splice the two circular lists. */
    uint32_t m = rb;
    do {
        id->person[m] = ra;
        m = id->next[m];
    } while (m != rb);
    uint32_t na = id->next[ra];
    id->next[ra] = id->next[rb];
    id->next[rb] = na;
    id->size[ra] += id->size[rb];
    if (id->user[ra] == TL_DID_NONE) id->user[ra] = id->user[rb];
    id->merges++;
    if (log) log_op(id, 'M', a, b);
    return 0;
}

void tl_ident__erase(tl_ident *id, uint32_t did, bool log)
{
    if (did >= id->n || id->person[did] == TL_PERSON_ERASED) return;
    uint32_t r = id->person[did], m = r;
    do {
        id->person[m] = TL_PERSON_ERASED;
        id->phead[m] = 0; /* the properties are forgotten with the person */
        id->erased++;
        m = id->next[m];
    } while (m != r);
    if (log) log_op(id, 'E', did, 0);
}

static void log_u64(tl_ident *id, char op, uint64_t v)
{
    tl_buf_addc(&id->ops, op);
    tl_buf_u64(&id->ops, v);
}

void tl_ident__set_prop(tl_ident *id, uint32_t did, uint32_t key, uint8_t type, int64_t ts,
                        double num, uint32_t str, bool log)
{
    if (did >= id->n || id->person[did] == TL_PERSON_ERASED) return;
    if (log) {
        log_op(id, type & TL_PV_ONCE ? 'O' : 'S', did, key);
        log_u64(id, 'T', (uint64_t)ts);
        uint64_t bits;
        memcpy(&bits, &num, 8);
        if (TL_PV_TYPE(type) == TL_PV_NUM)
            log_u64(id, 'N', bits);
        else
            log_op(id, 'V', str, 0);
    }
    bool once = type & TL_PV_ONCE;
    tl_pprop *p = NULL;
    for (uint32_t i = id->phead[did]; i; i = id->props[i - 1].next) {
        tl_pprop *q = &id->props[i - 1];
        if (q->key == key && !(q->type & TL_PV_ONCE) == !once) {
            p = q;
            break;
        }
    }
    if (p) {
        if (once ? ts >= p->ts : ts < p->ts) return; /* the kept value wins */
    } else {
        if (id->n_props == id->cap_props) {
            id->cap_props = id->cap_props ? id->cap_props * 2 : 256;
            id->props = tl_xrealloc(id->props, id->cap_props * sizeof *id->props);
        }
        p = &id->props[id->n_props++];
        p->did = did;
        p->key = key;
        p->next = id->phead[did];
        id->phead[did] = id->n_props;
    }
    p->type = type;
    p->ts = ts;
    p->num = TL_PV_TYPE(type) == TL_PV_NUM ? num : 0;
    p->str = TL_PV_TYPE(type) == TL_PV_NUM ? 0 : str;
}

static int pp_cmp(const void *a, const void *b)
{
    const tl_pprop *x = *(const tl_pprop *const *)a, *y = *(const tl_pprop *const *)b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    bool ox = x->type & TL_PV_ONCE, oy = y->type & TL_PV_ONCE;
    if (ox != oy) return ox ? 1 : -1;                           /* $set before $set_once */
    if (x->ts != y->ts) return (x->ts > y->ts) == !ox ? -1 : 1; /* the winner first */
    return x < y ? 1 : -1;                                      /* the later entry first */
}

void tl_ident__person_props(const tl_ident *id, uint32_t did, tl_ident_prop_fn fn, void *ctx)
{
    if (did >= id->n || id->person[did] == TL_PERSON_ERASED) return;
    uint32_t r = id->person[did], m = r, n = 0, cap = 16;
    const tl_pprop **all = tl_xmalloc(cap * sizeof *all);
    do {
        for (uint32_t i = id->phead[m]; i; i = id->props[i - 1].next) {
            if (n == cap) {
                cap *= 2;
                all = tl_xrealloc(all, cap * sizeof *all);
            }
            all[n++] = &id->props[i - 1];
        }
        m = id->next[m];
    } while (m != r);
    qsort(all, n, sizeof *all, pp_cmp);
    for (uint32_t i = 0; i < n; i++)
        if (!i || all[i]->key != all[i - 1]->key) fn(ctx, all[i]);
    free(all);
}

int tl_ident__load(tl_ident *id, const char *dir, uint64_t ids_len, uint64_t ops_len, tl_err *err)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/ids.dat", dir);
    int rc = tl_dict__load(&id->ids, path, ids_len, err);
    if (rc) return rc;
    for (uint32_t e = 1; e <= id->ids.n; e++) {
        tl_str k = tl_dict__str(&id->ids, e);
        if (tl_dict__dead(&id->ids, e)) { /* scrubbed: its person is erased (ident.ops) */
            add_did(id, false);
            continue;
        }
        if (!k.len || (k.p[0] != 'u' && k.p[0] != 'a'))
            return tl_err_set(err, TL_EBADMSG, "%s: entry %u has no kind byte", path, e);
        add_did(id, k.p[0] == 'u');
    }
    snprintf(path, sizeof path, "%s/ident.ops", dir);
    tl_buf b = TL_BUF_INIT;
    rc = tl_read_file(path, &b);
    if (rc == TL_ENOENT && ops_len == 0) rc = 0;
    if (!rc && b.len < ops_len) rc = TL_EBADMSG;
    uint32_t pdid = 0, pkey = 0;
    uint8_t ptype = 0;
    int64_t pts = 0;
    int pstate = 0; /* 1 after 'S'/'O', 2 after 'T' */
    for (uint64_t off = 0; !rc && off + 9 <= ops_len; off += 9) {
        const char *r = b.p + off;
        uint32_t a = tl_le32(r + 1), c = tl_le32(r + 5);
        if (pstate == 1 && r[0] != 'T') rc = TL_EBADMSG;
        if (pstate == 2 && r[0] != 'N' && r[0] != 'V') rc = TL_EBADMSG;
        if (rc) break;
        switch (r[0]) {
        case 'M': (void)tl_ident__merge(id, a, c, false); break;
        case 'E': tl_ident__erase(id, a, false); break;
        case 'S':
        case 'O':
            pdid = a;
            pkey = c;
            ptype = r[0] == 'O' ? TL_PV_ONCE : 0;
            pstate = 1;
            break;
        case 'T':
            if (pstate != 1) rc = TL_EBADMSG;
            pts = (int64_t)tl_le64(r + 1);
            pstate = 2;
            break;
        case 'N':
        case 'V': {
            if (pstate != 2) {
                rc = TL_EBADMSG;
                break;
            }
            uint64_t bits = tl_le64(r + 1);
            double num;
            memcpy(&num, &bits, 8);
            if (r[0] == 'N')
                tl_ident__set_prop(id, pdid, pkey, ptype | TL_PV_NUM, pts, num, 0, false);
            else
                tl_ident__set_prop(id, pdid, pkey, ptype | TL_PV_STR, pts, 0, a, false);
            pstate = 0;
            break;
        }
        default: rc = TL_EBADMSG;
        }
    }
    if (!rc && pstate) ops_len -= (uint64_t)pstate * 9; /* a property cut by a crash */
    tl_buf_fini(&b);
    if (rc) return tl_err_set(err, rc, "%s: %s", path, tl_strerror(rc));
    if (truncate(path, (off_t)ops_len) < 0 && ops_len > 0)
        return tl_err_set(err, -errno, "%s: truncate", path);
    id->ops_len = ops_len;
    return 0;
}

int tl_ident__sync(tl_ident *id, const char *dir, tl_err *err)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/ids.dat", dir);
    int rc = tl_dict__sync(&id->ids, path, err);
    if (rc || !id->ops.len) return rc;
    snprintf(path, sizeof path, "%s/ident.ops", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    rc = fd < 0 ? -errno : 0;
    if (!rc) rc = tl_pwrite_all(fd, id->ops.p, id->ops.len, (off_t)id->ops_len);
    if (!rc) rc = tl_fdatasync(fd);
    if (fd >= 0) close(fd);
    if (rc) return tl_err_set(err, rc, "%s: %s", path, tl_strerror(rc));
    id->ops_len += id->ops.len;
    id->ops.len = 0;
    return 0;
}
