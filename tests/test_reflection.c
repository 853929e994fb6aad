/* test_reflection: server reflection's answers without the transport. A FileDescriptorSet written
 * here by hand (three files importing one another; nested messages, enums, a oneof, a service and
 * extensions) is answered by symbol, file, extension and type, with the scoping protobuf uses;
 * the build's embedded set is checked and lists siam's services; damaged sets (every truncation,
 * seeded byte flips, duplicates, a missing import) are refused or answered without a crash. */
#include "test_util.h"

#include <string.h>

#include "grpc/reflection/v1/reflection.pb-c.h"
#include "siam_reflection.h"
#include "siam_wire.h"

/* ---- a protobuf writer, just enough for descriptors ---- */

typedef struct {
    uint8_t b[4096];
    size_t n;
} wbuf;

static void put_varint(wbuf *w, uint64_t v) {
    do {
        uint8_t byte = v & 0x7f;
        v >>= 7;
        w->b[w->n++] = byte | (v ? 0x80 : 0);
    } while (v);
}

static void put_bytes(wbuf *w, uint32_t field, const void *p, size_t len) {
    put_varint(w, (uint64_t)field << 3 | 2);
    put_varint(w, len);
    memcpy(w->b + w->n, p, len);
    w->n += len;
}

static void put_str(wbuf *w, uint32_t field, const char *s) {
    put_bytes(w, field, s, strlen(s));
}

static void put_msg(wbuf *w, uint32_t field, const wbuf *m) {
    put_bytes(w, field, m->b, m->n);
}

static void put_int(wbuf *w, uint32_t field, uint64_t v) {
    put_varint(w, (uint64_t)field << 3);
    put_varint(w, v);
}

/* named(field 1 = name) */
static wbuf named(const char *name) {
    wbuf w = {.n = 0};
    put_str(&w, 1, name);
    return w;
}

/* FieldDescriptorProto of an extension: name 1, extendee 2, number 3 */
static wbuf extension(const char *name, const char *extendee, int number) {
    wbuf w = named(name);
    put_str(&w, 2, extendee);
    put_int(&w, 3, (uint64_t)number);
    return w;
}

/* The test set: a.proto (package x.y) imports dep/b.proto (package b), which imports dep/c.proto
 * (package c, no package members but message C). */
static wbuf test_set(void) {
    wbuf c = named("dep/c.proto"), b = named("dep/b.proto"), a = named("a.proto");
    wbuf m;
    put_str(&c, 2, "c");
    m = named("C");
    put_msg(&c, 4, &m);
    put_str(&b, 2, "b");
    put_str(&b, 3, "dep/c.proto");
    m = named("B");
    put_msg(&b, 4, &m);

    put_str(&a, 2, "x.y");
    put_str(&a, 3, "dep/b.proto");
    wbuf outer = named("Outer"), inner = named("Inner"), color = named("Color"), v, f;
    v = named("RED");
    put_msg(&color, 2, &v);
    put_msg(&inner, 4, &color);
    f = named("f");
    put_msg(&outer, 2, &f);
    put_msg(&outer, 3, &inner);
    f = extension("ext_in_msg", ".x.y.Outer", 101);
    put_msg(&outer, 6, &f);
    f = named("choice");
    put_msg(&outer, 8, &f);
    put_msg(&a, 4, &outer);
    wbuf top = named("Top");
    v = named("TOP_A");
    put_msg(&top, 2, &v);
    put_msg(&a, 5, &top);
    wbuf svc = named("Svc"), method = named("Do");
    put_msg(&svc, 2, &method);
    put_msg(&a, 6, &svc);
    f = extension("ext_top", ".x.y.Outer", 100);
    put_msg(&a, 7, &f);

    wbuf set = {.n = 0};
    put_msg(&set, 1, &a); /* the importer first: answers must still list imports after it */
    put_msg(&set, 1, &b);
    put_msg(&set, 1, &c);
    return set;
}

/* ---- asking ---- */

typedef Grpc__Reflection__V1__ServerReflectionRequest Request;
typedef Grpc__Reflection__V1__ServerReflectionResponse Response;

