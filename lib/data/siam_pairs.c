/* siam_pairs: builds, shuffles and slices the seeded positive/negative pairs of the notebook. */
#include "siam_pairs.h"

#include <stdlib.h>
#include <string.h>

#include "siam_rng.h"

/* Allocates the three arrays of n pairs (at least one element each, so an empty set is not
 * mistaken for a failed allocation). */
static int pairs_alloc(siam_pairs *p, size_t n, siam_error *err) {
    size_t alloc = n ? n : 1;
    memset(p, 0, sizeof *p);
    p->left = malloc(alloc * sizeof *p->left);
    p->right = malloc(alloc * sizeof *p->right);
    p->labels = malloc(alloc * sizeof *p->labels);
    if (!p->left || !p->right || !p->labels) {
        siam_pairs_free(p);
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for %zu pairs", n);
    }
    p->n = n;
    return SIAM_OK;
}

/* labels is (n_images); p gets (2 * n_classes * (min class size - 1)) pairs. */
int siam_pairs_make(siam_pairs *p, const uint8_t *labels, size_t n_images, int n_classes,
                    uint64_t seed, siam_error *err) {
    memset(p, 0, sizeof *p);
    if (n_classes < 2 || n_classes > 256)
        return siam_error_set(err, SIAM_ERR_ARG, "pairs need 2 to 256 classes, got %d", n_classes);
    if (n_images > UINT32_MAX)
        return siam_error_set(err, SIAM_ERR_ARG, "%zu images: pair indices are 32-bit", n_images);
    if (n_images > 0 && !labels)
        return siam_error_set(err, SIAM_ERR_ARG, "siam_pairs_make: labels is NULL");

    size_t count[256] = {0}, start[257];
    for (size_t i = 0; i < n_images; i++) {
        if (labels[i] >= n_classes)
            return siam_error_set(err, SIAM_ERR_ARG,
                                  "label %u of image %zu is not below %d classes", labels[i], i,
                                  n_classes);
        count[labels[i]]++;
    }
    size_t min_count = n_images;
    start[0] = 0;
    for (int d = 0; d < n_classes; d++) {
        if (count[d] < 2)
            return siam_error_set(err, SIAM_ERR_ARG,
                                  "class %d has %zu image%s; pairs need at least 2 per class", d,
                                  count[d], count[d] == 1 ? "" : "s");
        if (count[d] < min_count)
            min_count = count[d];
        start[d + 1] = start[d] + count[d];
    }

    /* by_class[start[d] + i] = idx[d][i]: the i-th image of class d, in dataset order */
    uint32_t *by_class = malloc(n_images * sizeof *by_class);
    if (!by_class)
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for %zu image indices", n_images);
    size_t fill[256];
    memcpy(fill, start, (size_t)n_classes * sizeof *fill);
    for (size_t i = 0; i < n_images; i++)
        by_class[fill[labels[i]]++] = (uint32_t)i;

    size_t per_class = min_count - 1;
    int rc = pairs_alloc(p, 2 * (size_t)n_classes * per_class, err);
    if (rc != SIAM_OK) {
        free(by_class);
        return rc;
    }
    siam_rng rng;
    siam_rng_seed(&rng, seed);
    size_t k = 0;
    for (int d = 0; d < n_classes; d++) {
        const uint32_t *idx_d = by_class + start[d];
        for (size_t i = 0; i < per_class; i++) {
            int dn = (d + 1 + (int)siam_rng_below(&rng, (uint64_t)n_classes - 1)) % n_classes;
            p->left[k] = idx_d[i];
            p->right[k] = idx_d[i + 1];
            p->labels[k++] = 1;
            p->left[k] = idx_d[i];
            p->right[k] = by_class[start[dn] + i];
            p->labels[k++] = 0;
        }
    }
    free(by_class);
    return SIAM_OK;
}

void siam_pairs_shuffle(siam_pairs *p, uint64_t seed) {
    siam_rng rng;
    siam_rng_seed(&rng, seed);
    /* the same Fisher-Yates as siam_rng_shuffle_u32, one swap moving a whole pair */
    for (size_t i = p->n; i > 1; i--) {
        size_t j = (size_t)siam_rng_below(&rng, i);
        uint32_t l = p->left[i - 1], r = p->right[i - 1];
        uint8_t y = p->labels[i - 1];
        p->left[i - 1] = p->left[j];
        p->right[i - 1] = p->right[j];
        p->labels[i - 1] = p->labels[j];
        p->left[j] = l;
        p->right[j] = r;
        p->labels[j] = y;
    }
}

int siam_pairs_slice(siam_pairs *out, const siam_pairs *src, size_t begin, size_t end,
                     siam_error *err) {
    memset(out, 0, sizeof *out);
    if (begin > end || end > src->n)
        return siam_error_set(err, SIAM_ERR_ARG, "pair range [%zu, %zu) is not within 0..%zu",
                              begin, end, src->n);
    size_t n = end - begin;
    int rc = pairs_alloc(out, n, err);
    if (rc != SIAM_OK)
        return rc;
    if (n > 0) {
        memcpy(out->left, src->left + begin, n * sizeof *out->left);
        memcpy(out->right, src->right + begin, n * sizeof *out->right);
        memcpy(out->labels, src->labels + begin, n * sizeof *out->labels);
    }
    return SIAM_OK;
}

void siam_pairs_free(siam_pairs *p) {
    if (!p)
        return;
    free(p->left);
    free(p->right);
    free(p->labels);
    memset(p, 0, sizeof *p);
}
