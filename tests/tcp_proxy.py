"""A TCP proxy between the service and one dependency, to inject network faults for real.

``passing()`` forwards bytes both ways; ``cut()`` resets every open connection and every new
one; ``refuse()`` closes the listening port (connection refused); ``blackhole()`` accepts
connections and holds every byte without forwarding or answering, like a frozen peer.
"""

from __future__ import annotations

import select
import socket
import struct
import threading

PASS, CUT, REFUSE, BLACKHOLE = "pass", "cut", "refuse", "blackhole"


def _reset(sock: socket.socket) -> None:
    """Close with an RST, as a dropped link looks to the other side."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass


class TcpProxy:
    """Listens on 127.0.0.1:``port`` and forwards to ``target``; the mode can change anytime."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.mode = PASS
        self._lock = threading.Lock()
        self._links: list[tuple[socket.socket, socket.socket]] = []
        self._holding: set[socket.socket] = set()
        self._listener = self._listen(0)
        self.port = self._listener.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _listen(self, port: int) -> socket.socket:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        listener.settimeout(0.1)
        return listener

    # modes ------------------------------------------------------------------------------------
    def passing(self) -> None:
        with self._lock:
            if self.mode == REFUSE:
                self._listener = self._listen(self.port)
            self.mode = PASS
            self._holding.clear()

    def cut(self) -> None:
        with self._lock:
            self.mode = CUT
            self._drop_links()

    def refuse(self) -> None:
        with self._lock:
            self.mode = REFUSE
            self._drop_links()
            self._listener.close()

    def blackhole(self) -> None:
        with self._lock:
            self.mode = BLACKHOLE

    def held(self) -> int:
        """Connections whose client sent something the blackhole holds unanswered: requests
        of the service that wait on this dependency now."""
        with self._lock:
            return len(self._holding)

    def _note_held(self, client: socket.socket) -> None:
        try:
            waiting, _, _ = select.select([client], [], [], 0.05)
        except (OSError, ValueError):
            return  # the link was dropped meanwhile; _pump ends it
        if waiting:
            with self._lock:
                self._holding.add(client)
            threading.Event().wait(0.05)  # its bytes stay unread: select would answer at once

    def close(self) -> None:
        self._closed = True
        with self._lock:
            self._drop_links()
            self._listener.close()

    def _drop_links(self) -> None:
        for client, upstream in self._links:
            _reset(client)
            _reset(upstream)
        self._links.clear()

    # forwarding -------------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._closed:
            listener = self._listener
            try:
                client, _ = listener.accept()
            except (TimeoutError, OSError):
                if self.mode == REFUSE or listener.fileno() == -1:
                    threading.Event().wait(0.05)
                continue
            if self.mode == CUT:
                _reset(client)
                continue
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            _reset(client)
            return
        with self._lock:
            self._links.append((client, upstream))
        self._pump(client, upstream)

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        peers = {client: upstream, upstream: client}
        while not self._closed:
            if self.mode == BLACKHOLE:  # hold everything; answer nothing
                self._note_held(client)
                continue
            try:
                ready, _, _ = select.select(list(peers), [], [], 0.05)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        raise ConnectionError
                    peers[sock].sendall(data)
            except (OSError, ValueError, ConnectionError):
                break
        _reset(client)
        _reset(upstream)
