"""A stand-in for a hung Qdrant server: it accepts connections and never answers (tests and bench/attacks.py)."""

from __future__ import annotations

import socket
import threading


class HungQdrant:
    """A TCP server on a free loopback port that accepts every connection, holds it and says nothing."""

    def __init__(self, backlog: int = 512) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(backlog)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, name="hung-qdrant", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        """Stop accepting and drop every held connection."""
        self.sock.close()
        for conn in self.held:
            conn.close()
