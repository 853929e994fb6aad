/* siam_remote_head: the loss head as one EmbeddingBatch -> BatchResult exchange on a Train
 * stream to siam-server. */
#include "siam_remote_head.h"

#include <stdlib.h>
#include <string.h>

#include "siam/v1/siam.pb-c.h"
#include "siam_log.h"

int siam_remote_head_fn(void *ctx, const float *left, const float *right, const uint32_t *labels,
                        int B, int dim, float *loss, float *dist, float *grad_left,
                        float *grad_right, siam_idle_fn idle, void *idle_ctx, siam_error *err) {
    siam_remote_head *h = ctx;
    const char *server = h->server ? h->server : "?";
    if (B <= 0 || dim <= 0)
        return siam_error_set(err, SIAM_ERR_ARG, "remote loss head: batch %d, dim %d", B, dim);
    size_t n = (size_t)B * (size_t)dim;

    /* the message points at the caller's buffers: protobuf-c packs straight from them (it only
     * reads them; the casts drop const for the struct fields alone) */
    Siam__V1__EmbeddingBatch req = SIAM__V1__EMBEDDING_BATCH__INIT;
    req.dim = (uint32_t)dim;
    req.n_left = n;
    req.left = (float *)left;
    req.n_right = n;
    req.right = (float *)right;
    req.n_labels = (size_t)B;
    req.labels = (uint32_t *)labels;
    req.step = h->step;
    if (h->worker_id)
        req.worker_id = (char *)h->worker_id;

    double t0 = siam_now();
    size_t len = siam__v1__embedding_batch__get_packed_size(&req);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for a %zu-byte batch", len);
    siam__v1__embedding_batch__pack(&req, buf);

    siam_rpc_buf resp = {0};
    siam_rpc_status st = {0};
    siam_rpc_buf msg = {buf, len}; /* taken by the stream: no copy */
    int code = siam_rpc_stream_send(h->stream, &msg, &st);
    if (code == SIAM_RPC_OK) {
        double t1 = siam_now();
        if (idle) /* the server computes meanwhile */
            idle(idle_ctx);
        double t2 = siam_now();
        code = siam_rpc_stream_receive(h->stream, &resp, &st);
        t0 += t2 - t1;
    }
    h->rpc_seconds += siam_now() - t0;
    if (code != SIAM_RPC_OK) {
        siam_rpc_buf_free(&resp);
        return siam_error_set(err, SIAM_ERR_IO, "siam-server at %s: %s: %s (step %llu)%s", server,
                              siam_rpc_code_name(code), st.msg[0] ? st.msg : "no message",
                              (unsigned long long)h->step,
                              code == SIAM_RPC_RESOURCE_EXHAUSTED
                                  ? "; lower the batch size or raise --max-message-mb on both "
                                    "siam-client and siam-server"
                                  : "");
    }

    Siam__V1__BatchResult *res = siam__v1__batch_result__unpack(NULL, resp.len, resp.data);
    siam_rpc_buf_free(&resp);
    if (!res)
        return siam_error_set(err, SIAM_ERR_FORMAT,
                              "siam-server at %s: step %llu: the answer is not a BatchResult",
                              server, (unsigned long long)h->step);
    int rc = SIAM_OK;
    if (res->step != h->step)
        rc = siam_error_set(err, SIAM_ERR_FORMAT,
                            "siam-server at %s: answered step %llu, expected step %llu", server,
                            (unsigned long long)res->step, (unsigned long long)h->step);
    else if (res->n_distances != (size_t)B)
        rc = siam_error_set(err, SIAM_ERR_FORMAT,
                            "siam-server at %s: step %llu: %zu distances, expected batch = %d",
                            server, (unsigned long long)h->step, res->n_distances, B);
    else if (res->n_grad_left != n || res->n_grad_right != n)
        rc = siam_error_set(err, SIAM_ERR_FORMAT,
                            "siam-server at %s: step %llu: grad_left has %zu and grad_right %zu "
                            "floats, expected batch*dim = %zu",
                            server, (unsigned long long)h->step, res->n_grad_left,
                            res->n_grad_right, n);
    if (rc == SIAM_OK) {
        *loss = res->loss;
        memcpy(dist, res->distances, (size_t)B * sizeof *dist);
        memcpy(grad_left, res->grad_left, n * sizeof *grad_left);
        memcpy(grad_right, res->grad_right, n * sizeof *grad_right);
        h->step++;
    }
    siam__v1__batch_result__free_unpacked(res, NULL);
    return rc;
}
