/* test_pairs: pair construction against hand-computed cases and the real labels; shuffle, slice. */
#include "test_util.h"

#include <stdint.h>
#include <string.h>

#include "siam_dataset.h"
#include "siam_pairs.h"
#include "siam_rng.h"

static int load_split(siam_dataset *ds, siam_split split) {
    const char *dir = getenv("SIAM_DATA_DIR");
    if (!dir || !*dir)
        dir = SIAM_DATA_DIR_DEFAULT;
    siam_error err = {0};
    int rc = siam_dataset_load(ds, dir, split, 0, &err);
    CHECK(rc == SIAM_OK,
          "real Fashion-MNIST in %s not loadable (install it with `apt-get install "
          "dataset-fashion-mnist`): %s",
          dir, err.msg);
    return rc;
}

/* Checks p against the documented construction, computed independently here: class lists by a
 * plain scan, r drawn from our own siam_rng in the same (d outer, i inner) order. */
static void check_reference(const siam_pairs *p, const uint8_t *labels, size_t n_images,
                            int n_classes, uint64_t seed, const char *what) {
    uint32_t **idx = calloc((size_t)n_classes, sizeof *idx);
    size_t *size = calloc((size_t)n_classes, sizeof *size);
    for (int d = 0; d < n_classes; d++) {
        idx[d] = malloc(n_images * sizeof **idx);
        for (size_t j = 0; j < n_images; j++)
            if (labels[j] == d)
                idx[d][size[d]++] = (uint32_t)j;
    }
    size_t per = SIZE_MAX;
    for (int d = 0; d < n_classes; d++)
        per = size[d] < per ? size[d] : per;
    per -= 1;
    CHECK(p->n == 2 * (size_t)n_classes * per, "%s: %zu pairs, expected %zu", what, p->n,
          2 * (size_t)n_classes * per);

    siam_rng rng;
    siam_rng_seed(&rng, seed);
    size_t bad = 0, k = 0, n_pos = 0;
    for (int d = 0; d < n_classes && p->n == 2 * (size_t)n_classes * per; d++) {
        for (size_t i = 0; i < per; i++, k += 2) {
            int dn = (d + 1 + (int)siam_rng_below(&rng, (uint64_t)n_classes - 1)) % n_classes;
            bad += p->left[k] != idx[d][i] || p->right[k] != idx[d][i + 1] || p->labels[k] != 1;
            bad += p->left[k + 1] != idx[d][i] || p->right[k + 1] != idx[dn][i] ||
                   p->labels[k + 1] != 0;
        }
    }
    /* independent of the construction: indices in range, labels agree with the classes */
    size_t bad_range = 0, bad_class = 0;
    for (size_t j = 0; j < p->n; j++) {
        if (p->left[j] >= n_images || p->right[j] >= n_images) {
            bad_range++;
            continue;
        }
        int same = labels[p->left[j]] == labels[p->right[j]];
        bad_class += p->labels[j] != same || (same && p->left[j] == p->right[j]);
        n_pos += p->labels[j] == 1;
    }
    CHECK(bad == 0, "%s: %zu pairs differ from the reference construction", what, bad);
    CHECK(bad_range == 0, "%s: %zu pairs index outside 0..%zu", what, bad_range, n_images - 1);
    CHECK(bad_class == 0, "%s: %zu pairs whose label disagrees with the classes", what, bad_class);
    CHECK(2 * n_pos == p->n, "%s: %zu positives of %zu", what, n_pos, p->n);
    for (int d = 0; d < n_classes; d++)
        free(idx[d]);
    free(idx);
    free(size);
}

static size_t count_diff(const uint32_t *a, const uint32_t *b, size_t n, size_t start,
                         size_t step) {
    size_t diff = 0;
    for (size_t k = start; k < n; k += step)
        diff += a[k] != b[k];
    return diff;
}

