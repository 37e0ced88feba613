"""The run folder both trainers write: budget clock, atomic files, checkpoints, open/resume rules.

A run folder is never silently reused: a second run into it is an error unless it resumes. A
resumed run keeps its saved config and changes only the keys the command line gives explicitly
(the budget, epochs or device of a run do not fall back to the defaults because a resume command
did not repeat them). ``run_state.json`` says how much of the budget the run has spent and whether
it is complete; checkpoints hold tensors and plain values only and load with ``weights_only=True``.

Example:
    >>> import tempfile
    >>> run_dir = Path(tempfile.mkdtemp()) / "run"
    >>> folder = RunFolder(run_dir, kind="phrase")
    >>> folder.open(resume=False)          # a new run: nothing spent, not complete
    (0.0, None)
    >>> folder.save_state({"epochs": 3}, elapsed_s=12.5)
    >>> saved_config(run_dir, {"epochs": None, "device": "cpu"})   # saved, plus what was given explicitly
    {'epochs': 3, 'device': 'cpu'}
    >>> RunFolder(run_dir, kind="phrase").open(resume=False)
    Traceback (most recent call last):
    ...
    SystemExit: ... already holds a run: pass --resume to continue it, or another --out
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

STATE_FILE = "run_state.json"
MARKER_FILE = "run_folder.json"  # written first, into a new or empty folder: what makes a folder a run's own


@dataclass
class Clock:
    """The run's wall-clock budget. ``offset`` carries time spent before a resume."""

    budget_s: float
    offset: float = 0.0
    start: float = field(default_factory=time.time)

    def elapsed(self) -> float:
        return time.time() - self.start + self.offset

    def left(self) -> float:
        return self.budget_s - self.elapsed()


def atomic_json(path: Path, data: Any) -> None:
    from inference.io import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=2, default=float) + "\n")


def atomic_torch_save(obj, path: Path) -> None:
    import torch

    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        torch.save(obj, handle)
        handle.flush()
        os.fsync(handle.fileno())  # on disk before the run state that points at it
    tmp.replace(path)


def load_checkpoint(path: Path) -> dict:
    """A checkpoint of this project: tensors and plain values only, never a pickle that could run code."""
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise SystemExit(f"{path}: refused to load, it holds more than tensors and plain values "
                         f"(a planted or foreign file?): {str(err).splitlines()[0]}") from None
    except (RuntimeError, EOFError, OSError) as err:
        raise SystemExit(f"{path}: damaged checkpoint ({str(err).splitlines()[0]}); remove it to restart that "
                         "part of the run") from None


def read_state(run_dir: Path, kind: str | None = None) -> dict:
    """The run's state; with ``kind``, refused unless the run is of that kind."""
    path = Path(run_dir) / STATE_FILE
    if not path.exists():
        raise SystemExit(f"--resume: {run_dir} has no {STATE_FILE} to resume from")
    if not (Path(run_dir) / MARKER_FILE).exists():  # a state file alone does not make a user's folder a run
        raise SystemExit(f"--resume: {run_dir} was not created by this trainer (no {MARKER_FILE}); a run resumes "
                         "only in its own folder: pass another --out")
    try:
        state = json.loads(path.read_text())
    except ValueError as err:
        raise SystemExit(f"{path}: not readable ({err}); the run folder is damaged") from None
    if kind and run_kind(Path(run_dir), state) != kind:
        raise SystemExit(f"{run_dir} holds a {run_kind(Path(run_dir), state)} run, not a {kind} run; pass the right --out")
    return state


def run_kind(run_dir: Path, state: dict) -> str:
    """"phrase" or "embedder", as run_state.json records it."""
    return str(state.get("kind"))


def saved_config(run_dir: Path, explicit: dict[str, Any], kind: str | None = None) -> dict[str, Any]:
    """The one resume rule: the run's saved config, changed only by the keys given explicitly (not None)."""
    return {**read_state(run_dir, kind)["config"], **{k: v for k, v in explicit.items() if v is not None}}


def newest_run(kind: str, runs: Path = Path("runs")) -> Path:
    """The most recently saved run of ``kind`` under ``runs/`` (for ``--resume`` without ``--out``)."""
    candidates = []
    for path in runs.glob(f"*/{STATE_FILE}"):
        if not (path.parent / MARKER_FILE).exists():  # a state file in a folder this trainer did not create
            continue
        try:
            if run_kind(path.parent, json.loads(path.read_text())) == kind:
                candidates.append(path)
        except ValueError:  # a damaged state file is not a run to continue
            continue
    if not candidates:
        raise SystemExit(f"--resume: no {kind} run in {runs}/ to continue; pass --out runs/NAME")
    return max(candidates, key=lambda p: p.stat().st_mtime).parent