/* Answers q from set; NULL (with the status printed) when the call fails. */
static Response *ask(const wbuf *set, Request *q) {
    size_t len = grpc__reflection__v1__server_reflection_request__get_packed_size(q);
    uint8_t req[1024];
    grpc__reflection__v1__server_reflection_request__pack(q, req);
    siam_rpc_buf resp = {0};
    siam_rpc_status st = {0};
    int rc = siam_reflection_answer(set->b, set->n, req, len, &resp, &st);
    CHECK(rc == SIAM_RPC_OK, "answer: %s %s", siam_rpc_code_name(rc), st.msg);
    Response *r =
        rc ? NULL
           : grpc__reflection__v1__server_reflection_response__unpack(NULL, resp.len, resp.data);
    siam_rpc_buf_free(&resp);
    return r;
}

static Response *ask_symbol(const wbuf *set, const char *symbol) {
    Request q = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
    q.message_request_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL;
    q.file_containing_symbol = (char *)symbol;
    return ask(set, &q);
}

/* The name (field 1) of the serialized FileDescriptorProto b, into out. */
static void file_name(const ProtobufCBinaryData *b, char *out, size_t cap) {
    out[0] = '\0';
    if (b->len > 2 && b->data[0] == 0x0a && b->data[1] < cap && (size_t)b->data[1] + 2 <= b->len) {
        memcpy(out, b->data + 2, b->data[1]);
        out[b->data[1]] = '\0';
    }
}

/* r answers with the files `want` ("a.proto dep/b.proto ..."), in that order. */
static void check_files(const Response *r, const char *want, const char *what) {
    CHECK(
        r &&
            r->message_response_case ==
                GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE,
        "%s: no file_descriptor_response (case %d)", what, r ? (int)r->message_response_case : -1);
    if (!r || !r->file_descriptor_response)
        return;
    char got[512] = "", name[128];
    for (size_t i = 0; i < r->file_descriptor_response->n_file_descriptor_proto; i++) {
        file_name(&r->file_descriptor_response->file_descriptor_proto[i], name, sizeof name);
        if (i)
            strcat(got, " ");
        strcat(got, name);
    }
    CHECK(strcmp(got, want) == 0, "%s: files '%s', expected '%s'", what, got, want);
}

static void check_error(const Response *r, int code, const char *words, const char *what) {
    CHECK(r &&
              r->message_response_case ==
                  GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE,
          "%s: no error_response", what);
    if (!r || !r->error_response)
        return;
    CHECK(r->error_response->error_code == code, "%s: code %d, expected %d", what,
          r->error_response->error_code, code);
    CHECK(strstr(r->error_response->error_message, words), "%s: message '%s' lacks '%s'", what,
          r->error_response->error_message, words);
}

static void free_response(Response *r) {
    if (r)
        grpc__reflection__v1__server_reflection_response__free_unpacked(r, NULL);
}

static void test_symbols(void) {
    wbuf set = test_set();
    siam_error err = {0};
    CHECK(siam_reflection_check(set.b, set.n, &err) == SIAM_OK, "the test set: %s", err.msg);
    const char *in_a[] = {
        "x.y.Outer",           "x.y.Outer.f",      "x.y.Outer.Inner",      "x.y.Outer.Inner.Color",
        "x.y.Outer.Inner.RED", "x.y.Outer.choice", "x.y.Outer.ext_in_msg", "x.y.Top",
        "x.y.TOP_A",           "x.y.Svc",          "x.y.Svc.Do",           "x.y.ext_top",
        ".x.y.Svc.Do"};
    for (size_t i = 0; i < sizeof in_a / sizeof in_a[0]; i++) {
        Response *r = ask_symbol(&set, in_a[i]);
        check_files(r, "a.proto dep/b.proto dep/c.proto", in_a[i]);
        free_response(r);
    }
    Response *r = ask_symbol(&set, "b.B");
    check_files(r, "dep/b.proto dep/c.proto", "b.B");
    free_response(r);
    r = ask_symbol(&set, "c.C");
    check_files(r, "dep/c.proto", "c.C");
    free_response(r);
    /* enum values live beside their enum, not inside it; no partial or package-less names */
    const char *missing[] = {"x.y.Outer.Inner.Color.RED",
                             "x.y.Top.TOP_A",
                             "Outer",
                             "x.y",
                             "x.y.Outer.g",
                             "x.y.Svc.Do.x",
                             "",
                             "x.y.Oute"};
    for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++) {
        r = ask_symbol(&set, missing[i]);
        check_error(r, SIAM_RPC_NOT_FOUND, "not found", missing[i]);
        free_response(r);
    }
    free_response(NULL);
}

