"""How many CPU cores this process may use: the one count for thread pools and benchmark tables.

Example:
    >>> usable_cores() >= 1
    True
"""

from __future__ import annotations

import os


def usable_cores() -> int:
    """Cores this process may run on (cgroup/taskset aware where the OS says), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
