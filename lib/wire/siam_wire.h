/* siam_wire: the names on the wire (services and full method paths) of proto/siam/v1/siam.proto
 * and the standard grpc/health/v1/health.proto and grpc/reflection/v1{,alpha}/reflection.proto,
 * in one place for everything that speaks them; and the descriptors of those files. */
#ifndef SIAM_WIRE_H
#define SIAM_WIRE_H

#include <stddef.h>

/* Service names: package.Service, as a health check names them. */
#define SIAM_WIRE_SERVICE        "siam.v1.Siamese"
#define SIAM_WIRE_HEALTH_SERVICE "grpc.health.v1.Health"
/* Server reflection: one protocol under two package names (clients call either). */
#define SIAM_WIRE_REFLECTION_SERVICE         "grpc.reflection.v1.ServerReflection"
#define SIAM_WIRE_REFLECTION_V1ALPHA_SERVICE "grpc.reflection.v1alpha.ServerReflection"

/* Full method paths: "/" service "/" method. */
#define SIAM_METHOD_TRAIN          "/" SIAM_WIRE_SERVICE "/Train"
#define SIAM_METHOD_SIMILARITY     "/" SIAM_WIRE_SERVICE "/Similarity"
#define SIAM_METHOD_SYNC_WEIGHTS   "/" SIAM_WIRE_SERVICE "/SyncWeights"
#define SIAM_METHOD_STATUS         "/" SIAM_WIRE_SERVICE "/Status"
#define SIAM_METHOD_TRAIN_SET      "/" SIAM_WIRE_SERVICE "/TrainSet"
#define SIAM_METHOD_SEARCH         "/" SIAM_WIRE_SERVICE "/Search"
#define SIAM_METHOD_ADD_TO_GALLERY "/" SIAM_WIRE_SERVICE "/AddToGallery"
#define SIAM_METHOD_HEALTH_CHECK   "/" SIAM_WIRE_HEALTH_SERVICE "/Check"
#define SIAM_METHOD_REFLECTION     "/" SIAM_WIRE_REFLECTION_SERVICE "/ServerReflectionInfo"
#define SIAM_METHOD_REFLECTION_V1ALPHA                                                             \
    "/" SIAM_WIRE_REFLECTION_V1ALPHA_SERVICE "/ServerReflectionInfo"

/* Every .proto above and what it imports, compiled at build time into one serialized
 * google.protobuf.FileDescriptorSet (protoc --descriptor_set_out --include_imports
 * --include_source_info; generated, never committed): what server reflection answers from.
 * siam_wire_descriptor_set_size bytes; static data, never freed. */
extern const unsigned char siam_wire_descriptor_set[];
extern const size_t siam_wire_descriptor_set_size;

#endif
