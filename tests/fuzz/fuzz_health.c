/* fuzz_health: one grpc.health.v1.HealthCheckRequest (the whole input) through
 * siam_service_health. Stateless.
 *
 * Invariants: the outcome agrees with the return code; undecodable bytes are INVALID_ARGUMENT;
 * a request that decodes is answered OK with a HealthCheckResponse saying SERVING when it names
 * "" or "siam.v1.Siamese", NOT_FOUND otherwise, with a message naming the service in valid
 * UTF-8 without control characters (what the client sent, '?' for the bytes that are not). */
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"
#include "siam_service.h"
#include "siam_wire.h"

#include "grpc/health/v1/health.pb-c.h"

static siam_service *svc = NULL;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_quiet_logs();
    siam_error err;
    FUZZ_CHECK(siam_service_create(&svc, 1.0f, SIAM_LABELS_SIMILAR, 0, "fuzz", &err) == SIAM_OK,
               "init: %s", err.msg);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    siam_rpc_buf resp = fuzz_garbage_buf();
    siam_rpc_status st;
    memset(&st, 0xa5, sizeof st);
    int rc = siam_service_health(svc, data, size, &resp, &st);
    fuzz_check_outcome(rc, &st, &resp, "health");
    Grpc__Health__V1__HealthCheckRequest *q =
        grpc__health__v1__health_check_request__unpack(NULL, size, data);
    if (!q) {
        FUZZ_CHECK(rc == SIAM_RPC_INVALID_ARGUMENT, "undecodable bytes answered %s",
                   siam_rpc_code_name(rc));
        return 0;
    }
    const char *name = q->service ? q->service : "";
    if (name[0] == '\0' || strcmp(name, SIAM_WIRE_SERVICE) == 0) {
        FUZZ_CHECK(rc == SIAM_RPC_OK, "service '%s' answered %s: %s", name, siam_rpc_code_name(rc),
                   st.msg);
        Grpc__Health__V1__HealthCheckResponse *r =
            grpc__health__v1__health_check_response__unpack(NULL, resp.len, resp.data);
        FUZZ_CHECK(r != NULL, "an OK answer does not decode as a HealthCheckResponse");
        FUZZ_CHECK(r->status == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING,
                   "status %d", (int)r->status);
        grpc__health__v1__health_check_response__free_unpacked(r, NULL);
        siam_rpc_buf_free(&resp);
    } else {
        FUZZ_CHECK(rc == SIAM_RPC_NOT_FOUND, "unknown service answered %s", siam_rpc_code_name(rc));
        FUZZ_CHECK(strstr(st.msg, "unknown service '") != NULL, "message '%s'", st.msg);
        for (const unsigned char *p = (const unsigned char *)st.msg; *p; p++)
            FUZZ_CHECK(*p >= 0x20 && *p != 0x7f, "control character 0x%02x in the message", *p);
        /* names of printable ASCII come back as they are (up to the cut) */
        size_t n = strlen(name), k = 0;
        while (k < n && name[k] >= 0x20 && name[k] < 0x7f)
            k++;
        if (k == n && n < 100)
            FUZZ_CHECK(strstr(st.msg, name) != NULL, "message '%s' lacks the name '%s'", st.msg,
                       name);
    }
    grpc__health__v1__health_check_request__free_unpacked(q, NULL);
    return 0;
}
