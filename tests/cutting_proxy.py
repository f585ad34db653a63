"""Test helper: a TCP proxy that cuts connections in the middle of a transfer.

    with CuttingProxy(("127.0.0.1", 5432), after_bytes=100_000) as proxy:
        proxy.cuts_left = 1        # the next connection to carry 100 kB from the server dies
        url = f"postgresql+psycopg://postgres@127.0.0.1:{proxy.port}/test"

A cut stops both directions in the middle of a server message, as a dropped network
path or a killed server process would look to the client.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class CuttingProxy:
    def __init__(self, target: tuple[str, int], after_bytes: int) -> None:
        self.target = target
        self.after_bytes = after_bytes
        self.cuts_left = 0  # connections still to cut
        self.cut_at: list[int] = []  # bytes from the server each cut connection had carried
        self.connections = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = threading.Event()

    def __enter__(self) -> CuttingProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._closed.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_server: bool) -> None:
        carried = 0
        try:
            while chunk := source.recv(65536):
                carried += len(chunk)
                if from_server and carried > self.after_bytes and self._take_cut(carried):
                    sink.sendall(chunk[: len(chunk) // 2])  # half a message, then nothing
                    return
                sink.sendall(chunk)
        except OSError:
            pass
        finally:  # both directions stop: shutdown also wakes the other direction's recv
            for side in (source, sink):
                with contextlib.suppress(OSError):
                    side.shutdown(socket.SHUT_RDWR)
                side.close()

    def _take_cut(self, carried: int) -> bool:
        with self._lock:
            if self.cuts_left <= 0:
                return False
            self.cuts_left -= 1
            self.cut_at.append(carried)
            return True
