/* bench_wire.h: what the suites send siam-server (random pairs and sets, packed) and the checks
 * of its answers. */
#ifndef BENCH_WIRE_H
#define BENCH_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "siam_rng.h"
#include "siam_rpc.h"

/* Bytes of one image in a SimilarityRequest's left_images and right_images (28x28 grey levels). */
#define BENCH_IMAGE_BYTES 784

/* n floats of each side uniform in [-0.1, 0.1]. */
void bench_random_pairs(siam_rng *r, float *left, float *right, size_t n);

/* B random pairs of dim floats and B labels (0 or 1), from the generator seeded with seed. */
void bench_random_batch(uint64_t seed, int B, int dim, float *left, float *right, uint32_t *labels);

/* The batch as a packed EmbeddingBatch from worker (malloc'd, *len bytes); NULL when out of
 * memory. */
uint8_t *bench_pack_batch(const float *left, const float *right, const uint32_t *labels, int B,
                          int dim, const char *worker, size_t *len);

/* bench_random_batch's pairs as a packed EmbeddingBatch; NULL when out of memory. */
uint8_t *bench_train_request(int B, int dim, uint64_t seed, const char *worker, size_t *len);

/* A set of n embeddings (x, n x dim, row-major) with a group id each as a packed EmbeddingSet
 * from worker (malloc'd, *len bytes); NULL when out of memory. */
uint8_t *bench_pack_set(const float *x, const uint32_t *groups, int n, int dim, const char *worker,
                        size_t *len);

/* pairs random pairs (seed 1) as a packed SimilarityRequest; NULL when out of memory. */
uint8_t *bench_similarity_request(int pairs, int dim, size_t *len);

/* pairs pairs of random 28x28 images (bytes from the generator seeded with 1) as a packed
 * SimilarityRequest with left_images and right_images; NULL when out of memory. */
uint8_t *bench_similarity_image_request(int pairs, size_t *len);

/* pairs pairs of random images of image_bytes bytes each (from the generator seeded with 1), as
 * bench_similarity_image_request does for 28x28; NULL when out of memory. */
uint8_t *bench_similarity_images_request(int pairs, size_t image_bytes, size_t *len);

/* n random images of image_bytes bytes each (seeded with seed) as a packed SearchRequest with k;
 * NULL when out of memory. */
uint8_t *bench_search_request(int n, size_t image_bytes, int k, uint64_t seed, size_t *len);

/* OK when resp is a SearchResponse with n results of 1..k matches each; else INTERNAL with what
 * is wrong in st. */
int bench_check_search(const siam_rpc_buf *resp, int n, int k, siam_rpc_status *st);

/* OK when resp is a BatchResult for B pairs of dim floats, with a finite loss; else INTERNAL
 * with what is wrong in st. */
int bench_check_batch_result(const siam_rpc_buf *resp, int B, int dim, siam_rpc_status *st);

/* OK when resp is a SetResult with n x dim gradients, a finite loss and mining statistics;
 * else INTERNAL with what is wrong in st. */
int bench_check_set_result(const siam_rpc_buf *resp, int n, int dim, siam_rpc_status *st);

/* OK when resp is a SimilarityResponse with one distance and one score per pair; else INTERNAL
 * with what is wrong in st. */
int bench_check_similarity(const siam_rpc_buf *resp, int pairs, siam_rpc_status *st);

/* A channel to server (max_message 0: the default limit): 0, or -1 with the reason in st. */
int bench_channel_create(siam_rpc_channel **ch, const char *server, size_t max_message,
                         siam_rpc_status *st);

#endif
