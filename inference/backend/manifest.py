"""The manifest of an exported model folder: what is in it, and proof that the files are the exported ones.

``python -m export`` writes ``manifest.json`` last, after every file is in place; a loader reads it,
checks the format version, the model kind, the manifest's own sha256 (so an edited ``max_length``
is refused, not silently used) and the fields it needs (types and ranges), and compares the sha256
of each file it is about to use, so a half-copied or edited folder fails with a clear message
instead of scoring garbage. Every file a loader opens must be listed and inside the folder.
The self-hash catches edits and corruption, not a forger who recomputes it: the manifest is not signed.

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "a.txt").write_text("hello")
    >>> write_manifest(folder, "demo", {"note": 1}, ["a.txt"])["files"]["a.txt"]["bytes"]
    5
    >>> read_manifest(folder, "demo").verify(["a.txt"])
    >>> _ = (folder / "a.txt").write_text("HELLO")
    >>> try:
    ...     read_manifest(folder, "demo").verify(["a.txt"])
    ... except ModelFolderError as err:
    ...     print("refused:", "does not match the manifest" in str(err))
    refused: True
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from inference.io import atomic_write_text

MANIFEST = "manifest.json"
FORMAT_VERSION = 2  # 2: the manifest carries its own sha256 ("manifest_sha256")
READABLE_VERSIONS = (1, 2)  # 1: no self-hash; read with a warning
SELF_HASH = "manifest_sha256"

log = logging.getLogger(__name__)


class ModelFolderError(RuntimeError):
    """An exported model folder is missing, incomplete, of another kind, or was modified."""


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Manifest:
    """A parsed ``manifest.json``; ``data`` is the whole document (kind-specific keys included)."""

    folder: Path
    data: dict = field(default_factory=dict)
    # where the folder's files may really live: the folder itself, or for a Hugging Face Hub snapshot its
    # repo's cache folder (the snapshot's files are links into the repo's blobs/)
    root: Path | None = None

    @property
    def kind(self) -> str:
        return self.data["kind"]

    def __getitem__(self, key: str):
        return self.data[key]

    def get(self, key: str, default=None):
        return self.data.get(key, default)

    def path(self, name: str) -> Path:
        """``folder/name``, refused unless it stays inside the folder (no absolute paths, no ``..``, no
        symlink that leads out)."""
        if not isinstance(name, str) or not name or Path(name).is_absolute():
            raise ModelFolderError(f"{self.folder / MANIFEST}: file entry {name!r} is not a file name inside the folder")
        path = self.folder / name
        if not path.resolve().is_relative_to((self.root or self.folder).resolve()):
            raise ModelFolderError(f"{self.folder / MANIFEST}: file entry {name!r} points outside {self.folder}")
        return path

    def verify(self, names: Iterable[str]) -> None:
        """Check that each named file is listed, inside the folder, present, with the recorded sha256."""
        files = self.data.get("files", {})
        for name in names:
            path = self.path(name)  # inside the folder, before anything else
            if name not in files:
                raise ModelFolderError(f"{self.folder}: {name} is not listed in {MANIFEST}; re-export the model")
            if not path.is_file():
                raise ModelFolderError(f"{path}: missing (listed in {MANIFEST}); copy the whole folder or re-export")
            actual = sha256_file(path)
            if actual != files[name]["sha256"]:
                raise ModelFolderError(
                    f"{path}: sha256 {actual[:12]}... does not match the manifest ({files[name]['sha256'][:12]}...); "
                    "the file was modified or only partly copied; copy the folder again or re-export")


def write_manifest(folder: str | os.PathLike, kind: str, body: dict, files: Iterable[str]) -> dict:
    """Hash ``files`` (relative to ``folder``) and write the manifest atomically; returns the document."""
    folder = Path(folder)
    listing = {name: {"sha256": sha256_file(folder / name), "bytes": (folder / name).stat().st_size}
               for name in sorted(files)}
    document = {"format_version": FORMAT_VERSION, "kind": kind, **body, "files": listing}
    document[SELF_HASH] = self_hash(document)
    atomic_write_text(folder / MANIFEST, json.dumps(document, indent=2, sort_keys=False, default=float) + "\n")
    return document


def self_hash(document: dict) -> str:
    """sha256 of the manifest's canonical JSON without its own hash field."""
    body = {k: v for k, v in document.items() if k != SELF_HASH}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=float).encode("utf-8")).hexdigest()


