/* Unit tests of the projection cache (src/store/proj.c): a miss then a hit, keys that differ in
 * any one field, pins that keep an entry past the budget, least-recently-used eviction once
 * unpinned, two threads putting the same key (one copy wins, the other is freed), and the
 * counters. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* clang-format off */
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <pthread.h>

#include "store/store_int.h"

static void *blob(uint32_t v, size_t n)
{
    uint32_t *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++)
        p[i] = v;
    return p;
}

static void test_miss_then_hit(void **state)
{
    (void)state;
    tl_proj *pj = tl_proj__new(1 << 20);
    tl_pkey k = {7, 1, 3, 0, 42};
    tl_pent *pin;
    assert_null(tl_proj__get(pj, &k, &pin));
    assert_null(pin);
    const uint32_t *v = tl_proj__put(pj, &k, blob(5, 16), 64, &pin);
    assert_non_null(pin);
    assert_int_equal(v[15], 5);
    tl_proj__unpin(pj, pin);
    const uint32_t *w = tl_proj__get(pj, &k, &pin);
    assert_ptr_equal(w, v);
    tl_proj__unpin(pj, pin);
    /* each field of the key tells entries apart */
    tl_pkey other[] = {
        {8, 1, 3, 0, 42}, {7, 2, 3, 0, 42}, {7, 1, 4, 0, 42}, {7, 1, 3, 1, 42}, {7, 1, 3, 0, 43}};
    for (size_t i = 0; i < sizeof other / sizeof *other; i++) {
        assert_null(tl_proj__get(pj, &other[i], &pin));
        tl_proj__unpin(pj, pin); /* NULL-safe */
    }
    uint64_t bytes, hits, misses;
    tl_proj__stats(pj, &bytes, &hits, &misses);
    assert_int_equal(bytes, 64);
    assert_int_equal(hits, 1);
    assert_int_equal(misses, 6);
    tl_proj__free(pj);
}

static void test_pins_and_lru(void **state)
{
    (void)state;
    tl_proj *pj = tl_proj__new(300); /* room for three 100-byte entries */
    tl_pent *pin[5];
    for (uint32_t i = 0; i < 5; i++) {
        tl_pkey k = {i, 0, 1, 0, 9};
        tl_proj__put(pj, &k, blob(i, 25), 100, &pin[i]);
    }
    /* all pinned: over the budget, nothing can go */
    uint64_t bytes, hits, misses;
    tl_proj__stats(pj, &bytes, &hits, &misses);
    assert_int_equal(bytes, 500);
    for (uint32_t i = 0; i < 5; i++)
        tl_proj__unpin(pj, pin[i]); /* 0 and 1 go as soon as they are unpinned */
    tl_proj__stats(pj, &bytes, &hits, &misses);
    assert_int_equal(bytes, 300);
    tl_pent *p;
    for (uint32_t i = 0; i < 5; i++) {
        tl_pkey k = {i, 0, 1, 0, 9};
        const uint32_t *v = tl_proj__get(pj, &k, &p);
        if (i < 2) {
            assert_null(v);
        } else {
            assert_non_null(v);
            assert_int_equal(v[24], i);
        }
        tl_proj__unpin(pj, p);
    }
    /* 2 is now the least recently used: a new entry evicts it, not 3 or 4 */
    tl_pkey k2 = {2, 0, 1, 0, 9}, k5 = {5, 0, 1, 0, 9}, k3 = {3, 0, 1, 0, 9};
    assert_non_null(tl_proj__get(pj, &k3, &p)); /* 3 touched: 4, then 3 are newer than 2 */
    tl_proj__unpin(pj, p);
    tl_proj__put(pj, &k5, blob(5, 25), 100, &p);
    tl_proj__unpin(pj, p);
    assert_null(tl_proj__get(pj, &k2, &p));
    assert_non_null(tl_proj__get(pj, &k3, &p));
    tl_proj__unpin(pj, p);
    tl_proj__free(pj);
}

typedef struct racer {
    tl_proj *pj;
    const uint32_t *got;
    tl_pent *pin;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    tl_pkey k = {1, 1, 1, 1, 1};
    for (int i = 0; i < 1000; i++) {
        tl_pent *p;
        const void *v = tl_proj__get(r->pj, &k, &p);
        if (!v) v = tl_proj__put(r->pj, &k, blob(77, 8), 32, &p);
        tl_proj__unpin(r->pj, p);
    }
    r->got = tl_proj__get(r->pj, &k, &r->pin);
    return NULL;
}

static void test_two_threads_one_copy(void **state)
{
    (void)state;
    tl_proj *pj = tl_proj__new(1 << 20);
    racer a = {pj, NULL, NULL}, b = {pj, NULL, NULL};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, race, &a), 0);
    race(&b);
    pthread_join(t, NULL);
    assert_ptr_equal(a.got, b.got);
    assert_int_equal(a.got[7], 77);
    tl_proj__unpin(pj, a.pin);
    tl_proj__unpin(pj, b.pin);
    uint64_t bytes, hits, misses;
    tl_proj__stats(pj, &bytes, &hits, &misses);
    assert_int_equal(bytes, 32);
    tl_proj__free(pj);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_miss_then_hit),
        cmocka_unit_test(test_pins_and_lru),
        cmocka_unit_test(test_two_threads_one_copy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
