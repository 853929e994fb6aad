/* siam_reflection: gRPC server reflection (grpc.reflection.v1 and grpc.reflection.v1alpha
 * ServerReflection/ServerReflectionInfo), so that grpcurl, evans, Postman and the reflection
 * clients of other languages find siam-server's services and their messages without a .proto.
 * It answers from a serialized google.protobuf.FileDescriptorSet (siam-server: the one the build
 * embeds, siam_wire_descriptor_set), walking its wire format directly: each file's bytes are
 * sent exactly as protoc wrote them, and nothing is kept between requests. */
#ifndef SIAM_REFLECTION_H
#define SIAM_REFLECTION_H

#include <stddef.h>
#include <stdint.h>

#include "siam_error.h"
#include "siam_rpc.h"

/* Longest fully qualified name looked up or listed ("siam.v1.Siamese.Similarity"); longer names
 * in a request are simply not found, longer ones in a set are refused by siam_reflection_check. */
#define SIAM_REFLECTION_NAME_MAX 512

/* Checks that set[set_len] is a FileDescriptorSet this module can answer from: well-formed
 * protobuf all the way down to the names it reads, every file named, once, and every
 * dependency of a file in the set (protoc --include_imports), no name longer than
 * SIAM_REFLECTION_NAME_MAX. SIAM_OK, or SIAM_ERR_FORMAT saying what is wrong and where. */
int siam_reflection_check(const uint8_t *set, size_t set_len, siam_error *err);

/* The fully qualified names of the services in set, "pkg.Service", in file order, written into
 * names[0..cap) (each SIAM_REFLECTION_NAME_MAX bytes); returns how many there are (may exceed
 * cap), or -1 when set is malformed. list_services answers with exactly these. */
int siam_reflection_services(const uint8_t *set, size_t set_len,
                             char (*names)[SIAM_REFLECTION_NAME_MAX], int cap);

/* One ServerReflectionRequest (req[len]) -> one ServerReflectionResponse in *resp (malloc'd),
 * answered from set (which siam_reflection_check accepts):
 *   list_services                  every service in set;
 *   file_by_filename               that file;
 *   file_containing_symbol         the file declaring a package-qualified message, enum, enum
 *                                  value, field, oneof, service, method or extension (a leading
 *                                  '.' is allowed);
 *   file_containing_extension      the file declaring that extension of that type;
 *   all_extension_numbers_of_type  the extension numbers of a message type (none, for siam's);
 * files come with every file they import, directly or not, after them. A question that cannot be
 * answered is answered OK with error_response: NOT_FOUND naming what was not found, UNIMPLEMENTED
 * for a request that sets none of the questions above (a newer client's). Only a request that is
 * not a ServerReflectionRequest fails (INVALID_ARGUMENT; RESOURCE_EXHAUSTED without memory), which
 * ends the stream. v1 and v1alpha messages are the same bytes: one function serves both. */
int siam_reflection_answer(const uint8_t *set, size_t set_len, const uint8_t *req, size_t len,
                           siam_rpc_buf *resp, siam_rpc_status *st);

/* Registers ServerReflectionInfo under both package names on s (before siam_rpc_server_start),
 * answering from the build's siam_wire_descriptor_set, which is checked here first
 * (SIAM_ERR_FORMAT). Like every method, it asks for the server's bearer token (lib/net). */
int siam_reflection_add(siam_rpc_server *s, siam_error *err);

#endif
