"""``patent-sim``: one console command for every tool of the toolkit (installed by pip).

    patent-sim train [...]        python -m solution.train      (phrase matcher; `train embedder` for retrieval)
    patent-sim predict [...]      python -m solution.predict
    patent-sim evaluate [...]     python -m solution.evaluate
    patent-sim export [...]       python -m export
    patent-sim score [...]        python -m inference score
    patent-sim index [...]        python -m inference index
    patent-sim search [...]       python -m inference search

The training tools need the ``train`` extra (torch), export the ``export`` extra; this module imports
them only when asked, so the command works in a torch-free install for scoring and search. The
``python -m`` forms keep working.

Example:
    >>> COMMANDS["score"]
    ('inference.__main__', ['score'], 'cpu')
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

# command -> (module with main(argv), arguments put before the user's, the extra it needs)
COMMANDS: dict[str, tuple[str, list[str], str | None]] = {
    "train": ("solution.train", [], "train"),
    "predict": ("solution.predict", [], "train"),
    "evaluate": ("solution.evaluate", [], "train"),
    "export": ("export.__main__", [], "export"),
    "score": ("inference.__main__", ["score"], "cpu"),
    "index": ("inference.__main__", ["index"], "cpu"),
    "search": ("inference.__main__", ["search"], "cpu"),
}


NEEDS = {"train": ("torch", "transformers", "peft"), "export": ("torch", "onnx"), "cpu": ("onnxruntime",)}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  python -m {module.removesuffix('.__main__')} {' '.join(pre)}".rstrip()
             for name, (module, pre, _) in COMMANDS.items()]
    return "usage: patent-sim COMMAND [options]   (patent-sim COMMAND --help)\n\ncommands:\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if argv[0] not in COMMANDS:
        print(f"patent-sim: unknown command {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name, before, extra = COMMANDS[argv[0]]
    # the training stack imports torch lazily, deep inside a run: look for the extra's modules first
    missing = [name for name in (module_name.split(".")[0], *NEEDS.get(extra, ())) if not importlib.util.find_spec(name)]
    try:
        module = None if missing else importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        missing = [err.name or module_name]
    if missing:
        hint = f"; install the '{extra}' extra (pip install 'patent-similarity[{extra}]')" if extra else ""
        print(f"patent-sim {argv[0]}: needs {missing[0]!r}, which this install lacks{hint}", file=sys.stderr)
        return 1
    result = module.main(before + argv[1:])
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
