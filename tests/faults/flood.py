"""A connection flood, run as its own process (so its CPU is not the test's
GIL): connect, sometimes send half a request, disconnect, as fast as it can.

    python -m tests.faults.flood HOST PORT SECONDS   -> prints "<connects> <failures>"
"""

from __future__ import annotations

import socket
import sys
import time

HALF_A_REQUEST = b"\x00\x00\x00\x0a\x00\x12\x00\x00\x00\x00"  # ApiVersions, cut short


def main(host: str, port: int, seconds: float) -> None:
    connects = failures = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=2) as sock:
                if connects % 2:
                    sock.sendall(HALF_A_REQUEST)
            connects += 1
        except OSError:
            failures += 1
    print(connects, failures, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
