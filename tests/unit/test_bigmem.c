/* Unit tests of the large scratch blocks (src/util/bigmem.h): small sizes through malloc, a
 * freed block handed out again, zeroing on reuse, growth keeping the prefix, the 4× rule that
 * keeps a small request off a huge block, the budget, and concurrent use. */
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

#include "util/bigmem.h"

#define MB ((size_t)1 << 20)

static int reset(void **state)
{
    (void)state;
    tl_big_set_budget(0);
    tl_big_free(tl_big_alloc(3 * MB), 3 * MB); /* a free applies the budget: empties */
    tl_big_set_budget(256 * MB);
    return 0;
}

static void test_small_sizes_use_malloc(void **state)
{
    (void)state;
    char *p = tl_big_alloc(100);
    memset(p, 1, 100);
    tl_big_free(p, 100);
    char *z = tl_big_zalloc(1000);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(z[i], 0);
    tl_big_free(z, 1000);
    assert_int_equal(tl_big_cached(), 0);
}

static void test_freed_block_is_reused_and_zeroed_on_request(void **state)
{
    (void)state;
    char *p = tl_big_alloc(5 * MB);
    memset(p, 0x5a, 5 * MB);
    tl_big_free(p, 5 * MB);
    assert_int_equal(tl_big_cached(), 6 * MB); /* rounded to 2 MiB */
    char *q = tl_big_alloc(5 * MB + 1);
    assert_ptr_equal(q, p);
    assert_int_equal(tl_big_cached(), 0);
    tl_big_free(q, 5 * MB + 1);
    char *z = tl_big_zalloc(4 * MB);
    assert_ptr_equal(z, p);
    for (size_t i = 0; i < 4 * MB; i += 4093)
        assert_int_equal(z[i], 0);
    tl_big_free(z, 4 * MB);
}

static void test_small_request_does_not_take_a_huge_block(void **state)
{
    (void)state;
    char *big = tl_big_alloc(64 * MB);
    tl_big_free(big, 64 * MB);
    char *small = tl_big_alloc(2 * MB);
    assert_ptr_not_equal(small, big);
    assert_int_equal(tl_big_cached(), 64 * MB);
    tl_big_free(small, 2 * MB);
}

static void test_realloc_keeps_the_prefix(void **state)
{
    (void)state;
    uint32_t *a = tl_big_realloc(NULL, 0, 1000 * sizeof *a, 0);
    for (uint32_t i = 0; i < 1000; i++)
        a[i] = i;
    a = tl_big_realloc(a, 1000 * sizeof *a, 3000000 * sizeof *a, 1000 * sizeof *a);
    for (uint32_t i = 0; i < 1000; i++)
        assert_int_equal(a[i], i);
    a[2999999] = 7;
    a = tl_big_realloc(a, 3000000 * sizeof *a, 3100000 * sizeof *a, 3000000 * sizeof *a);
    assert_int_equal(a[999], 999);
    assert_int_equal(a[2999999], 7);
    tl_big_free(a, 3100000 * sizeof *a);
}

static void test_budget_drops_the_oldest(void **state)
{
    (void)state;
    tl_big_set_budget(10 * MB);
    char *a = tl_big_alloc(6 * MB), *b = tl_big_alloc(6 * MB);
    tl_big_free(a, 6 * MB);
    tl_big_free(b, 6 * MB); /* 12 MiB kept > 10: a goes */
    assert_int_equal(tl_big_cached(), 6 * MB);
    char *c = tl_big_alloc(6 * MB);
    assert_ptr_equal(c, b);
    tl_big_free(c, 6 * MB);
    tl_big_set_budget(0);
    char *d = tl_big_alloc(2 * MB);
    tl_big_free(d, 2 * MB);
    assert_int_equal(tl_big_cached(), 0);
}

static void *churn(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    for (int i = 0; i < 200; i++) {
        size_t n = (size_t)(rand_r(&seed) % 8 + 1) * MB / 2;
        unsigned char *p = tl_big_zalloc(n);
        for (size_t k = 0; k < n; k += 4096) {
            if (p[k]) return (void *)1;
            p[k] = 1;
        }
        tl_big_free(p, n);
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    pthread_t th[4];
    for (uintptr_t i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, churn, (void *)(i + 1)), 0);
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(th[i], &r);
        assert_null(r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_small_sizes_use_malloc, reset),
        cmocka_unit_test_setup(test_freed_block_is_reused_and_zeroed_on_request, reset),
        cmocka_unit_test_setup(test_small_request_does_not_take_a_huge_block, reset),
        cmocka_unit_test_setup(test_realloc_keeps_the_prefix, reset),
        cmocka_unit_test_setup(test_budget_drops_the_oldest, reset),
        cmocka_unit_test_setup(test_threads, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
