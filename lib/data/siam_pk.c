/* siam_pk: P x K batches with per-class shuffled passes and level per-epoch class quotas. */
#include "siam_pk.h"

#include <stdlib.h>
#include <string.h>

#include "siam_rng.h"

struct siam_pk {
    int p, k, n_classes;   /* n_classes: eligible ones (at least K images) */
    uint8_t cls[256];      /* eligible class labels */
    size_t start[256];     /* class c's images: order[start[c] .. start[c] + size[c]) */
    size_t size[256];      /* the pass order of each class, shuffled */
    size_t cursor[256];    /* next unused position in class c's pass */
    size_t quota[256];     /* groups class c still gives this epoch */
    size_t batches, batch; /* per epoch; batches done in the current epoch */
    uint64_t epoch;
    int skipped_classes;
    size_t skipped_images;
    uint32_t *order;  /* eligible images grouped by class */
    uint8_t *taken;   /* (n) marks the images of the group being drawn */
    uint64_t *rank;   /* (n_classes) random tie-breakers for choosing a batch's classes */
    uint32_t *picked; /* (n_classes) class slots, the batch's P first */
    siam_rng rng;
};

static void start_epoch(siam_pk *s) {
    for (int c = 0; c < s->n_classes; c++)
        s->quota[c] = s->size[c] / (size_t)s->k;
    s->batch = 0;
}

int siam_pk_create(siam_pk **out, const uint8_t *labels, size_t n, int p, int k, uint64_t seed,
                   siam_error *err) {
    *out = NULL;
    if (p < 1 || k < 1 || (size_t)p * (size_t)k > SIAM_PK_BATCH_MAX)
        return siam_error_set(err, SIAM_ERR_ARG,
                              "pk: P = %d, K = %d: expected P >= 1, K >= 1, P * K <= %d", p, k,
                              SIAM_PK_BATCH_MAX);
    if (n > UINT32_MAX)
        return siam_error_set(err, SIAM_ERR_ARG, "pk: %zu images, at most %u", n,
                              (unsigned)UINT32_MAX);
    size_t count[256] = {0};
    for (size_t i = 0; i < n; i++)
        count[labels[i]]++;
    siam_pk *s = calloc(1, sizeof *s);
    if (!s)
        return siam_error_set(err, SIAM_ERR_NOMEM, "pk: out of memory");
    s->p = p;
    s->k = k;
    size_t eligible = 0, groups = 0;
    int slot_of[256];
    for (int c = 0; c < 256; c++) {
        slot_of[c] = -1;
        if (count[c] == 0)
            continue;
        if (count[c] < (size_t)k) {
            s->skipped_classes++;
            s->skipped_images += count[c];
            continue;
        }
        slot_of[c] = s->n_classes;
        s->cls[s->n_classes] = (uint8_t)c;
        s->start[s->n_classes] = eligible;
        s->size[s->n_classes] = count[c];
        s->n_classes++;
        eligible += count[c];
        groups += count[c] / (size_t)k;
    }
    if (s->n_classes < p) {
        int have = s->n_classes;
        free(s);
        return siam_error_set(err, SIAM_ERR_ARG,
                              "pk: only %d class(es) of these %zu images have K = %d images, a "
                              "batch needs P = %d (lower P or K, or use a larger shard)",
                              have, n, k, p);
    }
    s->batches = groups / (size_t)p;
    s->order = malloc((eligible ? eligible : 1) * sizeof *s->order);
    s->taken = calloc(n ? n : 1, 1);
    s->rank = malloc((size_t)s->n_classes * sizeof *s->rank);
    s->picked = malloc((size_t)s->n_classes * sizeof *s->picked);
    if (!s->order || !s->taken || !s->rank || !s->picked) {
        siam_pk_free(s);
        return siam_error_set(err, SIAM_ERR_NOMEM, "pk: out of memory for %zu images", n);
    }
    size_t fill[256];
    memcpy(fill, s->start, sizeof fill);
    for (size_t i = 0; i < n; i++)
        if (slot_of[labels[i]] >= 0)
            s->order[fill[slot_of[labels[i]]]++] = (uint32_t)i;
    siam_rng_seed(&s->rng, seed);
    for (int c = 0; c < s->n_classes; c++)
        siam_rng_shuffle_u32(&s->rng, s->order + s->start[c], s->size[c]);
    start_epoch(s);
    *out = s;
    return SIAM_OK;
}

