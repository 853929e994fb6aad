/* test_pk: P x K batches: shapes and layout, P distinct classes of K distinct images, group ids
 * that follow the classes within a batch and nothing across batches, reproducibility, use of
 * every image over epochs, skipped small classes, refused arguments, and a shard of the real
 * training set. */
#include "test_util.h"

#include <string.h>

#include "siam_dataset.h"
#include "siam_pk.h"

/* Checks one batch against labels; returns the number of problems found. */
static size_t check_batch(const uint32_t *idx, const uint32_t *grp, const uint8_t *labels, size_t n,
                          int p, int k) {
    size_t bad = 0;
    for (int g = 0; g < p; g++) {
        const uint32_t *gi = idx + (size_t)g * k, *gg = grp + (size_t)g * k;
        for (int j = 0; j < k; j++) {
            if (gi[j] >= n)
                return 1 + bad;
            bad += labels[gi[j]] != labels[gi[0]]; /* one class per group */
            bad += gg[j] != gg[0];                 /* one id per group */
            for (int i = 0; i < j; i++)
                bad += gi[i] == gi[j]; /* K distinct images */
        }
        for (int h = 0; h < g; h++) {
            bad += labels[idx[(size_t)h * k]] == labels[gi[0]]; /* P distinct classes */
            bad += grp[(size_t)h * k] == gg[0];                 /* P distinct ids */
        }
    }
    return bad;
}

/* class c (0..n_classes-1) gets sizes[c] images, interleaved in a fixed pseudo-random order */
static uint8_t *make_labels(const size_t *sizes, int n_classes, size_t *n_out) {
    size_t n = 0;
    for (int c = 0; c < n_classes; c++)
        n += sizes[c];
    uint8_t *l = malloc(n);
    size_t i = 0;
    for (int c = 0; c < n_classes; c++)
        for (size_t j = 0; j < sizes[c]; j++)
            l[i++] = (uint8_t)(c * 7 + 3); /* labels need not be 0..C-1 */
    for (size_t j = n; j > 1; j--) {       /* an LCG shuffle, independent of siam_rng */
        size_t r = (size_t)((j * 2654435761u + 12345u) % j);
        uint8_t t = l[j - 1];
        l[j - 1] = l[r];
        l[r] = t;
    }
    *n_out = n;
    return l;
}

static void test_balanced_epochs(void) {
    /* 6 classes of 40, K = 4, P = 3: 10 groups each, G = 60, 20 batches; every image exactly
     * once per epoch */
    const size_t sizes[] = {40, 40, 40, 40, 40, 40};
    size_t n;
    uint8_t *lab = make_labels(sizes, 6, &n);
    siam_pk *s = NULL;
    siam_error err = {0};
    CHECK(siam_pk_create(&s, lab, n, 3, 4, 11, &err) == SIAM_OK, "%s", err.msg);
    if (!s)
        return;
    CHECK(siam_pk_batches_per_epoch(s) == 20, "%zu batches per epoch, expected 20",
          siam_pk_batches_per_epoch(s));
    uint32_t idx[12], grp[12];
    int *uses = calloc(n, sizeof *uses);
    size_t bad = 0;
    for (int e = 1; e <= 3; e++) {
        for (int b = 0; b < 20; b++) {
            CHECK(siam_pk_epoch(s) == (uint64_t)e - 1, "epoch counter during epoch %d", e);
            siam_pk_next(s, idx, grp);
            bad += check_batch(idx, grp, lab, n, 3, 4);
            for (int j = 0; j < 12; j++)
                uses[idx[j]]++;
        }
        CHECK(siam_pk_epoch(s) == (uint64_t)e, "epoch %llu after %d epochs' batches",
              (unsigned long long)siam_pk_epoch(s), e);
        size_t off = 0;
        for (size_t i = 0; i < n; i++)
            off += uses[i] != e;
        CHECK(off == 0, "after epoch %d, %zu images not used exactly %d times", e, off, e);
    }
    CHECK(bad == 0, "%zu layout problems", bad);
    siam_pk_next(s, idx, grp);
    CHECK(siam_pk_epoch(s) == 3, "the 61st batch is in epoch 3 (0-based)");
    free(uses);
    siam_pk_free(s);
    free(lab);
}

