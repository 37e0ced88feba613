"""Append a benchmark table to benchmarks/RESULTS.md with the machine, date, commit and exact command."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

from inference.backend.cores import usable_cores

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


# CPU flags that decide which precision is fast here (bf16 is emulated, ~2x slower, without the last three)
SPEED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    flags: list[str] = []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu == (platform.processor() or platform.machine()):
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                present = set(line.split(":", 1)[1].split())
                flags = [f for f in SPEED_FLAGS if f in present]
    except OSError:
        pass
    cpu += f" (flags: {' '.join(flags) or 'none of ' + ' '.join(SPEED_FLAGS)})"
    cores = usable_cores()
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpu = ""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            gpu = f", GPU {out.stdout.strip().splitlines()[0]}"
    except (OSError, subprocess.SubprocessError):
        pass
    return f"{cpu}, {cores} cores, {mem_gb:.0f} GiB{gpu}"


def commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=RESULTS.parent, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=RESULTS.parent, timeout=10).stdout.strip()
        return f"{sha}{' (+ uncommitted changes)' if dirty else ''}" or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def command_line() -> str:
    """The command as typed: ``python -m benchmarks.NAME ...`` for a benchmark run as a module."""
    script = Path(sys.argv[0])
    if script.suffix == ".py" and script.resolve().parent == RESULTS.parent:
        return " ".join(["python", "-m", f"benchmarks.{script.stem}", *map(shlex.quote, sys.argv[1:])])
    return "python " + " ".join(shlex.quote(a) for a in sys.argv)


def append_results(title: str, table_md: str, command: str | None = None, notes: str = "", append: bool = True) -> str:
    """Print one section and append it to RESULTS.md (``append=False``: print only); returns the text."""
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = (f"\n## {title}\n\n- machine: {machine()}\n- date: {stamp}\n- commit: {commit()}\n"
            f"- command: `{command or command_line()}`\n" + (f"- notes: {notes}\n" if notes else "") + f"\n{table_md.strip()}\n")
    print(text)
    if not append:
        return text
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmark results\n\nAppended by the scripts in benchmarks/; newest at the bottom.\n")
    with open(RESULTS, "a", encoding="utf-8") as f:
        f.write(text)
    return text


def markdown_table(header: list[str], rows: list[list]) -> str:
    def cell(v) -> str:
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
