"""Torch threads from the container's CPU quota, on cgroup files the tests write."""

import pytest
import torch

from core import threads
from core.threads import (
    SERVER_THREADS,
    THREADS_ENV,
    quota_cpus,
    thread_count,
    use_cpu_budget,
    use_server_threads,
)


def write(root, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize(
    "files, cpus",
    [
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu.max": "400000 200000\n"}, 2.0),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3.0),
        ({"cpu,cpuacct/cpu.cfs_quota_us": "50000\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}, 0.5),
        ({"cpu.max": "garbage\n"}, None),  # unreadable: no quota rather than a crash
        ({}, None),
    ],
)
def test_quota_is_read_from_cgroup_v2_and_v1_files(tmp_path, files, cpus):
    for name, text in files.items():
        write(tmp_path, name, text)
    assert quota_cpus(tmp_path) == cpus


@pytest.mark.parametrize(
    "quota, usable, expected",
    [("max", 8, 8), ("200000", 8, 2), ("50000", 8, 1), ("800000", 2, 2), ("250000", 16, 2)],
)
def test_threads_are_the_quota_capped_by_usable_cores(tmp_path, monkeypatch, quota, usable, expected):
    write(tmp_path, "cpu.max", f"{quota} 100000\n")
    monkeypatch.setattr(threads, "usable_cpus", lambda: usable)
    assert thread_count({}, tmp_path) == expected


def test_the_environment_overrides_and_a_bad_value_is_ignored_with_a_warning(tmp_path, caplog):
    write(tmp_path, "cpu.max", "100000 100000\n")
    assert thread_count({THREADS_ENV: "3"}, tmp_path) == 3
    assert thread_count({THREADS_ENV: "lots"}, tmp_path) == 1 and "not a positive whole number" in caplog.text
    assert thread_count({THREADS_ENV: "0"}, tmp_path) == 1


def test_use_cpu_budget_sets_torch(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setenv(THREADS_ENV, "1")
    try:
        assert use_cpu_budget() == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_the_server_infers_on_one_thread_unless_told_otherwise(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv(THREADS_ENV, raising=False)
        assert use_server_threads() == SERVER_THREADS == torch.get_num_threads() == 1
        monkeypatch.setenv(THREADS_ENV, "2")
        assert use_server_threads() == 2 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