static void test_real(siam_split split, size_t want_pairs) {
    siam_dataset ds;
    if (load_split(&ds, split) != SIAM_OK)
        return;
    const char *what = split == SIAM_SPLIT_TRAIN ? "train" : "test";
    siam_pairs a, b, c;
    siam_error err = {0};
    CHECK(siam_pairs_make(&a, ds.labels, ds.n, 10, 42, &err) == SIAM_OK, "%s", err.msg);
    CHECK(siam_pairs_make(&b, ds.labels, ds.n, 10, 42, &err) == SIAM_OK, "%s", err.msg);
    CHECK(siam_pairs_make(&c, ds.labels, ds.n, 10, 43, &err) == SIAM_OK, "%s", err.msg);
    CHECK(a.n == want_pairs, "%s: %zu pairs, expected %zu", what, a.n, want_pairs);
    printf("  %s: %zu pairs\n", what, a.n);
    check_reference(&a, ds.labels, ds.n, 10, 42, what);
    check_reference(&c, ds.labels, ds.n, 10, 43, what);

    CHECK(b.n == a.n && memcmp(a.left, b.left, a.n * 4) == 0 &&
              memcmp(a.right, b.right, a.n * 4) == 0 && memcmp(a.labels, b.labels, a.n) == 0,
          "%s: same seed, different pairs", what);
    /* seeds change only the negatives' partners: positives and all left images stay */
    CHECK(c.n == a.n && memcmp(a.left, c.left, a.n * 4) == 0 &&
              memcmp(a.labels, c.labels, a.n) == 0,
          "%s: left images or labels depend on the seed", what);
    size_t pos_diff = count_diff(a.right, c.right, a.n, 0, 2);
    size_t neg_diff = count_diff(a.right, c.right, a.n, 1, 2);
    CHECK(pos_diff == 0, "%s: %zu positives depend on the seed", what, pos_diff);
    /* each negative picks one of 9 classes: about 8/9 of them change with the seed */
    CHECK(neg_diff > a.n / 2 * 3 / 4, "%s: only %zu of %zu negatives differ across seeds", what,
          neg_diff, a.n / 2);

    /* the offset r = (class(right) - class(left)) mod 10 is uniform over 1..9 */
    size_t offset[10] = {0};
    for (size_t k = 1; k < a.n; k += 2)
        offset[(ds.labels[a.right[k]] + 10 - ds.labels[a.left[k]]) % 10]++;
    CHECK(offset[0] == 0, "%s: negatives of the same class", what);
    for (int r = 1; r < 10; r++)
        CHECK_NEAR(offset[r], a.n / 2 / 9.0, a.n / 2 / 9.0 * 0.1, "negative class offset count");

    siam_pairs_free(&a);
    siam_pairs_free(&b);
    siam_pairs_free(&c);
    siam_dataset_free(&ds);
}

typedef struct {
    uint32_t left, right;
    uint8_t label;
} triple;

static int triple_cmp(const void *pa, const void *pb) {
    const triple *a = pa, *b = pb;
    if (a->left != b->left)
        return a->left < b->left ? -1 : 1;
    if (a->right != b->right)
        return a->right < b->right ? -1 : 1;
    return (a->label > b->label) - (a->label < b->label);
}

static triple *sorted_triples(const siam_pairs *p) {
    /* calloc zeroes the padding, so sorted arrays compare with memcmp */
    triple *t = calloc(p->n ? p->n : 1, sizeof *t);
    for (size_t k = 0; k < p->n; k++) {
        t[k].left = p->left[k];
        t[k].right = p->right[k];
        t[k].label = p->labels[k];
    }
    qsort(t, p->n, sizeof *t, triple_cmp);
    return t;
}

static int pairs_equal(const siam_pairs *a, const siam_pairs *b) {
    return a->n == b->n && memcmp(a->left, b->left, a->n * sizeof *a->left) == 0 &&
           memcmp(a->right, b->right, a->n * sizeof *a->right) == 0 &&
           memcmp(a->labels, b->labels, a->n) == 0;
}

