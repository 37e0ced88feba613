"""The fuzz harness (tests/test_fuzz.py) run long: many examples per target, random (not CI's fixed draw).

    python -m benchmarks.fuzz_long                       # the default counts, ~105,000 examples in all
    python -m benchmarks.fuzz_long --scale 0.01 --no-append   # a quick look

Each target runs as its own pytest process under Hypothesis's ``long`` profile with its example count
(``FUZZ_EXAMPLES``); the table gives the examples tried (passing, plus those Hypothesis discarded as
invalid), the failures and the wall time of each, and is appended to RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from benchmarks._results import append_results, markdown_table

# examples per target: the cheap parsers get the most, loaders that open ONNX sessions the fewest
TARGETS = {
    "test_the_pair_reader_reads_or_names_the_file": 30_000,
    "test_lines_split_as_universal_newlines_and_an_overlong_one_is_refused": 10_000,
    "test_a_config_file_of_any_shape_is_a_config_or_one_error": 20_000,
    "test_a_set_option_of_any_value_is_a_config_or_one_error": 20_000,
    "test_pairs_through_the_api_score_the_same_in_any_order": 8_000,
    "test_scoring_any_file_writes_every_row_or_nothing": 8_000,
    "test_either_scoring_command_writes_every_row_or_exits_with_one_line": 2_000,
    "test_any_query_gets_hits_or_a_clear_error": 5_000,
    "test_a_model_folder_edited_anyhow_loads_or_is_refused": 1_000,
    "test_an_index_edited_anyhow_loads_or_is_refused": 1_000,
}
# Hypothesis's statistics line, e.g. "- 400 passing, 0 failing, and 24 invalid test cases" (older: "examples")
COUNTS = re.compile(r"(\d+) passing(?: examples?)?, (\d+) failing(?: examples?)?, (?:and )?(\d+) invalid")


def run_target(name: str, examples: int) -> tuple[int, int, int, float, int]:
    """(passing, failing, invalid, seconds, pytest exit code) of one target."""
    env = {**os.environ, "HYPOTHESIS_PROFILE": "long", "FUZZ_EXAMPLES": str(examples)}
    start = time.time()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", f"tests/test_fuzz.py::{name}",
                           "--hypothesis-show-statistics"], capture_output=True, text=True, env=env,
                          cwd=Path(__file__).resolve().parents[1])
    seconds = time.time() - start
    found = [tuple(map(int, m)) for m in COUNTS.findall(proc.stdout)]
    passing, failing, invalid = (sum(col) for col in zip(*found)) if found else (0, 0, 0)
    if not found and proc.returncode == 0:  # a run whose examples cannot be counted is no evidence
        raise SystemExit(f"{name}: no Hypothesis statistics in pytest's output:\n{proc.stdout[-2000:]}")
    if proc.returncode:
        print(proc.stdout[-4000:], proc.stderr[-2000:], sep="\n", file=sys.stderr)
    return passing, failing, invalid, seconds, proc.returncode


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, default=1.0, help="multiply every target's example count")
    p.add_argument("--targets", nargs="*", default=list(TARGETS), choices=list(TARGETS))
    p.add_argument("--no-append", action="store_true", help="print the table without appending it to RESULTS.md")
    args = p.parse_args()
    rows, total, failures = [], 0, 0
    for name in args.targets:
        examples = max(1, round(TARGETS[name] * args.scale))
        passing, failing, invalid, seconds, code = run_target(name, examples)
        total += passing + invalid
        failures += failing + (code != 0)
        rows.append([name.removeprefix("test_"), examples, passing, invalid, failing, "passed" if code == 0 else "FAILED",
                     f"{seconds:.0f}"])
        print(rows[-1], flush=True)
    table = markdown_table(["target", "asked", "passing examples", "invalid (discarded)", "failing", "pytest", "wall s"],
                           rows)
    append_results("Fuzz harness, long run", table, append=not args.no_append,
                   notes=f"{total:,} examples tried across {len(rows)} targets, {failures} failure(s); Hypothesis "
                         "profile 'long' (random draws), one pytest process per target")


if __name__ == "__main__":
    main()
