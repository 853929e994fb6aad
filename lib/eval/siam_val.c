/* siam_val: balanced pair sampling over a labelled set, pair distances, and VAL at FAR with the
 * threshold from one set's pairs and the figures from another's. */
#include "siam_val.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "siam_metrics.h"
#include "siam_rng.h"

/* C(m, 2) without overflow for m < 2^32 */
static uint64_t tri(uint64_t m) {
    return m % 2 == 0 ? (m / 2) * (m - 1) : m * ((m - 1) / 2);
}

/* ---- the pair index spaces ------------------------------------------------------------------
 * Positive pairs are numbered class by class; within a class of m images, the pair (a, b) of its
 * a-th and b-th image (a < b) is number b(b-1)/2 + a. Negative pairs are numbered class pair by
 * class pair (c1 < c2, both present); within one, (a, b) of c1's a-th and c2's b-th image is
 * a * n_c2 + b. Sampling k distinct numbers of such a space samples k distinct pairs uniformly. */

typedef struct {
    uint32_t *by_class; /* (n_images) image indices grouped by class, in index order */
    size_t start[257];  /* class c's images are by_class[start[c] .. start[c + 1]) */
    int present[256];   /* the classes with at least one image, ascending */
    int n_present;
    uint64_t pos_cum[256]; /* pos_cum[c] = positive pairs of classes 0..c */
    uint64_t *neg_cum;     /* (n_present choose 2) negative pairs of class pairs 0..q */
    int (*neg_classes)[2]; /* the class pair q */
    size_t n_class_pairs;
} pair_space;

static void pair_space_free(pair_space *s) {
    free(s->by_class);
    free(s->neg_cum);
    free(s->neg_classes);
    memset(s, 0, sizeof *s);
}

static int pair_space_init(pair_space *s, const uint8_t *labels, size_t n_images, siam_error *err) {
    memset(s, 0, sizeof *s);
    size_t count[256] = {0};
    for (size_t i = 0; i < n_images; i++)
        count[labels[i]]++;
    s->start[0] = 0;
    uint64_t pos = 0;
    for (int c = 0; c < 256; c++) {
        s->start[c + 1] = s->start[c] + count[c];
        pos += tri(count[c]);
        s->pos_cum[c] = pos;
        if (count[c])
            s->present[s->n_present++] = c;
    }
    s->n_class_pairs = (size_t)s->n_present * (size_t)(s->n_present - 1) / 2;
    s->by_class = malloc((n_images ? n_images : 1) * sizeof *s->by_class);
    s->neg_cum = malloc((s->n_class_pairs ? s->n_class_pairs : 1) * sizeof *s->neg_cum);
    s->neg_classes = malloc((s->n_class_pairs ? s->n_class_pairs : 1) * sizeof *s->neg_classes);
    if (!s->by_class || !s->neg_cum || !s->neg_classes) {
        pair_space_free(s);
        return siam_error_set(err, SIAM_ERR_NOMEM, "VAL pairs: out of memory for %zu images",
                              n_images);
    }
    size_t fill[256];
    memcpy(fill, s->start, sizeof fill);
    for (size_t i = 0; i < n_images; i++)
        s->by_class[fill[labels[i]]++] = (uint32_t)i;
    uint64_t neg = 0;
    size_t q = 0;
    for (int x = 0; x < s->n_present; x++)
        for (int y = x + 1; y < s->n_present; y++) {
            neg += (uint64_t)count[s->present[x]] * count[s->present[y]];
            s->neg_cum[q] = neg;
            s->neg_classes[q][0] = s->present[x];
            s->neg_classes[q][1] = s->present[y];
            q++;
        }
    return SIAM_OK;
}

/* The first q with cum[q] > k (cum ascending, k < cum[n - 1]). */
static size_t upper_bound(const uint64_t *cum, size_t n, uint64_t k) {
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cum[mid] > k)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* positive pair number k -> its two images (left < right) */
static void pos_pair(const pair_space *s, uint64_t k, uint32_t *left, uint32_t *right) {
    int c = (int)upper_bound(s->pos_cum, 256, k);
    uint64_t w = k - (c ? s->pos_cum[c - 1] : 0);
    /* the largest b with b(b-1)/2 <= w; the double estimate is off by at most a little */
    uint64_t b = (uint64_t)((1.0 + sqrt(1.0 + 8.0 * (double)w)) / 2.0);
    while (b > 1 && tri(b) > w)
        b--;
    while (tri(b + 1) <= w)
        b++;
    uint64_t a = w - tri(b);
    *left = s->by_class[s->start[c] + a];
    *right = s->by_class[s->start[c] + b];
}