static void test_unequal(void) {
    /* unequal classes, one too small for K = 4 (3 images: skipped), one with a remainder */
    const size_t sizes[] = {37, 50, 61, 45, 23, 3, 30};
    size_t n;
    uint8_t *lab = make_labels(sizes, 7, &n);
    const int P = 4, K = 4;
    siam_pk *s = NULL;
    siam_error err = {0};
    CHECK(siam_pk_create(&s, lab, n, P, K, 5, &err) == SIAM_OK, "%s", err.msg);
    if (!s)
        return;
    size_t groups = 9 + 12 + 15 + 11 + 5 + 7; /* floor(m / 4), the small class left out */
    CHECK(siam_pk_batches_per_epoch(s) == groups / P, "%zu batches per epoch, expected %zu",
          siam_pk_batches_per_epoch(s), groups / P);
    int sc;
    size_t si;
    siam_pk_skipped(s, &sc, &si);
    CHECK(sc == 1 && si == 3, "skipped %d classes, %zu images; expected 1, 3", sc, si);
    enum { E = 6 };
    size_t batches = E * siam_pk_batches_per_epoch(s), bad = 0;
    int *uses = calloc(n, sizeof *uses);
    uint32_t idx[16], grp[16];
    for (size_t b = 0; b < batches; b++) {
        siam_pk_next(s, idx, grp);
        bad += check_batch(idx, grp, lab, n, P, K);
        for (int j = 0; j < P * K; j++)
            uses[idx[j]]++;
    }
    CHECK(bad == 0, "%zu layout problems", bad);
    /* per class, uses differ by at most one (passes), and stay near E; small class never */
    for (int c = 0; c < 7; c++) {
        int lo = 1 << 30, hi = -1;
        for (size_t i = 0; i < n; i++)
            if (lab[i] == c * 7 + 3) {
                lo = uses[i] < lo ? uses[i] : lo;
                hi = uses[i] > hi ? uses[i] : hi;
            }
        if (sizes[c] < (size_t)K)
            CHECK(hi == 0, "class of %zu images (< K) drawn %d times", sizes[c], hi);
        else
            CHECK(hi - lo <= 1 && lo >= E - 2 && hi <= E + 1,
                  "class of %zu images: uses %d..%d over %d epochs", sizes[c], lo, hi, E);
    }
    free(uses);
    siam_pk_free(s);
    free(lab);
}

static void test_ids_and_seeds(void) {
    const size_t sizes[] = {30, 30, 30, 30, 30};
    size_t n;
    uint8_t *lab = make_labels(sizes, 5, &n);
    enum { P = 5, K = 2, B = 200 };
    siam_pk *a = NULL, *b = NULL, *c = NULL;
    siam_error err = {0};
    CHECK(siam_pk_create(&a, lab, n, P, K, 99, &err) == SIAM_OK, "%s", err.msg);
    CHECK(siam_pk_create(&b, lab, n, P, K, 99, &err) == SIAM_OK, "%s", err.msg);
    CHECK(siam_pk_create(&c, lab, n, P, K, 100, &err) == SIAM_OK, "%s", err.msg);
    if (!a || !b || !c)
        return;
    uint32_t ia[P * K], ga[P * K], ib[P * K], gb[P * K], ic[P * K], gc[P * K];
    static uint32_t ids[B * P];
    /* per class, the id it had in the previous batch: P = all classes, so every class is in
     * every batch and a fixed class -> id map would show */
    uint32_t last[256] = {0};
    size_t same_seed_diff = 0, other_seed_same = 0, kept = 0, n_ids = 0;
    for (int t = 0; t < B; t++) {
        siam_pk_next(a, ia, ga);
        siam_pk_next(b, ib, gb);
        siam_pk_next(c, ic, gc);
        same_seed_diff += memcmp(ia, ib, sizeof ia) != 0 || memcmp(ga, gb, sizeof ga) != 0;
        other_seed_same += memcmp(ia, ic, sizeof ia) == 0;
        for (int g = 0; g < P; g++) {
            uint8_t cls = lab[ia[g * K]];
            kept += t > 0 && last[cls] == ga[g * K];
            last[cls] = ga[g * K];
            ids[n_ids++] = ga[g * K];
        }
    }
    CHECK(same_seed_diff == 0, "%zu batches differ between two samplers of one seed",
          same_seed_diff);
    CHECK(other_seed_same < 2, "%zu of %d batches equal under another seed", other_seed_same, B);
    CHECK(kept == 0, "a class kept its group id into the next batch %zu times", kept);
    /* ids fresh per batch: 1000 draws of 32 bits collide with probability ~1e-4 */
    size_t repeats = 0;
    for (size_t i = 0; i < n_ids; i++)
        for (size_t j = 0; j < i; j++)
            repeats += ids[i] == ids[j];
    CHECK(repeats <= 1, "%zu group ids repeat across %d batches", repeats, B);
    siam_pk_free(a);
    siam_pk_free(b);
    siam_pk_free(c);
    free(lab);
}

