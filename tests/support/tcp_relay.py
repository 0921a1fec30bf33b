"""A TCP relay that can be taken down: the engine API or the callback path
going away for a while, in tests and in tests/faults/campaign.py."""

import socket
import threading


class Relay:
    """A TCP relay on 127.0.0.1 that can be taken down: while down its port
    refuses connections and open ones are cut, as when a service stops. Several
    upstreams: each connection goes to the first that accepts, starting from a
    rotating one (upstreams that are down are skipped)."""

    def __init__(self, upstream_ports):
        self.upstreams = list(upstream_ports)
        self.port, self._down, self._open, self._lock, self._n = 0, False, [], threading.Lock(), 0
        self._listen()

    def _listen(self):
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", self.port))  # port 0 the first time: a free one
        self.port = self._server.getsockname()[1]
        self._server.listen(128)
        threading.Thread(target=self._accept, args=(self._server,), daemon=True).start()

    def _accept(self, server):
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            if self._down:
                client.close()
                return
            upstream, self._n = None, self._n + 1
            for k in range(len(self.upstreams)):
                try:
                    upstream = socket.create_connection(
                        ("127.0.0.1", self.upstreams[(self._n + k) % len(self.upstreams)]),
                        timeout=5,
                    )
                    upstream.settimeout(None)
                    break
                except OSError:
                    continue
            if upstream is None:
                client.close()
                continue
            with self._lock:
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except (OSError, EOFError):  # EOFError: eventlet's green socket, closed by the other side
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            with self._lock:
                for s in (src, dst):
                    if s in self._open:
                        self._open.remove(s)
                        s.close()

    def down(self):
        """Refuse new connections and cut the open ones."""
        self._down = True
        try:
            # Wakes the thread blocked in accept(); a plain close() would leave
            # the socket listening until one more connection arrived.
            self._server.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._server.close()
        with self._lock:
            for s in self._open:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
                except OSError:
                    pass
            self._open = []

    def up(self):
        self._down = False
        self._listen()

    close = down
