/* The identity map: distinct ids (anonymous ids and user ids) get dense integers (dids), and
 * persons are sets of dids merged by events that carry both ids and by identify calls.
 *
 * Representation: person[did] is the root of did's set, kept eagerly up to date (union by
 * size: the smaller set's members are relabelled, so each did is relabelled O(log n) times).
 * Queries read person[] directly, so persons are resolved at query time and a merge is
 * retroactive without rewriting any event. user[root] is the identified user of the set; a
 * merge of two sets with different users is refused (PostHog's rule) and counted.
 *
 * Files: ids.dat is a dictionary file (tl_dict) whose entries are a flag byte ('u' user,
 * 'a' anonymous) followed by the id, so did = entry - 1. ident.ops holds 9-byte records
 * (u8 op: 'M' merge / 'E' erase, u32 a, u32 b) replayed in order at load. */
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
    }
    uint32_t d = id->n++;
    id->person[d] = d;
    id->next[d] = d;
    id->size[d] = 1;
    id->user[d] = user ? d : TL_DID_NONE;
    id->is_user[d] = user;
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
        m = id->next[m];
    } while (m != r);
    if (log) log_op(id, 'E', did, 0);
}

int tl_ident__load(tl_ident *id, const char *dir, uint64_t ids_len, uint64_t ops_len, tl_err *err)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/ids.dat", dir);
    int rc = tl_dict__load(&id->ids, path, ids_len, err);
    if (rc) return rc;
    for (uint32_t e = 1; e <= id->ids.n; e++) {
        tl_str k = tl_dict__str(&id->ids, e);
        if (!k.len || (k.p[0] != 'u' && k.p[0] != 'a'))
            return tl_err_set(err, TL_EBADMSG, "%s: entry %u has no kind byte", path, e);
        add_did(id, k.p[0] == 'u');
    }
    snprintf(path, sizeof path, "%s/ident.ops", dir);
    tl_buf b = TL_BUF_INIT;
    rc = tl_read_file(path, &b);
    if (rc == TL_ENOENT && ops_len == 0) rc = 0;
    if (!rc && b.len < ops_len) rc = TL_EBADMSG;
    for (uint64_t off = 0; !rc && off + 9 <= ops_len; off += 9) {
        const char *r = b.p + off;
        uint32_t a = tl_le32(r + 1), c = tl_le32(r + 5);
        if (r[0] == 'M')
            (void)tl_ident__merge(id, a, c, false);
        else if (r[0] == 'E')
            tl_ident__erase(id, a, false);
        else
            rc = TL_EBADMSG;
    }
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