/* K distinct images of class slot c into idx: the rest of the current pass, then (reshuffled)
 * the next pass with the images already taken for this group moved behind the others. */
static void draw_group(siam_pk *s, int c, uint32_t *idx) {
    uint32_t *pass = s->order + s->start[c];
    size_t m = s->size[c], got = 0, k = (size_t)s->k;
    while (got < k && s->cursor[c] < m)
        idx[got++] = pass[s->cursor[c]++];
    if (got == k)
        return;
    siam_rng_shuffle_u32(&s->rng, pass, m);
    for (size_t i = 0; i < got; i++)
        s->taken[idx[i]] = 1;
    /* stable partition: untaken first (got < K <= m, so at least K - got of them) */
    size_t w = 0;
    for (size_t i = 0; i < m; i++)
        if (!s->taken[pass[i]])
            pass[w++] = pass[i];
    for (size_t i = 0; i < got; i++) {
        pass[w++] = idx[i];
        s->taken[idx[i]] = 0;
    }
    s->cursor[c] = 0;
    while (got < k)
        idx[got++] = pass[s->cursor[c]++];
}

void siam_pk_next(siam_pk *s, uint32_t *idx, uint32_t *group) {
    /* the P classes with the most groups left, ties broken by random keys: a partial selection
     * sort, P being small next to the number of classes */
    int nc = s->n_classes;
    for (int c = 0; c < nc; c++) {
        s->rank[c] = siam_rng_u64(&s->rng);
        s->picked[c] = (uint32_t)c;
    }
    for (int g = 0; g < s->p; g++) {
        int best = g;
        for (int i = g + 1; i < nc; i++) {
            uint32_t a = s->picked[i], b = s->picked[best];
            if (s->quota[a] > s->quota[b] ||
                (s->quota[a] == s->quota[b] && s->rank[a] > s->rank[b]))
                best = i;
        }
        uint32_t t = s->picked[g];
        s->picked[g] = s->picked[best];
        s->picked[best] = t;
    }
    size_t k = (size_t)s->k;
    for (int g = 0; g < s->p; g++) {
        int c = (int)s->picked[g];
        if (s->quota[c])
            s->quota[c]--;
        draw_group(s, c, idx + (size_t)g * k);
        /* a fresh id, distinct from this batch's earlier ones */
        uint32_t id;
        int dup;
        do {
            id = (uint32_t)(siam_rng_u64(&s->rng) >> 32);
            dup = 0;
            for (int h = 0; h < g; h++)
                dup |= group[(size_t)h * k] == id;
        } while (dup);
        for (size_t j = 0; j < k; j++)
            group[(size_t)g * k + j] = id;
    }
    if (++s->batch == s->batches) { /* the epoch is done: the next batch opens another */
        s->epoch++;
        start_epoch(s);
    }
}

size_t siam_pk_batches_per_epoch(const siam_pk *s) {
    return s->batches;
}

uint64_t siam_pk_epoch(const siam_pk *s) {
    return s->epoch;
}

void siam_pk_skipped(const siam_pk *s, int *classes, size_t *images) {
    *classes = s->skipped_classes;
    *images = s->skipped_images;
}

void siam_pk_free(siam_pk *s) {
    if (!s)
        return;
    free(s->order);
    free(s->taken);
    free(s->rank);
    free(s->picked);
    free(s);
}
