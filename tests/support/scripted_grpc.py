"""A RunService whose StartRun is a given function, on a real socket: for
answers the real server will not give on demand (hangs, odd status codes)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
from tenantpilot.runs.v1 import runs_pb2

StartRun = Callable[[runs_pb2.StartRunRequest, grpc.ServicerContext], runs_pb2.StartRunResponse]


@contextlib.contextmanager
def scripted_start_run(start_run: StartRun) -> Iterator[str]:
    """Serves `start_run` as RunService/StartRun; yields the target."""
    handler = grpc.method_handlers_generic_handler(
        "tenantpilot.runs.v1.RunService",
        {
            "StartRun": grpc.unary_unary_rpc_method_handler(
                start_run,
                request_deserializer=runs_pb2.StartRunRequest.FromString,
                response_serializer=runs_pb2.StartRunResponse.SerializeToString,
            )
        },
    )
    server = grpc.server(ThreadPoolExecutor(max_workers=4), handlers=[handler])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(0)
