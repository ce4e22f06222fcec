"""Runs the emulator: uvicorn on a free loopback port with TLS, in a thread
of the calling process (tests read its state directly) or as the process
itself (`python -m runsvc.source.graph.emulator`)."""

from __future__ import annotations

import asyncio
import socket
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType

import uvicorn

from runsvc.source.graph.emulator.app import create_app
from runsvc.source.graph.emulator.state import EmulatorState
from runsvc.source.graph.emulator.tls import ServerFiles, write_server_files


def bind_loopback(port: int = 0, host: str = "127.0.0.1") -> socket.socket:
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on such sockets,
    # and without it small keep-alive responses wait for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def uvicorn_server(
    state: EmulatorState, files: ServerFiles, *, log_level: str = "warning"
) -> uvicorn.Server:
    config = uvicorn.Config(
        create_app(state),
        ssl_certfile=str(files.cert_file),
        ssl_keyfile=str(files.key_file),
        log_level=log_level,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=2,
        # Clients keep connections for a while between calls (a paced worker
        # waits its turn); closing them after uvicorn's default 5 s would
        # cost a TLS handshake per call.
        timeout_keep_alive=120,
        backlog=2048,
    )
    return uvicorn.Server(config)


class GraphEmulator:
    """`with GraphEmulator() as graph:` serves at graph.url until the block ends."""

    def __init__(
        self, state: EmulatorState | None = None, *, directory: Path | None = None
    ) -> None:
        self.state = state or EmulatorState()
        self._tmp = None if directory else tempfile.TemporaryDirectory(prefix="graph-emulator-")
        self.files = write_server_files(directory or Path(self._tmp.name))
        self._sock = bind_loopback()
        self.url = f"https://127.0.0.1:{self._sock.getsockname()[1]}"
        self._server = uvicorn_server(self.state, self.files)
        self._thread = threading.Thread(target=self._serve, name="graph-emulator", daemon=True)

    @property
    def ca_file(self) -> Path:
        return self.files.ca_file

    def _serve(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._sock]))

    def start(self, timeout: float = 10.0) -> GraphEmulator:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the Graph emulator did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> GraphEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
