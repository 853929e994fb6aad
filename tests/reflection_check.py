#!/usr/bin/python3
"""Server reflection against a real siam-server, from Debian's python3-grpcio (which has no
reflection client): every request type on grpc.reflection.v1 and v1alpha, the descriptors
against protoc's own for the same .proto files, unknown names answered NOT_FOUND in the
error_response, then Similarity called through message classes built from nothing but what
reflection returned.

    reflection_check.py --server 127.0.0.1:PORT --stubs DIR [--token-file F]
    reflection_check.py --server 127.0.0.1:PORT --stubs DIR --token-file F --expect-token

DIR holds protoc --python_out of siam.proto, health.proto and grpc/reflection/v1/reflection.proto
(tests/reflection_test.sh makes it). --expect-token: the server wants the token in F; checks that
reflection refuses callers without it or with another one, and answers with it. One line per
check, then "N passed, M failed"; exits 1 if any failed. Run it with /usr/bin/python3.
"""

import argparse
import importlib.util
import math
import os
import sys

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

V1 = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
V1ALPHA = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
SERVICES = ["siam.v1.Siamese", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection"]
FILES = ["siam/v1/siam.proto", "grpc/health/v1/health.proto",
         "grpc/reflection/v1/reflection.proto", "grpc/reflection/v1alpha/reflection.proto"]
NOT_FOUND = grpc.StatusCode.NOT_FOUND.value[0]
UNIMPLEMENTED = grpc.StatusCode.UNIMPLEMENTED.value[0]


def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Failed(Exception):
    pass


def expect(cond, msg):
    if not cond:
        raise Failed(msg)


class Checks:
    def __init__(self):
        self.passed = self.failed = 0

    def run(self, name, fn):
        try:
            detail = fn()
        except Failed as e:
            self.failed += 1
            print(f"FAIL {name}: {e}", flush=True)
            return
        except grpc.RpcError as e:
            self.failed += 1
            print(f"FAIL {name}: unexpected {e.code().name}: {e.details()}", flush=True)
            return
        self.passed += 1
        print(f"ok   {name}" + (f" ({detail})" if detail else ""), flush=True)


class Reflection:
    def __init__(self, channel, rpb, metadata=()):
        self.rpb = rpb
        self.metadata = list(metadata)
        self.calls = {path: channel.stream_stream(
            path, request_serializer=rpb.ServerReflectionRequest.SerializeToString,
            response_deserializer=rpb.ServerReflectionResponse.FromString)
            for path in (V1, V1ALPHA)}
        self.raw = channel.stream_stream(V1, request_serializer=lambda b: b,
                                         response_deserializer=lambda b: b)

    def ask_many(self, requests, path=V1):
        """One stream, every request in it; the responses in order."""
        return list(self.calls[path](iter(requests), timeout=10, metadata=self.metadata))

    def ask(self, path=V1, **request):
        (r,) = self.ask_many([self.rpb.ServerReflectionRequest(**request)], path)
        return r


def files_of(response):
    expect(response.WhichOneof("message_response") == "file_descriptor_response",
           f"answered {response.WhichOneof('message_response')}: {response}")
    return [descriptor_pb2.FileDescriptorProto.FromString(b)
            for b in response.file_descriptor_response.file_descriptor_proto]


def error_of(response, code, *words):
    expect(response.WhichOneof("message_response") == "error_response",
           f"answered {response.WhichOneof('message_response')}, expected error_response")
    e = response.error_response
    expect(e.error_code == code, f"error_code {e.error_code}, expected {code}")
    missing = [w for w in words if w not in e.error_message]
    expect(not missing, f"error_message {e.error_message!r} lacks {missing}")
    return e.error_message


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--server", required=True)
    p.add_argument("--stubs", required=True)
    p.add_argument("--token-file")
    p.add_argument("--expect-token", action="store_true")
    args = p.parse_args()
    rpb = load("reflection_pb2", os.path.join(args.stubs, "grpc/reflection/v1/reflection_pb2.py"))
    siam_pb2 = load("siam_pb2", os.path.join(args.stubs, "siam/v1/siam_pb2.py"))
    health_pb2 = load("health_pb2", os.path.join(args.stubs, "grpc/health/v1/health_pb2.py"))
    token = None
    if args.token_file:
        with open(args.token_file) as f:
            token = f.readline().strip()
    channel = grpc.insecure_channel(args.server)
    md = [("authorization", "Bearer " + token)] if token else []
    refl = Reflection(channel, rpb, md)
    c = Checks()

    if args.expect_token:
        def refused(metadata, why):
            try:
                Reflection(channel, rpb, metadata).ask(list_services="")
            except grpc.RpcError as e:
                expect(e.code() == grpc.StatusCode.UNAUTHENTICATED,
                       f"{e.code().name} {e.details()!r}, expected UNAUTHENTICATED")
                expect(token not in (e.details() or ""), "the message holds the token")
                return e.details()
            raise Failed(f"answered {why}")
        for path in (V1, V1ALPHA):
            c.run(f"{path}: no token: UNAUTHENTICATED", lambda: refused([], "without a token"))
            c.run(f"{path}: a wrong token: UNAUTHENTICATED",
                  lambda: refused([("authorization", "Bearer not-" + token)], "a wrong token"))
            c.run(f"{path}: the token: list_services answered",
                  lambda path=path: expect(
                      [s.name for s in refl.ask(path, list_services="")
                       .list_services_response.service] == SERVICES, "wrong services"))
        print(f"{c.passed} passed, {c.failed} failed")
        return 0 if c.failed == 0 else 1

    # ---- list_services, on both package names ----
    for path in (V1, V1ALPHA):
        def list_services(path=path):
            r = refl.ask(path, list_services="*", host="siam.example")
            names = [s.name for s in r.list_services_response.service]
            expect(names == SERVICES, f"{names}, expected {SERVICES}")
            expect(r.valid_host == "siam.example", f"valid_host {r.valid_host!r}")
            expect(r.original_request.list_services == "*", "original_request not echoed")
            return ", ".join(names)
        c.run(f"{path}: list_services", list_services)

    # ---- file_by_filename: each file, equal to protoc's descriptor of it ----
    for name in FILES:
        def by_name(name=name):
            files = files_of(refl.ask(V1ALPHA, file_by_filename=name))
            expect([f.name for f in files] == [name], f"files {[f.name for f in files]}")
            expect(files[0].source_code_info.location, "no comments (source_code_info)")
            return f"{len(files[0].SerializeToString())} bytes"
        c.run(f"file_by_filename {name}", by_name)

    def same_as_protoc(module, name):
        want = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(want)
        (got,) = files_of(refl.ask(file_by_filename=name))
        # what CopyToProto leaves out: the comments and the fields' JSON names
        got.ClearField("source_code_info")
        def no_json_names(messages):
            for m in messages:
                for f in m.field:
                    f.ClearField("json_name")
                no_json_names(m.nested_type)
        no_json_names(got.message_type)
        expect(got == want, f"reflected {name} differs from protoc's: {str(got)[:300]}... vs "
                            f"{str(want)[:300]}...")
    c.run("siam/v1/siam.proto as reflected = protoc's FileDescriptorProto",
          lambda: same_as_protoc(siam_pb2, "siam/v1/siam.proto"))
    c.run("grpc/health/v1/health.proto as reflected = protoc's FileDescriptorProto",
          lambda: same_as_protoc(health_pb2, "grpc/health/v1/health.proto"))
    c.run("file_by_filename of an unknown file: NOT_FOUND naming it",
          lambda: error_of(refl.ask(file_by_filename="siam/v2/nope.proto"), NOT_FOUND,
                           "siam/v2/nope.proto"))

    # ---- file_containing_symbol ----
    symbols = [("siam.v1.Siamese", FILES[0]), ("siam.v1.Siamese.Similarity", FILES[0]),
               ("siam.v1.Siamese.TrainSet", FILES[0]), ("siam.v1.SimilarityRequest", FILES[0]),
               ("siam.v1.SimilarityRequest.left_images", FILES[0]),
               (".siam.v1.StatusResponse", FILES[0]),
               ("grpc.health.v1.Health.Check", FILES[1]),
               ("grpc.health.v1.HealthCheckResponse.ServingStatus", FILES[1]),
               ("grpc.health.v1.HealthCheckResponse.SERVING", FILES[1]),
               ("grpc.reflection.v1.ServerReflection", FILES[2]),
               ("grpc.reflection.v1alpha.ServerReflectionRequest", FILES[3])]
    for symbol, file in symbols:
        def by_symbol(symbol=symbol, file=file):
            files = files_of(refl.ask(file_containing_symbol=symbol))
            expect(files[0].name == file, f"first file {files[0].name}, expected {file}")
        c.run(f"file_containing_symbol {symbol} -> {file}", by_symbol)
    for symbol in ("siam.v1.Nope", "siam.v1.Siamese.Nope", "Siamese", "siam", ""):
        c.run(f"file_containing_symbol {symbol!r}: NOT_FOUND",
              lambda symbol=symbol: error_of(refl.ask(file_containing_symbol=symbol), NOT_FOUND,
                                             f"'{symbol}'"))

    # ---- extensions (siam's types have none) and a request that asks nothing ----
    def extension_numbers():
        r = refl.ask(all_extension_numbers_of_type="siam.v1.SimilarityRequest")
        expect(r.WhichOneof("message_response") == "all_extension_numbers_response", str(r))
        x = r.all_extension_numbers_response
        expect(x.base_type_name == "siam.v1.SimilarityRequest" and not x.extension_number, str(x))
    c.run("all_extension_numbers_of_type siam.v1.SimilarityRequest: none", extension_numbers)
    c.run("all_extension_numbers_of_type of an unknown type: NOT_FOUND",
          lambda: error_of(refl.ask(all_extension_numbers_of_type="siam.v1.Nope"), NOT_FOUND,
                           "siam.v1.Nope"))
    c.run("all_extension_numbers_of_type of a service (not a type): NOT_FOUND",
          lambda: error_of(refl.ask(all_extension_numbers_of_type="siam.v1.Siamese"), NOT_FOUND))
    c.run("file_containing_extension: NOT_FOUND",
          lambda: error_of(refl.ask(file_containing_extension=rpb.ExtensionRequest(
              containing_type="siam.v1.SimilarityRequest", extension_number=100)), NOT_FOUND,
              "100", "siam.v1.SimilarityRequest"))
    c.run("a request that asks nothing: UNIMPLEMENTED in error_response",
          lambda: error_of(refl.ask(host="x"), UNIMPLEMENTED, "list_services"))

    # ---- one stream, many questions, answered in order; the stream stays open after errors ----
    def many():
        asks = []
        for i in range(60):
            if i % 3 == 0:
                asks.append(rpb.ServerReflectionRequest(file_containing_symbol=symbols[i % 11][0]))
            elif i % 3 == 1:
                asks.append(rpb.ServerReflectionRequest(file_containing_symbol=f"siam.v1.No{i}"))
            else:
                asks.append(rpb.ServerReflectionRequest(list_services=str(i)))
        answers = refl.ask_many(asks)
        expect(len(answers) == len(asks), f"{len(answers)} answers to {len(asks)} requests")
        for q, a in zip(asks, answers):
            expect(a.original_request == q, f"answer to {q} echoes {a.original_request}")
        return f"{len(answers)} answers"
    c.run("60 requests on one stream: 60 answers in order", many)

    def malformed():
        try:
            list(refl.raw(iter([b"\xff\xff\xff"]), timeout=5, metadata=md))
        except grpc.RpcError as e:
            expect(e.code() == grpc.StatusCode.INVALID_ARGUMENT, f"{e.code().name}")
            return e.details()
        raise Failed("a malformed request was answered")
    c.run("bytes that are no ServerReflectionRequest: the stream ends INVALID_ARGUMENT", malformed)

    # ---- calling Similarity with classes built from reflection alone ----
    def dynamic_call():
        pool = descriptor_pool.DescriptorPool()
        for f in reversed(files_of(refl.ask(file_containing_symbol="siam.v1.Siamese.Similarity"))):
            pool.Add(f)
        method = pool.FindServiceByName("siam.v1.Siamese").FindMethodByName("Similarity")
        factory = message_factory.MessageFactory(pool)
        get = getattr(message_factory, "GetMessageClass", None) or factory.GetPrototype
        Req, Resp = get(method.input_type), get(method.output_type)
        call = channel.unary_unary("/siam.v1.Siamese/Similarity",
                                   request_serializer=Req.SerializeToString,
                                   response_deserializer=Resp.FromString)
        left, right = [0.0, 0.0, 1.0, 2.0], [3.0, 4.0, 1.0, 2.0]
        r = call(Req(dim=2, left=left, right=right), timeout=5, metadata=md)
        want = [math.dist(left[i:i + 2], right[i:i + 2]) for i in (0, 2)]
        expect(list(r.distances) == want, f"distances {list(r.distances)}, expected {want}")
        expect(list(r.same) == [False, True], f"same {list(r.same)}")
        return f"distances {list(r.distances)}"
    c.run("Similarity through message classes built from reflected descriptors", dynamic_call)

    print(f"{c.passed} passed, {c.failed} failed")
    return 0 if c.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