/* negative pair number k -> its two images (left < right) */
static void neg_pair(const pair_space *s, uint64_t k, uint32_t *left, uint32_t *right) {
    size_t q = upper_bound(s->neg_cum, s->n_class_pairs, k);
    uint64_t w = k - (q ? s->neg_cum[q - 1] : 0);
    int c1 = s->neg_classes[q][0], c2 = s->neg_classes[q][1];
    uint64_t n2 = s->start[c2 + 1] - s->start[c2];
    uint32_t i = s->by_class[s->start[c1] + w / n2], j = s->by_class[s->start[c2] + w % n2];
    *left = i < j ? i : j;
    *right = i < j ? j : i;
}

/* ---- k distinct numbers of [0, total) (Floyd's algorithm, a hash set of what was chosen) ---- */

static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* out (k) = k distinct numbers below total (k <= total), ascending. Returns 0, or -1 when out of
 * memory. Every k-subset is equally likely. */
static int sample_distinct(siam_rng *r, uint64_t total, size_t k, uint64_t *out) {
    if (k == 0)
        return 0;
    size_t cap = 16;
    while (cap < 2 * k)
        cap *= 2;
    uint64_t *set = malloc(cap * sizeof *set);
    if (!set)
        return -1;
    const uint64_t empty = UINT64_MAX; /* total <= 2^63: never a number */
    for (size_t i = 0; i < cap; i++)
        set[i] = empty;
    size_t n = 0;
    for (uint64_t j = total - k; j < total; j++) {
        uint64_t t = siam_rng_below(r, j + 1), pick = t;
        size_t h = (size_t)mix(t) & (cap - 1);
        while (set[h] != empty && set[h] != t)
            h = (h + 1) & (cap - 1);
        if (set[h] == t) { /* t was chosen before: j (never chosen yet) instead */
            pick = j;
            h = (size_t)mix(j) & (cap - 1);
            while (set[h] != empty)
                h = (h + 1) & (cap - 1);
        }
        set[h] = pick;
        out[n++] = pick;
    }
    free(set);
    qsort(out, k, sizeof *out, cmp_u64);
    return 0;
}

void siam_val_pairs_available(const uint8_t *labels, size_t n_images, uint64_t *pos,
                              uint64_t *neg) {
    size_t count[256] = {0};
    for (size_t i = 0; i < n_images; i++)
        count[labels[i]]++;
    uint64_t p = 0;
    for (int c = 0; c < 256; c++)
        p += tri(count[c]);
    *pos = p;
    *neg = tri(n_images) - p;
}

void siam_val_pairs_free(siam_val_pairs *p) {
    free(p->left);
    free(p->right);
    free(p->labels);
    memset(p, 0, sizeof *p);
}

int siam_val_pairs_sample(siam_val_pairs *out, const uint8_t *labels, size_t n_images, size_t n_pos,
                          size_t n_neg, uint64_t seed, siam_error *err) {
    memset(out, 0, sizeof *out);
    if (n_images > UINT32_MAX)
        return siam_error_set(err, SIAM_ERR_ARG, "VAL pairs: %zu images, pair indices are 32-bit",
                              n_images);
    if (n_pos > SIZE_MAX / 2 - n_neg)
        return siam_error_set(err, SIAM_ERR_ARG, "VAL pairs: %zu + %zu pairs is too many", n_pos,
                              n_neg);
    uint64_t have_pos, have_neg;
    siam_val_pairs_available(labels, n_images, &have_pos, &have_neg);
    if (n_pos > have_pos)
        return siam_error_set(err, SIAM_ERR_ARG,
                              "VAL pairs: asked for %zu same-class pairs, but the %zu images have "
                              "only %llu distinct ones (a class needs two images for one)",
                              n_pos, n_images, (unsigned long long)have_pos);
    if (n_neg > have_neg)
        return siam_error_set(err, SIAM_ERR_ARG,
                              "VAL pairs: asked for %zu different-class pairs, but the %zu images "
                              "have only %llu distinct ones (they need two classes)",
                              n_neg, n_images, (unsigned long long)have_neg);

    pair_space s;
    int rc = pair_space_init(&s, labels, n_images, err);
    if (rc)
        return rc;
    size_t n = n_pos + n_neg, most = n_pos > n_neg ? n_pos : n_neg;
    uint64_t *pick = malloc((most ? most : 1) * sizeof *pick);
    out->left = malloc((n ? n : 1) * sizeof *out->left);
    out->right = malloc((n ? n : 1) * sizeof *out->right);
    out->labels = malloc(n ? n : 1);
    siam_rng r;
    siam_rng_seed(&r, seed);
    if (!pick || !out->left || !out->right || !out->labels ||
        sample_distinct(&r, have_pos, n_pos, pick)) {
        rc = siam_error_set(err, SIAM_ERR_NOMEM, "VAL pairs: out of memory for %zu pairs", n);
        goto fail;
    }
    for (size_t i = 0; i < n_pos; i++) {
        pos_pair(&s, pick[i], &out->left[i], &out->right[i]);
        out->labels[i] = 1;
    }
    if (sample_distinct(&r, have_neg, n_neg, pick)) {
        rc = siam_error_set(err, SIAM_ERR_NOMEM, "VAL pairs: out of memory for %zu pairs", n);
        goto fail;
    }
    for (size_t i = 0; i < n_neg; i++) {
        neg_pair(&s, pick[i], &out->left[n_pos + i], &out->right[n_pos + i]);
        out->labels[n_pos + i] = 0;
    }
    out->n = n;
    out->n_pos = n_pos;
    out->n_neg = n_neg;
    free(pick);
    pair_space_free(&s);
    return SIAM_OK;
fail:
    free(pick);
    pair_space_free(&s);
    siam_val_pairs_free(out);
    return rc;
}

