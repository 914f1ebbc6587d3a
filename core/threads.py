"""Torch's CPU threads sized to the CPU this process may really use.

A container's CPU quota (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`) can be
smaller than the cores it sees; OpenMP threads beyond the quota spin and stall each other (an epoch
took 20x longer here). So the count is the quota, capped by the cores this process may run on.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

THREADS_ENV = "MNIST_TORCH_THREADS"  # a positive integer overrides the detection
# The app server reads each session's strokes in a thread of its own, so sessions already run in
# parallel: intra-op threads on top of them split tiny batches and spin. One took a Draw stroke from
# 43 to 33 ms of server CPU (bench.class_load); the Evaluate page's one-off pass over the test set
# takes 1.6 s instead of 0.9 s.
SERVER_THREADS = 1
CGROUP_ROOT = Path("/sys/fs/cgroup")
V2_FILE = "cpu.max"  # "max 100000" (no limit) or "<quota_us> <period_us>"
V1_FOLDERS = ("cpu", "cpu,cpuacct", ".")  # where v1 mounts the cpu controller
V1_QUOTA, V1_PERIOD = "cpu.cfs_quota_us", "cpu.cfs_period_us"  # quota -1 means no limit

log = logging.getLogger(__name__)


def _quota(quota: str, period: str) -> float | None:
    """CPUs a quota allows, or None when it sets no limit."""
    if quota in ("max", "-1") or int(period) <= 0:
        return None
    return int(quota) / int(period)


def _read_quota(root: Path) -> float | None:
    v2 = root / V2_FILE
    if v2.is_file():
        return _quota(*v2.read_text().split()[:2])
    for folder in V1_FOLDERS:
        quota, period = root / folder / V1_QUOTA, root / folder / V1_PERIOD
        if quota.is_file() and period.is_file():
            return _quota(quota.read_text().strip(), period.read_text().strip())
    return None


def quota_cpus(root: Path = CGROUP_ROOT) -> float | None:
    """The container's CPU quota in CPUs, or None when there is none (or it can't be read)."""
    try:
        return _read_quota(root)
    except (OSError, ValueError, TypeError):
        return None


def usable_cpus() -> int:
    """Cores this process may be scheduled on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _override(environ: dict) -> int | None:
    value = environ.get(THREADS_ENV, "").strip()
    if not value:
        return None
    if value.isdigit() and int(value) > 0:
        return int(value)
    log.warning("%s=%r is not a positive whole number; ignored", THREADS_ENV, value)
    return None


def thread_count(environ: dict | None = None, root: Path = CGROUP_ROOT) -> int:
    """$MNIST_TORCH_THREADS if set, else the CPU quota (whole CPUs, at least 1) capped by usable cores."""
    override = _override(os.environ if environ is None else environ)
    if override:
        return override
    quota = quota_cpus(root)
    cpus = usable_cpus()
    return cpus if quota is None else max(1, min(cpus, math.floor(quota)))


def use_cpu_budget() -> int:
    """Set torch's intra-op threads to thread_count(); returns the count."""
    return _set_torch_threads(thread_count())


def _set_torch_threads(count: int) -> int:
    import torch

    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
    return count


def use_server_threads() -> int:
    """Torch's intra-op threads for the app server: $MNIST_TORCH_THREADS if set, else SERVER_THREADS."""
    return _set_torch_threads(_override(os.environ) or SERVER_THREADS)