static void test_shuffle_and_slice(void) {
    siam_dataset ds;
    if (load_split(&ds, SIAM_SPLIT_TEST) != SIAM_OK)
        return;
    siam_pairs orig, a, b, c, s;
    siam_error err = {0};
    CHECK(siam_pairs_make(&orig, ds.labels, ds.n, 10, 1, &err) == SIAM_OK, "%s", err.msg);
    CHECK(siam_pairs_slice(&a, &orig, 0, orig.n, &err) == SIAM_OK && pairs_equal(&a, &orig),
          "full slice is a copy: %s", err.msg);
    CHECK(siam_pairs_slice(&b, &orig, 0, orig.n, &err) == SIAM_OK, "%s", err.msg);
    CHECK(siam_pairs_slice(&c, &orig, 0, orig.n, &err) == SIAM_OK, "%s", err.msg);
    siam_pairs_shuffle(&a, 5);
    siam_pairs_shuffle(&b, 5);
    siam_pairs_shuffle(&c, 6);
    CHECK(pairs_equal(&a, &b), "same seed, different shuffles");
    CHECK(!pairs_equal(&a, &c), "different seeds, same shuffle");
    size_t unmoved = 0;
    for (size_t k = 0; k < a.n; k++)
        unmoved += a.left[k] == orig.left[k] && a.right[k] == orig.right[k];
    CHECK(unmoved < a.n / 100, "%zu of %zu pairs did not move", unmoved, a.n);

    /* a permutation: the same multiset of (left, right, label) */
    triple *ta = sorted_triples(&a), *to = sorted_triples(&orig);
    CHECK(memcmp(ta, to, a.n * sizeof *ta) == 0, "shuffle is not a permutation of the pairs");
    free(ta);
    free(to);

    /* one permutation moves all three arrays: the one siam_rng_shuffle_u32 makes of 0..n-1 */
    uint32_t *perm = malloc(orig.n * sizeof *perm);
    for (size_t k = 0; k < orig.n; k++)
        perm[k] = (uint32_t)k;
    siam_rng rng;
    siam_rng_seed(&rng, 5);
    siam_rng_shuffle_u32(&rng, perm, orig.n);
    size_t off = 0;
    for (size_t k = 0; k < orig.n; k++)
        off += a.left[k] != orig.left[perm[k]] || a.right[k] != orig.right[perm[k]] ||
               a.labels[k] != orig.labels[perm[k]];
    CHECK(off == 0, "%zu pairs not where the seeded Fisher-Yates puts them", off);
    free(perm);

    /* slices */
    CHECK(siam_pairs_slice(&s, &a, 10, 25, &err) == SIAM_OK && s.n == 15, "slice: %s", err.msg);
    size_t wrong = 0;
    for (size_t k = 0; k < s.n; k++)
        wrong += s.left[k] != a.left[10 + k] || s.right[k] != a.right[10 + k] ||
                 s.labels[k] != a.labels[10 + k];
    CHECK(wrong == 0, "slice [10,25): %zu pairs wrong", wrong);
    siam_pairs_free(&s);
    CHECK(siam_pairs_slice(&s, &a, a.n - 3, a.n, &err) == SIAM_OK && s.n == 3 &&
              s.right[2] == a.right[a.n - 1],
          "tail slice: %s", err.msg);
    siam_pairs_free(&s);
    CHECK(siam_pairs_slice(&s, &a, a.n, a.n, &err) == SIAM_OK && s.n == 0, "empty slice: %s",
          err.msg);
    siam_pairs_shuffle(&s, 3); /* empty: nothing to do */
    siam_pairs_free(&s);
    size_t bad[][2] = {{5, 4}, {0, a.n + 1}, {a.n + 1, a.n + 2}};
    for (size_t k = 0; k < 3; k++) {
        memset(&err, 0, sizeof err);
        int rc = siam_pairs_slice(&s, &a, bad[k][0], bad[k][1], &err);
        CHECK(rc == SIAM_ERR_ARG && err.code == rc && err.msg[0], "slice [%zu,%zu) accepted",
              bad[k][0], bad[k][1]);
        CHECK(s.n == 0 && s.left == NULL, "failed slice not left empty");
        siam_pairs_free(&s);
    }

    siam_pairs_free(&orig);
    siam_pairs_free(&a);
    siam_pairs_free(&b);
    siam_pairs_free(&c);
    siam_pairs_free(&a); /* twice is safe */
    siam_dataset_free(&ds);
}