int siam_val_distances(const float *emb, size_t n_images, int dim, const siam_val_pairs *p,
                       float *dist, siam_error *err) {
    if (dim < 1)
        return siam_error_set(err, SIAM_ERR_ARG, "VAL distances: dim %d is not positive", dim);
    for (size_t i = 0; i < p->n; i++) {
        if (p->left[i] >= n_images || p->right[i] >= n_images)
            return siam_error_set(err, SIAM_ERR_ARG,
                                  "VAL distances: pair %zu (images %u, %u) is outside %zu images",
                                  i, p->left[i], p->right[i], n_images);
        const float *a = emb + (size_t)p->left[i] * (size_t)dim;
        const float *b = emb + (size_t)p->right[i] * (size_t)dim;
        double s = 0.0;
        for (int k = 0; k < dim; k++) {
            double t = (double)a[k] - (double)b[k];
            s += t * t;
        }
        dist[i] = (float)sqrt(s);
        if (!isfinite(dist[i]))
            return siam_error_set(err, SIAM_ERR_ARG,
                                  "VAL distances: pair %zu (images %u, %u) has distance %g: the "
                                  "embeddings are not finite",
                                  i, p->left[i], p->right[i], (double)dist[i]);
    }
    return SIAM_OK;
}

/* Samples one side's pairs and their distances (*dist: caller frees); errors name the side. */
static int side_distances(const siam_val_set *set, int dim, const char *name, siam_val_pairs *p,
                          float **dist, siam_error *err) {
    *dist = NULL;
    if (set->n_pos == 0 || set->n_neg == 0)
        return siam_error_set(err, SIAM_ERR_ARG,
                              "VAL at FAR: %zu same-class and %zu different-class %s pairs; both "
                              "must be at least 1",
                              set->n_pos, set->n_neg, name);
    int rc = siam_val_pairs_sample(p, set->labels, set->n_images, set->n_pos, set->n_neg, set->seed,
                                   err);
    if (!rc && !(*dist = malloc(p->n * sizeof **dist)))
        rc = siam_error_set(err, SIAM_ERR_NOMEM, "VAL at FAR: out of memory for %zu distances",
                            p->n);
    if (!rc)
        rc = siam_val_distances(set->emb, set->n_images, dim, p, *dist, err);
    if (rc && err) {
        char msg[SIAM_ERROR_MSG_MAX];
        memcpy(msg, err->msg, sizeof msg);
        siam_error_set(err, rc, "%s set: %s", name, msg);
    }
    return rc;
}

int siam_val_at_far(const siam_val_set *train, const siam_val_set *test, int dim, double far_target,
                    siam_val_report *out, siam_error *err) {
    memset(out, 0, sizeof *out);
    if (isnan(far_target) || far_target < 0.0 || far_target > 1.0) /* isnan: quiet */
        return siam_error_set(err, SIAM_ERR_ARG, "VAL at FAR: target FAR %g is not in [0, 1]",
                              far_target);
    siam_val_pairs tr = {0}, te = {0};
    float *tr_dist = NULL, *te_dist = NULL;
    siam_val_report r = {.far_target = far_target};
    int rc;
    if ((rc = side_distances(train, dim, "training", &tr, &tr_dist, err)) ||
        (rc = side_distances(test, dim, "test", &te, &te_dist, err)) ||
        (rc = siam_metrics_val_at_far(tr_dist, tr.labels, tr.n, far_target, &r.threshold,
                                      &r.train_val, &r.train_far, err)))
        goto done;
    if ((rc = siam_metrics_val_at_far(te_dist, te.labels, te.n, far_target, &r.oracle_threshold,
                                      &r.oracle_val, &r.oracle_far, err)))
        goto done;
    for (size_t i = 0; i < te.n; i++)
        if (te_dist[i] <= r.threshold) {
            if (te.labels[i])
                r.true_accepts++;
            else
                r.false_accepts++;
        }
    r.train_pos = tr.n_pos;
    r.train_neg = tr.n_neg;
    r.test_pos = te.n_pos;
    r.test_neg = te.n_neg;
    r.val = (double)r.true_accepts / (double)te.n_pos;
    r.far = (double)r.false_accepts / (double)te.n_neg;
    *out = r;
done:
    free(tr_dist);
    free(te_dist);
    siam_val_pairs_free(&tr);
    siam_val_pairs_free(&te);
    return rc;
}
