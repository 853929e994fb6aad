/* bench_head.c: suite head, the server's loss head alone on one thread, in process. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_stats.h"
#include "bench_suites.h"
#include "bench_wire.h"
#include "siam_loss.h"
#include "siam_memory.h"
#include "siam_service.h"
#include "siam_tensor.h"

typedef struct {
    int B, dim;
    float *left, *right, *dist, *grad_left, *grad_right;
    uint32_t *labels;
    uint8_t *request; /* the same pairs as a packed EmbeddingBatch */
    size_t request_len;
    siam_service *svc;
    siam_train_stream ts;
    siam_rpc_status st; /* of the last siam_service_train */
} head_bench;

static void head_free(head_bench *h) {
    siam_free(h->left), siam_free(h->right), siam_free(h->dist);
    siam_free(h->grad_left), siam_free(h->grad_right);
    free(h->labels);
    free(h->request);
    siam_service_free(h->svc);
}

static int head_init(head_bench *h, int B, int dim) {
    memset(h, 0, sizeof *h);
    h->B = B, h->dim = dim;
    size_t n = (size_t)B * (size_t)dim;
    h->left = siam_alloc_floats(n), h->right = siam_alloc_floats(n);
    h->grad_left = siam_alloc_floats(n), h->grad_right = siam_alloc_floats(n);
    h->dist = siam_alloc_floats((size_t)B);
    h->labels = malloc((size_t)B * sizeof *h->labels);
    if (!h->left || !h->right || !h->grad_left || !h->grad_right || !h->dist || !h->labels ||
        siam_service_create(&h->svc, 1.0f, SIAM_LABELS_SIMILAR, 0.0f, SIAM_VERSION, NULL))
        return -1;
    bench_random_batch(1, B, dim, h->left, h->right, h->labels);
    h->request =
        bench_pack_batch(h->left, h->right, h->labels, B, dim, "siam-bench", &h->request_len);
    return h->request ? 0 : -1;
}

/* what the server computes for one batch: loss and distances, then both gradients */
static int head_loss(void *ctx) {
    head_bench *h = ctx;
    siam_contrastive_forward(h->dist, h->left, h->right, h->labels, h->B, h->dim, 1.0f,
                             SIAM_LABELS_SIMILAR);
    siam_contrastive_backward(h->grad_left, h->grad_right, h->left, h->right, h->dist, h->labels,
                              h->B, h->dim, 1.0f, SIAM_LABELS_SIMILAR);
    return 0;
}

/* the server's whole Train request: decode, validate, compute, encode the answer */
static int head_service_train(void *ctx) {
    head_bench *h = ctx;
    siam_rpc_buf resp = {0};
    int rc = siam_service_train(h->svc, &h->ts, h->request, h->request_len, &resp, &h->st);
    siam_rpc_buf_free(&resp);
    return rc;
}

int bench_suite_head(const bench_config *c) {
    siam_blas_set_threads(1);  /* one core: no OpenBLAS worker competes with the timed thread */
    siam_malloc_keep_memory(); /* as siam-server does */
    head_bench h;
    if (head_init(&h, c->batch, c->dim)) {
        head_free(&h);
        fprintf(stderr, BENCH_PROG ": out of memory for a batch of %d x %d\n", c->batch, c->dim);
        return 1;
    }
    double loss_rate = 0, train_rate = 0;
    bench_call_rate(head_loss, &h, c->reps, &loss_rate);
    int rc = bench_call_rate(head_service_train, &h, c->reps, &train_rate);
    if (rc) {
        fprintf(stderr, BENCH_PROG ": siam_service_train: %s: %s\n", siam_rpc_code_name(rc),
                h.st.msg);
        head_free(&h);
        return 1;
    }
    loss_rate *= c->batch, train_rate *= c->batch; /* calls/s -> pairs/s */
    printf("head loss.b%d.d%d %.0f pairs/s\n", c->batch, c->dim, loss_rate);
    printf("head service_train.b%d.d%d %.0f pairs/s\n", c->batch, c->dim, train_rate);
    if (c->json)
        printf("{\"suite\": \"head\", \"batch\": %d, \"dim\": %d, \"request_bytes\": %zu, "
               "\"loss_pairs_per_s\": %.0f, \"service_train_pairs_per_s\": %.0f}\n",
               c->batch, c->dim, h.request_len, loss_rate, train_rate);
    head_free(&h);
    return 0;
}
