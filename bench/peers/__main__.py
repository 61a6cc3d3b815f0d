"""``python -m bench.peers --check``: start each peer, round-trip a few messages, stop it.

Run this first on a new machine: it shows in under a minute whether every
peer installs, starts, answers its client and stops cleanly, with the
versions and start-up times a benchmark report will quote.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback

from bench.peers import PEERS, PeerInfo, peer
from bench.peers._proc import group_alive, tcp_accepts
from bench.peers.checks import CHECKS


def _leftovers(info: PeerInfo) -> str:
    """'' if the peer is fully gone (no process, port closed), else what is left."""
    problems = [f"process group {g} alive" for g in info.pgids if group_alive(g)]
    if tcp_accepts(info.host, info.port, timeout=0.2):
        problems.append(f"port {info.port} still accepting")
    return "; ".join(problems)


def check_one(name: str, base_dir: str | None, verbose: bool) -> bool:
    """Start, check, stop one peer; print one result line. True when all went well."""
    started = time.monotonic()
    info: PeerInfo | None = None
    status, detail = "FAIL", ""
    try:
        with peer(name, base_dir=base_dir) as info:
            if verbose:
                print(f"  {name} command: {' '.join(info.command)}")
                for key, value in info.extra.items():
                    print(f"  {name} {key}: {value.strip()}")
            detail = CHECKS[name](info)
            status = "OK"
    except Exception as exc:
        detail = f"{type(exc).__name__}: {exc}"
        if verbose:
            traceback.print_exc()
    if info is not None and (left := _leftovers(info)):
        status, detail = "FAIL", f"{detail}; left running: {left}"
    total = time.monotonic() - started
    version = info.version if info else "?"
    startup = f"{info.startup_s:6.2f}s" if info else "     - "
    print(f"{name:<22} {version:<58} {startup} {total:6.1f}s  {status:<4} {detail}", flush=True)
    return status == "OK"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__)
    parser.add_argument("--check", action="store_true", help="start, round-trip and stop each peer")
    parser.add_argument(
        "--only", nargs="+", choices=list(PEERS), help="peers to check (default: all)"
    )
    parser.add_argument("--base-dir", help="where peers' temporary data dirs go (default: $TMPDIR)")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="print command lines and config"
    )
    args = parser.parse_args(argv)
    if not args.check:
        print("peers:", ", ".join(PEERS))
        print("run with --check to start each one and round-trip a few messages")
        return 0
    print(f"{'peer':<22} {'version':<58} {'startup':>7} {'total':>6}  result")
    results = [check_one(name, args.base_dir, args.verbose) for name in args.only or PEERS]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