static void test_tiny(void) {
    siam_error err = {0};
    siam_pairs p;

    /* two classes: the negative's class is forced, so every seed gives the same pairs.
     * class 0 = {0, 2}, class 1 = {1, 3, 4}; n = 2 - 1 = 1 */
    const uint8_t two[] = {0, 1, 0, 1, 1};
    const uint32_t two_pairs[4][3] = {{0, 2, 1}, {0, 1, 0}, {1, 3, 1}, {1, 0, 0}};
    for (uint64_t seed = 0; seed < 3; seed++) {
        CHECK(siam_pairs_make(&p, two, 5, 2, seed, &err) == SIAM_OK, "%s", err.msg);
        CHECK(p.n == 4, "two classes: %zu pairs", p.n);
        for (size_t k = 0; k < 4 && k < p.n; k++)
            CHECK(p.left[k] == two_pairs[k][0] && p.right[k] == two_pairs[k][1] &&
                      p.labels[k] == two_pairs[k][2],
                  "two classes pair %zu: (%u,%u,%u)", k, p.left[k], p.right[k], p.labels[k]);
        siam_pairs_free(&p);
    }

    /* three classes: class 0 = {0,3,6,9}, 1 = {1,4,8}, 2 = {2,5,7}; n = 3 - 1 = 2, 12 pairs.
     * neg_right[d][i][r-1] = idx[(d + r) mod 3][i], written out by hand. */
    const uint8_t three[] = {0, 1, 2, 0, 1, 2, 0, 2, 1, 0};
    const uint32_t pos[3][2][2] = {{{0, 3}, {3, 6}}, {{1, 4}, {4, 8}}, {{2, 5}, {5, 7}}};
    const uint32_t neg_right[3][2][2] = {{{1, 2}, {4, 5}}, {{2, 0}, {5, 3}}, {{0, 1}, {3, 4}}};
    for (uint64_t seed = 0; seed < 4; seed++) {
        CHECK(siam_pairs_make(&p, three, 10, 3, seed, &err) == SIAM_OK, "%s", err.msg);
        CHECK(p.n == 12, "three classes: %zu pairs", p.n);
        siam_rng rng;
        siam_rng_seed(&rng, seed);
        for (int d = 0; d < 3 && p.n == 12; d++) {
            for (int i = 0; i < 2; i++) {
                size_t k = 2 * (2 * (size_t)d + (size_t)i);
                int r = 1 + (int)siam_rng_below(&rng, 2);
                CHECK(p.left[k] == pos[d][i][0] && p.right[k] == pos[d][i][1] && p.labels[k] == 1,
                      "seed %d: positive %zu is (%u,%u,%u)", (int)seed, k, p.left[k], p.right[k],
                      p.labels[k]);
                CHECK(p.left[k + 1] == pos[d][i][0] && p.right[k + 1] == neg_right[d][i][r - 1] &&
                          p.labels[k + 1] == 0,
                      "seed %d: negative %zu is (%u,%u,%u), r %d", (int)seed, k + 1, p.left[k + 1],
                      p.right[k + 1], p.labels[k + 1], r);
            }
        }
        check_reference(&p, three, 10, 3, seed, "three classes");
        siam_pairs_free(&p);
    }

    /* refusals leave p empty, and free stays safe */
    struct {
        const uint8_t *labels;
        size_t n;
        int n_classes;
        const char *word;
    } bad[] = {
        {(const uint8_t[]){0, 0, 1, 2, 2}, 5, 3, "class 1 has 1 image"},
        {(const uint8_t[]){0, 0, 1, 1}, 4, 3, "class 2 has 0 images"},
        {(const uint8_t[]){0, 0, 1, 1, 3}, 5, 3, "label 3"},
        {(const uint8_t[]){0, 0, 0}, 3, 1, "classes"},
        {(const uint8_t[]){0}, 0, 2, "class 0 has 0"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        memset(&err, 0, sizeof err);
        memset(&p, 0xab, sizeof p);
        int rc = siam_pairs_make(&p, bad[k].labels, bad[k].n, bad[k].n_classes, 1, &err);
        CHECK(rc == SIAM_ERR_ARG && err.code == rc, "bad case %zu: rc %d", k, rc);
        CHECK(strstr(err.msg, bad[k].word) != NULL, "bad case %zu: message lacks \"%s\": %s", k,
              bad[k].word, err.msg);
        CHECK(p.n == 0 && p.left == NULL && p.right == NULL && p.labels == NULL,
              "bad case %zu: p not left empty", k);
        siam_pairs_free(&p);
        printf("  refused: %s\n", err.msg);
    }
    memset(&p, 0, sizeof p);
    siam_pairs_free(&p); /* zeroed struct */
}

int main(void) {
    tu_trap_fp();
    test_tiny();
    test_real(SIAM_SPLIT_TRAIN, 119980);
    test_real(SIAM_SPLIT_TEST, 19980);
    test_shuffle_and_slice();
    return tu_finish();
}
