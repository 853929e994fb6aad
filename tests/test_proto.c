/* test_proto: the wire contract's generated code (protoc-c, built at build time) round-trips a
 * training batch bit-exactly, with the field names DESIGN.md fixes, and refuses garbage; the
 * paths of siam_wire.h are methods of its services. */
#include "test_util.h"

#include <string.h>

#include "grpc/health/v1/health.pb-c.h"
#include "siam/v1/siam.pb-c.h"
#include "siam_wire.h"

int main(void) {
    float left[6] = {0.1f, -2.5f, 3e-8f, 1.0f, 0.0f, -0.0f}, right[6] = {1, 2, 3, 4, 5, 6};
    uint32_t labels[2] = {1, 0};
    Siam__V1__EmbeddingBatch b = SIAM__V1__EMBEDDING_BATCH__INIT;
    b.dim = 3;
    b.n_left = 6, b.left = left;
    b.n_right = 6, b.right = right;
    b.n_labels = 2, b.labels = labels;
    b.step = 12345678901ull;
    b.worker_id = "worker-0";
    size_t len = siam__v1__embedding_batch__get_packed_size(&b);
    uint8_t *buf = malloc(len);
    CHECK(siam__v1__embedding_batch__pack(&b, buf) == len, "packed size");
    Siam__V1__EmbeddingBatch *u = siam__v1__embedding_batch__unpack(NULL, len, buf);
    CHECK(u != NULL, "unpack");
    if (u) {
        CHECK(u->dim == 3 && u->step == 12345678901ull, "scalars");
        CHECK(u->n_left == 6 && memcmp(u->left, left, sizeof left) == 0, "left bit-exact");
        CHECK(u->n_right == 6 && memcmp(u->right, right, sizeof right) == 0, "right bit-exact");
        CHECK(u->n_labels == 2 && u->labels[0] == 1 && u->labels[1] == 0, "labels");
        CHECK(strcmp(u->worker_id, "worker-0") == 0, "worker_id");
        siam__v1__embedding_batch__free_unpacked(u, NULL);
    }
    /* a truncated message and random bytes are refused, not misread */
    CHECK(siam__v1__embedding_batch__unpack(NULL, len - 3, buf) == NULL, "truncated refused");
    uint8_t junk[16];
    memset(junk, 0xff, sizeof junk);
    CHECK(siam__v1__embedding_batch__unpack(NULL, sizeof junk, junk) == NULL, "junk refused");
    free(buf);

    /* the service and the method names other languages call */
    const ProtobufCServiceDescriptor *svc = &siam__v1__siamese__descriptor;
    CHECK(strcmp(svc->name, "siam.v1.Siamese") == 0, "service name %s", svc->name);
    const char *methods[] = {"Train", "Similarity", "SyncWeights", "Status"};
    for (int i = 0; i < 4; i++) {
        int found = 0;
        for (unsigned k = 0; k < svc->n_methods; k++)
            found |= strcmp(svc->methods[k].name, methods[i]) == 0;
        CHECK(found, "method %s in the service", methods[i]);
    }

    /* siam_wire.h names what the .proto files define: every path is "/" service "/" a method of
     * that service, and every method of the services has its path */
    CHECK(strcmp(SIAM_WIRE_SERVICE, svc->name) == 0, "SIAM_WIRE_SERVICE %s", SIAM_WIRE_SERVICE);
    const ProtobufCServiceDescriptor *health = &grpc__health__v1__health__descriptor;
    CHECK(strcmp(SIAM_WIRE_HEALTH_SERVICE, health->name) == 0, "SIAM_WIRE_HEALTH_SERVICE %s",
          SIAM_WIRE_HEALTH_SERVICE);
    const struct {
        const char *path;
        const ProtobufCServiceDescriptor *svc;
    } paths[] = {{SIAM_METHOD_TRAIN, svc},          {SIAM_METHOD_SIMILARITY, svc},
                 {SIAM_METHOD_SYNC_WEIGHTS, svc},   {SIAM_METHOD_STATUS, svc},
                 {SIAM_METHOD_TRAIN_SET, svc},      {SIAM_METHOD_SEARCH, svc},
                 {SIAM_METHOD_ADD_TO_GALLERY, svc}, {SIAM_METHOD_HEALTH_CHECK, health}};
    int n_paths = (int)(sizeof paths / sizeof paths[0]);
    for (int i = 0; i < n_paths; i++) {
        char prefix[128];
        snprintf(prefix, sizeof prefix, "/%s/", paths[i].svc->name);
        int found = 0;
        if (strncmp(paths[i].path, prefix, strlen(prefix)) == 0)
            for (unsigned k = 0; k < paths[i].svc->n_methods; k++)
                found |= strcmp(paths[i].svc->methods[k].name, paths[i].path + strlen(prefix)) == 0;
        CHECK(found, "%s is a method of %s", paths[i].path, paths[i].svc->name);
    }
    CHECK(svc->n_methods == 7 && health->n_methods == 1,
          "siam_wire.h has a path for every method (%u + %u methods)", svc->n_methods,
          health->n_methods);
    return tu_finish();
}
