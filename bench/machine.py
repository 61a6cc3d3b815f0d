"""What machine a run was on, recorded with the run and printed in the report.

A figure is only comparable with figures from the same kind of machine, so
the report states cores, memory, kernel, the disk under the brokers' data,
the Python and client library versions.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

CLIENTS = ("confluent-kafka", "nats-py", "redis", "hiredis", "pika", "aio-pika", "matplotlib")


def _first(path: str, prefix: str) -> str:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def _mount_of(path: Path) -> tuple[str, str, str]:
    """(device, mount point, file system type) of the mount holding ``path``."""
    best = ("?", "/", "?")
    target = str(path.resolve())
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            device, mount, fstype = line.split()[:3]
            inside = target == mount or target.startswith(mount.rstrip("/") + "/")
            if inside and len(mount) >= len(best[1]):
                best = (device, mount, fstype)
    except OSError:
        pass
    return best


def _disk(device: str) -> str:
    """Model and rotational flag of a block device, as far as sysfs tells."""
    name = Path(device).name
    base = Path("/sys/class/block") / name
    if not base.exists():
        return "?"
    parent = base.resolve().parent
    dev = parent if (parent / "queue").exists() and not (base / "queue").exists() else base
    model = (
        (dev / "device" / "model").read_text().strip()
        if (dev / "device" / "model").exists()
        else ""
    )
    rotational = (
        (dev / "queue" / "rotational").read_text().strip()
        if (dev / "queue" / "rotational").exists()
        else "?"
    )
    kind = {"0": "non-rotational", "1": "rotational"}.get(rotational, "?")
    return f"{model or name} ({kind})"


def _versions() -> dict[str, str]:
    found = {}
    for name in CLIENTS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    try:
        import confluent_kafka

        found["librdkafka"] = confluent_kafka.libversion()[0]
    except ImportError:
        pass
    return found


def describe(data_dir: str | Path | None = None) -> dict[str, Any]:
    """Facts about this machine; ``data_dir`` is where the brokers write."""
    data = Path(data_dir or os.environ.get("TMPDIR", "/tmp"))
    device, mount, fstype = _mount_of(data)
    mem_kib = _first("/proc/meminfo", "MemTotal").split()[0]
    try:
        usage = os.statvfs(data)
        free_gib = usage.f_bavail * usage.f_frsize / (1 << 30)
    except OSError:
        free_gib = 0.0
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        commit = ""
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _first("/proc/cpuinfo", "model name"),
        "memory_gib": round(int(mem_kib) / (1 << 20), 1) if mem_kib.isdigit() else None,
        "kernel": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "data_dir": str(data),
        "disk": f"{device} on {mount} ({fstype}), {_disk(device)}, {free_gib:.0f} GiB free",
        "load_at_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "executable": sys.executable,
        "commit": commit,
        "clients": _versions(),
    }