static void test_files_and_extensions(void) {
    wbuf set = test_set();
    Request q = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
    q.message_request_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME;
    q.file_by_filename = "dep/b.proto";
    q.host = "h";
    Response *r = ask(&set, &q);
    check_files(r, "dep/b.proto dep/c.proto", "file_by_filename dep/b.proto");
    CHECK(r && strcmp(r->valid_host, "h") == 0, "valid_host echoed");
    CHECK(r && r->original_request &&
              strcmp(r->original_request->file_by_filename, "dep/b.proto") == 0,
          "original_request echoed");
    free_response(r);
    q.file_by_filename = "dep/\x01\xff.proto"; /* shown as printable ASCII only */
    r = ask(&set, &q);
    check_error(r, SIAM_RPC_NOT_FOUND, "'dep/??.proto' not found", "unknown file");
    free_response(r);

    Grpc__Reflection__V1__ExtensionRequest x = GRPC__REFLECTION__V1__EXTENSION_REQUEST__INIT;
    q.message_request_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION;
    q.file_containing_extension = &x;
    x.containing_type = "x.y.Outer";
    x.extension_number = 101;
    r = ask(&set, &q);
    check_files(r, "a.proto dep/b.proto dep/c.proto", "extension 101 of x.y.Outer");
    free_response(r);
    x.extension_number = 102;
    r = ask(&set, &q);
    check_error(r, SIAM_RPC_NOT_FOUND, "extension 102 of 'x.y.Outer'", "extension 102");
    free_response(r);

    q.message_request_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE;
    q.all_extension_numbers_of_type = "x.y.Outer";
    r = ask(&set, &q);
    CHECK(
        r &&
            r->message_response_case ==
                GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE,
        "all_extension_numbers_of_type answered");
    if (r && r->all_extension_numbers_response) {
        const Grpc__Reflection__V1__ExtensionNumberResponse *e = r->all_extension_numbers_response;
        CHECK(strcmp(e->base_type_name, "x.y.Outer") == 0, "base_type_name %s", e->base_type_name);
        CHECK(e->n_extension_number == 2 &&
                  e->extension_number[0] + e->extension_number[1] == 201 &&
                  e->extension_number[0] * e->extension_number[1] == 10100,
              "extension numbers 100 and 101 (%zu numbers)", e->n_extension_number);
    }
    free_response(r);
    q.all_extension_numbers_of_type = "x.y.Svc"; /* a service is not a message type */
    r = ask(&set, &q);
    check_error(r, SIAM_RPC_NOT_FOUND, "message type 'x.y.Svc' not found", "service as type");
    free_response(r);

    q.message_request_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES;
    q.list_services = "";
    r = ask(&set, &q);
    CHECK(r && r->list_services_response && r->list_services_response->n_service == 1 &&
              strcmp(r->list_services_response->service[0]->name, "x.y.Svc") == 0,
          "list_services: x.y.Svc");
    free_response(r);

    q.message_request_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST__NOT_SET;
    r = ask(&set, &q);
    check_error(r, SIAM_RPC_UNIMPLEMENTED, "asks nothing", "no question");
    free_response(r);

    /* bytes that are not a request end the stream */
    const uint8_t junk[] = {0xff, 0xff, 0xff};
    siam_rpc_buf resp = {0};
    siam_rpc_status st = {0};
    CHECK(siam_reflection_answer(set.b, set.n, junk, sizeof junk, &resp, &st) ==
              SIAM_RPC_INVALID_ARGUMENT,
          "junk request: %s", st.msg);
    CHECK(resp.data == NULL, "no answer to junk");
}

