#!/usr/bin/env python3
"""A raw RedPepper agent-side peer for wire-level tests.

Connects to a manager with TLS, optionally sends an AgentHello, then sends the
given messages (MessagePack maps written as JSON) or raw frames, and prints
every message that comes back. Pings from the other side are answered with
Pongs unless --no-pong is given. Output is one JSON object per line on stdout:

  {"event": "connected", "cipher": ..., "version": ...}
  {"event": "sent", "message": {...}}            (or "raw": HEX for --send-raw)
  {"event": "received", "message": {...}}        bin values become {"bin": HEX}
  {"event": "closed"}                            the peer closed the connection
  {"event": "error", "message": S}
  {"event": "timeout"}
  {"event": "exit", "received": N}

Examples:

  raw_peer.py --port 7051 --ca ca.pem --id a1 --secret s --recv 1
  raw_peer.py --port 7051 --ca ca.pem --id a1 --secret s \\
      --send '{"t": 20, "id": "r1", "method": "nope", "args": [], "kwargs": {}}' --recv 2
  raw_peer.py --port 7051 --insecure --no-hello --send-raw 00100000 --recv 0 --timeout 5

--coalesce writes all frames given on the command line with one sendall, so
they share one TLS record (the case RedPepper 0.3.4 handles badly). With
--stdin, each further stdin line is a JSON message to send ({"raw": HEX} sends
raw bytes).
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import select
import struct
import sys
import threading
import time
from typing import Any

import msgpack

lock = threading.Lock()


def emit(event: str, **fields: Any) -> None:
    def default(value: Any) -> Any:
        if isinstance(value, (bytes, bytearray)):
            return {"bin": bytes(value).hex()}
        return str(value)

    with lock:
        sys.stdout.write(json.dumps({"event": event, **fields}, default=default) + "\n")
        sys.stdout.flush()


def frame(message: dict[str, Any]) -> bytes:
    body = msgpack.packb(message)
    return struct.pack(">I", len(body)) + body


class Peer:
    def __init__(self, sock: ssl.SSLSocket, answer_pings: bool):
        self.sock = sock
        self.answer_pings = answer_pings
        # One lock for every SSL call: OpenSSL's connection object must not be read
        # and written from two threads at once (that corrupts records: "bad record
        # mac"). The reader takes it only when bytes are there to read.
        self.io_lock = threading.Lock()
        self.received = 0
        self.counted = threading.Condition()
        self.closed = False

    # The socket is non-blocking: an SSL call never waits while holding the lock (a
    # read may need more bytes than are there, e.g. after a session ticket); waiting
    # is done in select, without the lock.
    def send_bytes(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            with self.io_lock:
                try:
                    view = view[self.sock.send(view) :]
                    continue
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    pass
            select.select([self.sock], [self.sock], [], 0.05)

    def recv_some(self, n: int) -> bytes:
        """Up to n bytes, waiting for them without holding the lock."""
        while True:
            with self.io_lock:
                try:
                    return self.sock.recv(n)
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    pass
            select.select([self.sock], [], [], 0.05)

    def recv_exact(self, n: int) -> bytes | None:
        data = b""
        while len(data) < n:
            chunk = self.recv_some(n - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def send(self, message: dict[str, Any]) -> None:
        self.send_bytes(frame(message))
        emit("sent", message=message)

    def reader(self) -> None:
        try:
            while True:
                header = self.recv_exact(4)
                if header is None:
                    break
                (length,) = struct.unpack(">I", header)
                body = self.recv_exact(length)
                if body is None:
                    break
                message = msgpack.unpackb(body, raw=False, strict_map_key=False)
                emit("received", message=message)
                is_ping = isinstance(message, dict) and message.get("t") == 12
                if is_ping and self.answer_pings:
                    self.send({"t": 13, "data": message.get("data")})
                if not is_ping:
                    with self.counted:
                        self.received += 1
                        self.counted.notify_all()
        except (OSError, ValueError) as e:
            emit("error", message=repr(e))
        emit("closed")
        with self.counted:
            self.closed = True
            self.counted.notify_all()

    def wait_received(self, count: int, deadline: float) -> bool:
        with self.counted:
            while self.received < count and not self.closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.counted.wait(remaining)
            return self.received >= count


def main() -> None:
    parser = argparse.ArgumentParser("raw_peer", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--server-name", default="localhost", help="TLS SNI / hostname")
    parser.add_argument("--ca", help="CA file to verify the manager with")
    parser.add_argument("--insecure", action="store_true", help="do not verify the manager")
    parser.add_argument("--cert", help="client certificate file")
    parser.add_argument("--key", help="client key file")
    parser.add_argument("--id", default="agent1")
    parser.add_argument("--secret", default="")
    parser.add_argument("--version", default="0.3.4")
    parser.add_argument("--no-hello", action="store_true", help="do not send AgentHello")
    parser.add_argument("--send", action="append", default=[], help="JSON message to send")
    parser.add_argument("--send-raw", action="append", default=[], help="hex bytes to send")
    parser.add_argument("--coalesce", action="store_true", help="one write for all frames")
    parser.add_argument("--no-pong", action="store_true", help="do not answer pings")
    parser.add_argument("--stdin", action="store_true", help="send JSON lines from stdin")
    parser.add_argument(
        "--recv", type=int, default=-1, help="exit after N non-ping messages (-1: until EOF)"
    )
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()

    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if args.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif args.ca:
        context.load_verify_locations(cafile=args.ca)
    if args.cert:
        context.load_cert_chain(args.cert, keyfile=args.key)

    deadline = time.monotonic() + args.timeout
    raw = socket.create_connection((args.host, args.port), timeout=args.timeout)
    sock = context.wrap_socket(raw, server_hostname=args.server_name)
    sock.setblocking(False)
    emit("connected", cipher=sock.cipher()[0], version=sock.version())
    peer = Peer(sock, answer_pings=not args.no_pong)
    threading.Thread(target=peer.reader, daemon=True).start()

    messages: list[dict[str, Any]] = []
    if not args.no_hello:
        messages.append({"t": 10, "id": args.id, "version": args.version, "credentials": args.secret})
    messages.extend(json.loads(m) for m in args.send)
    if args.coalesce:
        peer.send_bytes(b"".join(frame(m) for m in messages))
        for m in messages:
            emit("sent", message=m)
    else:
        for m in messages:
            peer.send(m)
    for h in args.send_raw:
        peer.send_bytes(bytes.fromhex(h))
        emit("sent", raw=h)
    if args.stdin:
        for line in sys.stdin:
            if not line.strip():
                continue
            m = json.loads(line)
            if isinstance(m, dict) and set(m) == {"raw"}:
                peer.send_bytes(bytes.fromhex(m["raw"]))
                emit("sent", raw=m["raw"])
            else:
                peer.send(m)

    target = args.recv if args.recv >= 0 else 1 << 62
    if not peer.wait_received(target, deadline) and not peer.closed:
        emit("timeout")
    emit("exit", received=peer.received)
    try:
        sock.close()
    except OSError:
        pass


if __name__ == "__main__":
    main()
