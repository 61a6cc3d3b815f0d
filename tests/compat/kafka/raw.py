"""A raw Kafka connection for tests that must send what no client library would."""

from __future__ import annotations

import datetime
import io
import socket
import struct

from kio.index import load_request_schema, load_response_schema
from kio.serial import entity_reader, entity_writer

from dovecote.kafka.build import build


class RawKafka:
    def __init__(self, address: str, timeout: float = 10) -> None:
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.correlation = 0

    def close(self) -> None:
        self.sock.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request_bytes(self, api_key: int, version: int, body: dict) -> tuple[int, bytes]:
        cls = load_request_schema(api_key, version)
        out = io.BytesIO()
        entity_writer(cls)(out, build(cls, body))
        self.correlation += 1
        header = struct.pack(">hhih", api_key, version, self.correlation, 4) + b"test"
        if cls.__flexible__:
            header += b"\x00"
        payload = header + out.getvalue()
        return self.correlation, struct.pack(">i", len(payload)) + payload

    def send(self, api_key: int, version: int, body: dict) -> int:
        correlation, data = self.request_bytes(api_key, version, body)
        self.sock.sendall(data)
        return correlation

    def receive(self, api_key: int, version: int, flexible_header: bool | None = None):
        size = struct.unpack(">i", self._read(4))[0]
        frame = self._read(size)
        correlation = struct.unpack_from(">i", frame, 0)[0]
        cls = load_response_schema(api_key, version)
        pos = 4
        if flexible_header if flexible_header is not None else (cls.__flexible__ and api_key != 18):
            pos += 1
        body, _ = entity_reader(cls)(memoryview(frame)[pos:], 0)
        return correlation, body

    def call(self, api_key: int, version: int, body: dict):
        sent = self.send(api_key, version, body)
        correlation, response = self.receive(api_key, version)
        assert correlation == sent
        return response

    def _read(self, n: int) -> bytes:
        chunks = b""
        while len(chunks) < n:
            chunk = self.sock.recv(n - len(chunks))
            if not chunk:
                raise ConnectionError("closed by the broker")
            chunks += chunk
        return chunks

    def closed_by_peer(self, timeout: float = 5) -> bool:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False


def ms(value: int) -> datetime.timedelta:
    return datetime.timedelta(milliseconds=value)