static void test_refused(void) {
    const size_t sizes[] = {5, 5, 2};
    size_t n;
    uint8_t *lab = make_labels(sizes, 3, &n);
    siam_pk *s = (siam_pk *)&s; /* must come back NULL */
    siam_error err = {0};
    CHECK(siam_pk_create(&s, lab, n, 0, 2, 1, &err) == SIAM_ERR_ARG && !s, "P 0 refused");
    CHECK(siam_pk_create(&s, lab, n, 2, 0, 1, &err) == SIAM_ERR_ARG, "K 0 refused");
    CHECK(siam_pk_create(&s, lab, n, 1024, 1024, 1, &err) == SIAM_ERR_ARG, "P*K too big");
    CHECK(siam_pk_create(&s, lab, n, 3, 3, 1, &err) == SIAM_ERR_ARG && !s,
          "3 classes needed, 2 have K = 3 images");
    CHECK(strstr(err.msg, "only 2 class(es)") != NULL, "message counts the classes: %s", err.msg);
    CHECK(siam_pk_create(&s, lab, 0, 1, 1, 1, &err) == SIAM_ERR_ARG, "no images refused");
    /* P = 2, K = 5: both classes of 5 give one group; the class of 2 is skipped */
    CHECK(siam_pk_create(&s, lab, n, 2, 5, 1, &err) == SIAM_OK && s, "%s", err.msg);
    if (s) {
        CHECK(siam_pk_batches_per_epoch(s) == 1, "one batch per epoch");
        uint32_t idx[10], grp[10];
        for (int t = 0; t < 5; t++) {
            siam_pk_next(s, idx, grp);
            CHECK(check_batch(idx, grp, lab, n, 2, 5) == 0, "batch %d: whole classes", t);
        }
        CHECK(siam_pk_epoch(s) == 5, "one epoch per batch");
    }
    siam_pk_free(s);
    free(lab);
}

/* The middle shard of three of the real training labels, P = 8, K = 4: one epoch. */
static void test_real_shard(void) {
    const char *dir = getenv("SIAM_DATA_DIR");
    if (!dir || !*dir)
        dir = SIAM_DATA_DIR_DEFAULT;
    siam_dataset ds = {0};
    siam_error err = {0};
    int rc = siam_dataset_load(&ds, dir, SIAM_SPLIT_TRAIN, 0, &err);
    CHECK(rc == SIAM_OK,
          "real Fashion-MNIST in %s not loadable (install it with `apt-get install "
          "dataset-fashion-mnist`): %s",
          dir, err.msg);
    if (rc)
        return;
    size_t begin, end;
    CHECK(siam_shard_range(ds.n, 1, 3, &begin, &end, &err) == SIAM_OK, "%s", err.msg);
    const uint8_t *lab = ds.labels + begin;
    size_t n = end - begin, count[10] = {0}, groups = 0;
    for (size_t i = 0; i < n; i++)
        count[lab[i]]++;
    for (int c = 0; c < 10; c++)
        groups += count[c] / 4;
    siam_pk *s = NULL;
    CHECK(siam_pk_create(&s, lab, n, 8, 4, 42, &err) == SIAM_OK, "%s", err.msg);
    if (s) {
        size_t nb = siam_pk_batches_per_epoch(s), bad = 0, once = 0, never = 0;
        CHECK(nb == groups / 8, "%zu batches, expected %zu", nb, groups / 8);
        int *uses = calloc(n, sizeof *uses);
        uint32_t idx[32], grp[32];
        for (size_t b = 0; b < nb; b++) {
            siam_pk_next(s, idx, grp);
            bad += check_batch(idx, grp, lab, n, 8, 4);
            for (int j = 0; j < 32; j++)
                uses[idx[j]]++;
        }
        for (size_t i = 0; i < n; i++) {
            once += uses[i] == 1;
            never += uses[i] == 0;
        }
        printf("real shard [%zu, %zu): %zu batches, %zu of %zu images used once, %zu never\n",
               begin, end, nb, once, n, never);
        CHECK(bad == 0, "%zu layout problems on the real shard", bad);
        CHECK(once >= n - n / 100, "only %zu of %zu images used once in an epoch", once, n);
        CHECK(siam_pk_epoch(s) == 1, "one epoch done after its batches");
        free(uses);
    }
    siam_pk_free(s);
    siam_dataset_free(&ds);
}

int main(void) {
    test_balanced_epochs();
    test_unequal();
    test_ids_and_seeds();
    test_refused();
    test_real_shard();
    return tu_finish();
}
