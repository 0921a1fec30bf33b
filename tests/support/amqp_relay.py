"""An AMQP 0-9-1 relay that can lose one chosen message: a real lost RPC
message between a Mistral component and RabbitMQ, for the stuck-execution tests.

The relay forwards whole frames both ways. From client to broker it holds each
`basic.publish` (method frame, content header, body frames) until the body is
complete, then either forwards it or drops it, when `drop_next(predicate)`
was armed and the predicate accepts the body (raw bytes of the oslo.messaging
envelope). Mistral publishes with publisher confirms (oslo.messaging sets
kombu's confirm_publish), and py-amqp then waits for a `basic.ack` on the
channel before the publish returns: the relay answers a dropped publish with
a `basic.ack` of its own, so the sender carries on as if the broker had taken
it, and the message is simply gone. Everything else (heartbeats, consumers,
other publishes) passes unchanged.
"""

import socket
import struct
import threading

FRAME_METHOD, FRAME_HEADER, FRAME_BODY = 1, 2, 3
FRAME_END = b"\xce"
BASIC, PUBLISH, ACK = 60, 40, 80


def _frames(sock):
    """Yield (type, channel, payload, raw bytes) of each frame read from `sock`;
    the 8-byte protocol header a client sends first is yielded as type 0."""
    buf = b""
    first = True
    while True:
        data = sock.recv(65536)
        if not data:
            return
        buf += data
        if first:
            if len(buf) < 8:
                continue
            if buf.startswith(b"AMQP"):
                yield 0, 0, b"", buf[:8]
                buf = buf[8:]
            first = False
        while len(buf) >= 7:
            kind, channel, size = struct.unpack(">BHI", buf[:7])
            if len(buf) < 7 + size + 1:
                break
            raw, buf = buf[: 7 + size + 1], buf[7 + size + 1 :]
            yield kind, channel, raw[7:-1], raw


def _ack_frame(channel, delivery_tag):
    payload = struct.pack(">HHQB", BASIC, ACK, delivery_tag, 0)
    return struct.pack(">BHI", FRAME_METHOD, channel, len(payload)) + payload + FRAME_END


class AmqpRelay:
    """Listens on 127.0.0.1:`port` (a free one by default) and relays each
    connection to RabbitMQ on `upstream_port`."""

    def __init__(self, upstream_port=5672):
        self.upstream_port = upstream_port
        self.dropped = []  # bodies of the publishes dropped so far
        self._predicate = None
        self._armed = threading.Event()
        self._lock = threading.Lock()
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._server.listen(64)
        self._open = []
        threading.Thread(target=self._accept, daemon=True).start()

    def drop_next(self, predicate):
        """Drop the next publish whose body makes predicate(body) true (once)."""
        with self._lock:
            self._predicate = predicate
        self._armed.set()

    def wait_dropped(self, count, timeout):
        """True once `count` publishes were dropped in all."""
        deadline = threading.Event()
        waited = 0.0
        while len(self.dropped) < count and waited < timeout:
            deadline.wait(0.1)
            waited += 0.1
        return len(self.dropped) >= count

    def close(self):
        try:
            self._server.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._server.close()
        for s in list(self._open):
            try:
                s.close()
            except OSError:
                pass

    # -- plumbing -------------------------------------------------------------

    def _accept(self):
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            self._open += [client, upstream]
            send_lock = threading.Lock()  # frames to the client come from two threads
            threading.Thread(
                target=self._to_broker, args=(client, upstream, send_lock), daemon=True
            ).start()
            threading.Thread(
                target=self._to_client, args=(upstream, client, send_lock), daemon=True
            ).start()

    def _to_client(self, upstream, client, send_lock):
        try:
            for _kind, _channel, _payload, raw in _frames(upstream):
                with send_lock:
                    client.sendall(raw)
        except OSError:
            pass
        finally:
            self._close(client, upstream)

    def _to_broker(self, client, upstream, send_lock):
        held = {}  # channel -> [raw frames of a publish being assembled, body bytes left]
        published = {}  # channel -> publishes sent on it (the client's delivery tags)
        try:
            for kind, channel, payload, raw in _frames(client):
                if kind == FRAME_METHOD and payload[:4] == struct.pack(">HH", BASIC, PUBLISH):
                    held[channel] = [[raw], None, b""]
                    continue
                if channel in held and kind == FRAME_HEADER:
                    entry = held[channel]
                    entry[0].append(raw)
                    entry[1] = struct.unpack(">Q", payload[4:12])[0]
                    if entry[1] == 0:
                        self._release(
                            channel, held.pop(channel), published, upstream, client, send_lock
                        )
                    continue
                if channel in held and kind == FRAME_BODY:
                    entry = held[channel]
                    entry[0].append(raw)
                    entry[2] += payload
                    if len(entry[2]) >= entry[1]:
                        self._release(
                            channel, held.pop(channel), published, upstream, client, send_lock
                        )
                    continue
                upstream.sendall(raw)
        except OSError:
            pass
        finally:
            self._close(client, upstream)

    def _release(self, channel, entry, published, upstream, client, send_lock):
        frames, _size, body = entry
        published[channel] = published.get(channel, 0) + 1
        with self._lock:
            drop = self._predicate is not None and self._predicate(body)
            if drop:
                self._predicate = None
                self.dropped.append(body)
        if not drop:
            upstream.sendall(b"".join(frames))
            return
        # Confirm it ourselves: the sender waits for an ack before going on.
        with send_lock:
            client.sendall(_ack_frame(channel, published[channel]))

    def _close(self, *socks):
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass
