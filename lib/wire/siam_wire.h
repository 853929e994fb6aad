/* siam_wire: the names on the wire (services and full method paths) of proto/siam/v1/siam.proto
 * and the standard grpc/health/v1/health.proto, in one place for everything that speaks them. */
#ifndef SIAM_WIRE_H
#define SIAM_WIRE_H

/* Service names: package.Service, as a health check names them. */
#define SIAM_WIRE_SERVICE        "siam.v1.Siamese"
#define SIAM_WIRE_HEALTH_SERVICE "grpc.health.v1.Health"

/* Full method paths: "/" service "/" method. */
#define SIAM_METHOD_TRAIN        "/" SIAM_WIRE_SERVICE "/Train"
#define SIAM_METHOD_SIMILARITY   "/" SIAM_WIRE_SERVICE "/Similarity"
#define SIAM_METHOD_SYNC_WEIGHTS "/" SIAM_WIRE_SERVICE "/SyncWeights"
#define SIAM_METHOD_STATUS       "/" SIAM_WIRE_SERVICE "/Status"
#define SIAM_METHOD_TRAIN_SET    "/" SIAM_WIRE_SERVICE "/TrainSet"
#define SIAM_METHOD_HEALTH_CHECK "/" SIAM_WIRE_HEALTH_SERVICE "/Check"

#endif