@dataclass
class RunFolder:
    """One run's folder: its state file, and whether it may be opened (new) or resumed."""

    path: Path
    kind: str  # "phrase" or "embedder": --resume without --out picks the newest run of its own kind

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    def open(self, resume: bool) -> tuple[float, dict | None]:
        """(seconds the run already spent, its metrics if it is already complete)."""
        state_path = self.path / STATE_FILE
        if not resume:
            if state_path.exists():
                raise SystemExit(f"{self.path} already holds a run: pass --resume to continue it, or another --out")
            self.claim()
            return 0.0, None
        state = read_state(self.path, self.kind)
        if state.get("complete"):
            log.info("%s is already complete; nothing to resume", self.path)
            return state["elapsed_s"], json.loads((self.path / "metrics.json").read_text())
        return state["elapsed_s"], None  # the budget covers the whole run, interruptions included

    def claim(self) -> None:
        """Check the folder may become this run's: refused if it exists and holds anything this trainer did
        not write (a user's folder is never written into, let alone overwritten). Nothing is created yet:
        a run that fails on a bad option right after leaves nothing behind; :meth:`mark` comes first when
        the run writes."""
        if self.path.exists() and not self.path.is_dir():
            raise SystemExit(f"{self.path} is a file, not a folder: pass another --out")
        if self.path.is_dir() and not (self.path / MARKER_FILE).exists():
            # another process of the same run may be writing the marker (its temporary file) right now
            foreign = sorted(p.name for p in self.path.iterdir()
                             if p.name != MARKER_FILE and not p.name.startswith(f".{MARKER_FILE}."))
            if foreign:
                raise SystemExit(f"{self.path} exists and holds files that are not a training run's "
                                 f"({', '.join(foreign[:5])}{', ...' if len(foreign) > 5 else ''}): a run writes only "
                                 "into a new or empty folder, or resumes its own; pass another --out")

    def mark(self) -> None:
        """Create the folder with its marker (before any other file of the run)."""
        self.path.mkdir(parents=True, exist_ok=True)
        if not (self.path / MARKER_FILE).exists():
            atomic_json(self.path / MARKER_FILE, {"kind": self.kind})

    def save_state(self, config: dict, elapsed_s: float, complete: bool = False, metrics: dict | None = None) -> None:
        """``run_state.json`` (and ``metrics.json`` when given), each written atomically."""
        self.mark()
        atomic_json(self.path / STATE_FILE, {"kind": self.kind, "config": config, "elapsed_s": elapsed_s,
                                             "complete": complete})
        if metrics is not None:
            atomic_json(self.path / "metrics.json", metrics)


def cli_config(args, explicit: dict[str, Any], schema: type, kind: str):
    """A trainer's config from its parsed command line: defaults < ``--config`` file < options and
    ``--set key=value``. With ``--resume`` the run's saved config takes the place of the defaults and
    the file (:func:`saved_config`), and a missing ``--out`` means the newest run of ``kind``."""
    from solution.config import build_config, parse_value

    explicit = dict(explicit)
    for item in args.set:
        key, _, raw = item.partition("=")
        explicit[key.strip()] = parse_value(key.strip(), raw.strip(), schema)
    if not args.resume:
        return build_config(args.config, explicit, schema)
    if not explicit.get("out"):
        explicit["out"] = str(newest_run(kind))
    return build_config(None, saved_config(Path(explicit["out"]), explicit, kind), schema)


COMMON_OPTIONS = ("model", "out", "epochs", "budget_minutes", "device", "seed")


def add_common_options(parser) -> None:
    """The options both trainers take (their own come in ``add_argument`` calls of their own)."""
    parser.add_argument("--config", help="TOML, YAML or JSON file with config keys (presets in configs/)")
    parser.add_argument("--model", help="backbone: Hugging Face id or local folder")
    parser.add_argument("--out", help="run folder, e.g. runs/NAME")
    parser.add_argument("--epochs", type=int, help="epoch budget")
    parser.add_argument("--budget-minutes", type=float, dest="budget_minutes", help="wall-clock budget of the whole run")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where to train")
    parser.add_argument("--seed", type=int, help="random seed")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out (default: the newest run of this kind in runs/)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any other config key")


def run_from_cli(args, own_options: tuple[str, ...], schema: type, kind: str, run: Callable):
    """A trainer's ``main`` after parsing: logging, the config (:func:`cli_config`), the run, and a
    data error as one clear line instead of a traceback."""
    from inference.io import DataError, OutputError
    from solution.config import ConfigError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    explicit = {k: getattr(args, k) for k in (*COMMON_OPTIONS, *own_options)}
    try:
        return run(cli_config(args, explicit, schema, kind), resume=args.resume)
    except DataError as err:
        raise SystemExit(f"data error: {err}") from None
    except ConfigError as err:
        raise SystemExit(f"config error: {err}") from None
    except OutputError as err:
        raise SystemExit(f"error: {err}") from None