static void test_embedded(void) {
    siam_error err = {0};
    CHECK(siam_reflection_check(siam_wire_descriptor_set, siam_wire_descriptor_set_size, &err) ==
              SIAM_OK,
          "the embedded set (%zu bytes): %s", siam_wire_descriptor_set_size, err.msg);
    char names[8][SIAM_REFLECTION_NAME_MAX];
    int n =
        siam_reflection_services(siam_wire_descriptor_set, siam_wire_descriptor_set_size, names, 8);
    CHECK(n == 4, "%d services", n);
    const char *want[] = {SIAM_WIRE_SERVICE, SIAM_WIRE_HEALTH_SERVICE, SIAM_WIRE_REFLECTION_SERVICE,
                          SIAM_WIRE_REFLECTION_V1ALPHA_SERVICE};
    for (int i = 0; i < 4 && i < n; i++)
        CHECK(strcmp(names[i], want[i]) == 0, "service %d: %s, expected %s", i, names[i], want[i]);
}

/* Damaged sets: refused by check with a message, and never a crash or a read out of bounds
 * (the sanitizer build runs this too). */
static void test_damaged(void) {
    const uint8_t *full = siam_wire_descriptor_set;
    size_t n = siam_wire_descriptor_set_size;
    siam_error err = {0};
    CHECK(siam_reflection_check(full, 0, &err) == SIAM_ERR_FORMAT && strstr(err.msg, "empty"),
          "empty set: %s", err.msg);
    uint8_t *copy = malloc(2 * n);
    int accepted = 0;
    for (size_t len = 1; len < n; len++) {
        uint8_t *t = malloc(len); /* its own buffer, so that reading past len is caught */
        memcpy(t, full, len);
        err.msg[0] = '\0';
        int rc = siam_reflection_check(t, len, &err);
        CHECK(rc == SIAM_OK || (rc == SIAM_ERR_FORMAT && err.msg[0]), "truncated at %zu: %d", len,
              rc);
        accepted += rc == SIAM_OK;
        free(t);
    }
    /* only whole-file prefixes whose imports are all there pass (siam.proto, then + health...) */
    CHECK(accepted >= 1 && accepted <= 3, "%d truncations accepted", accepted);

    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (int k = 0; k < 2000; k++) {
        memcpy(copy, full, n);
        for (int j = 0; j < 3; j++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            copy[s % n] ^= (uint8_t)(1u << (s >> 60 & 7));
        }
        if (siam_reflection_check(copy, n, &err) != SIAM_OK)
            continue;
        /* accepted despite the flips (e.g. inside a comment): answering must hold up too */
        Request q = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
        q.message_request_case =
            GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL;
        q.file_containing_symbol = "siam.v1.Siamese.Similarity";
        uint8_t req[256];
        size_t len = grpc__reflection__v1__server_reflection_request__pack(&q, req);
        siam_rpc_buf resp = {0};
        siam_rpc_status st = {0};
        CHECK(siam_reflection_answer(copy, n, req, len, &resp, &st) == SIAM_RPC_OK, "flipped: %s",
              st.msg);
        siam_rpc_buf_free(&resp);
    }

    /* the same file twice; an import the set lacks */
    memcpy(copy, full, n);
    memcpy(copy + n, full, n);
    CHECK(siam_reflection_check(copy, 2 * n, &err) == SIAM_ERR_FORMAT && strstr(err.msg, "twice"),
          "doubled set: %s", err.msg);
    free(copy);
    wbuf a = named("a.proto"), set = {.n = 0};
    put_str(&a, 3, "gone.proto");
    put_msg(&set, 1, &a);
    CHECK(siam_reflection_check(set.b, set.n, &err) == SIAM_ERR_FORMAT &&
              strstr(err.msg, "a.proto imports gone.proto"),
          "missing import: %s", err.msg);
    uint8_t not_a_set[] = {0x0a, 0x05, 'a'};
    CHECK(siam_reflection_check(not_a_set, sizeof not_a_set, &err) == SIAM_ERR_FORMAT &&
              strstr(err.msg, "not a serialized FileDescriptorSet"),
          "garbage: %s", err.msg);
}

int main(void) {
    tu_trap_fp();
    test_symbols();
    test_files_and_extensions();
    test_embedded();
    test_damaged();
    return tu_finish();
}
