"""A TCP proxy on a free loopback port, run in a thread, for faults that a
real network has: `cut()` closes every connection through it (a broker or
database connection killed), `freeze()` stops relaying on the open ones but
keeps them open (a half-open connection: no error, no data)."""

from __future__ import annotations

import asyncio
import contextlib
import threading


class TcpProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._frozen: set[asyncio.Event] = set()
        self.connections = 0  # accepted so far
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._accept, "127.0.0.1", 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        ready.set()
        self._loop.run_forever()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.close()
            return
        relaying = asyncio.Event()
        relaying.set()
        self._frozen.add(relaying)
        self._writers |= {writer, up_writer}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    await relaying.wait()  # frozen: hold the bytes, send nothing
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self._writers -= {writer, up_writer}
        self._frozen.discard(relaying)

    def _call(self, fn) -> None:  # type: ignore[no-untyped-def]
        done = threading.Event()

        def run() -> None:
            fn()
            done.set()

        self._loop.call_soon_threadsafe(run)
        done.wait(10)

    def cut(self) -> None:
        """Closes every connection through the proxy; new ones still work."""

        def close_all() -> None:
            for writer in list(self._writers):
                transport = writer.transport
                transport.abort()  # RST, not a polite FIN

        self._call(close_all)

    def freeze(self) -> None:
        """The open connections stop carrying data, silently; new ones work."""

        def freeze_all() -> None:
            for relaying in self._frozen:
                relaying.clear()
            self._frozen = set()  # connections made from now on relay as usual

        self._call(freeze_all)

    def close(self) -> None:
        def stop() -> None:
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            self._loop.stop()

        self._loop.call_soon_threadsafe(stop)
        self._thread.join(10)