# A field rule: (what is expected, in words; the check)
FieldRule = tuple[str, Callable[[object], bool]]


def is_count(value, minimum: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def check_fields(path: Path, data: dict, rules: dict[str, FieldRule]) -> None:
    """A clear ModelFolderError for the first field that is missing or not what ``rules`` expect."""
    for key, (expected, ok) in rules.items():
        if key not in data:
            raise ModelFolderError(f"{path}: field {key!r} is missing; re-export the model")
        if not ok(data[key]):
            raise ModelFolderError(f"{path}: field {key!r} is {data[key]!r}, expected {expected}; re-export the model")


REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?")


def resolve_model_folder(name: str | os.PathLike) -> Path:
    """``name`` as a local folder; or, where no such path exists and it reads as a Hugging Face Hub repo id
    (``owner/name``, optionally ``@revision``) whose first part is not a local folder either, the repo's
    snapshot: fetched into the Hub cache, or taken from the cache alone under ``HF_HUB_OFFLINE=1``."""
    path = Path(name)
    text = str(name)
    if path.exists() or not REPO_ID.fullmatch(text) or Path(text.split("/")[0]).exists():
        return path
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # tokenizers brings it; without it, a repo id is just a missing folder
        return path
    repo, _, revision = text.partition("@")
    try:
        return Path(snapshot_download(repo_id=repo, revision=revision or None))
    except Exception as err:  # offline and not cached, no such repo, no access: one line saying which
        reason = " ".join(str(err).split())[:200]
        raise ModelFolderError(f"{text}: no such local folder, and the Hugging Face repo could not be fetched "
                               f"({type(err).__name__}: {reason})") from None


def hub_repo_root(folder: Path) -> Path | None:
    """The Hub cache's repo folder (``models--owner--name``) of a snapshot folder, else None."""
    parts = folder.resolve().parts
    if len(parts) >= 3 and parts[-2] == "snapshots" and parts[-3].startswith("models--"):
        return folder.resolve().parent.parent
    return None


def read_manifest(folder: str | os.PathLike, kind: str, rules: dict[str, FieldRule] | None = None) -> Manifest:
    """Parse and check ``folder/manifest.json`` for a model of ``kind``: version, kind, self-hash and the
    fields in ``rules`` (the files themselves are hashed by :meth:`Manifest.verify` when used). ``folder``
    may be a Hugging Face Hub repo id (:func:`resolve_model_folder`)."""
    folder = resolve_model_folder(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise ModelFolderError(f"{folder}: no such model folder (write one with `python -m export`)")
    if not path.is_file():
        raise ModelFolderError(f"{folder}: no {MANIFEST}; not an exported model folder, or the export did not finish")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ModelFolderError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise ModelFolderError(f"{path}: not a manifest (a JSON object is expected)")
    version = data.get("format_version")
    if version not in READABLE_VERSIONS:
        raise ModelFolderError(f"{path}: format_version {version!r}, this library reads {READABLE_VERSIONS}; "
                               "re-export the model or use a matching version of the package")
    if data.get("kind") != kind:
        raise ModelFolderError(f"{path}: holds a {data.get('kind')!r} model, expected {kind!r}")
    if version >= 2 and data.get(SELF_HASH) != self_hash(data):
        raise ModelFolderError(f"{path}: was edited after export (its {SELF_HASH} does not match its content); "
                               "re-export the model, or restore the original manifest")
    if version < 2:
        log.warning("%s: format_version 1 has no self-hash, so its fields are not integrity-checked; re-export "
                    "the model to get the check", path)
    if not isinstance(data.get("files"), dict):
        raise ModelFolderError(f"{path}: field 'files' is missing; re-export the model")
    check_fields(path, data, rules or {})
    return Manifest(folder, data, hub_repo_root(folder))
