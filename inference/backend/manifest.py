"""The manifest of an exported model folder: what is in it, and proof that the files are the exported ones.

``python -m export`` writes ``manifest.json`` last, after every file is in place; a loader reads it,
checks the format version and model kind, and compares the sha256 of each file it is about to use,
so a half-copied or edited folder fails with a clear message instead of scoring garbage.

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
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from inference.io import atomic_write_text

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


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

    @property
    def kind(self) -> str:
        return self.data["kind"]

    def __getitem__(self, key: str):
        return self.data[key]

    def get(self, key: str, default=None):
        return self.data.get(key, default)

    def path(self, name: str) -> Path:
        return self.folder / name

    def verify(self, names: Iterable[str]) -> None:
        """Check that each named file exists and has the sha256 the manifest recorded."""
        files = self.data.get("files", {})
        for name in names:
            if name not in files:
                raise ModelFolderError(f"{self.folder}: {name} is not listed in {MANIFEST}; re-export the model")
            path = self.folder / name
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
    atomic_write_text(folder / MANIFEST, json.dumps(document, indent=2, sort_keys=False, default=float) + "\n")
    return document


def read_manifest(folder: str | os.PathLike, kind: str) -> Manifest:
    """Parse and sanity-check ``folder/manifest.json`` for a model of ``kind`` (files are not hashed yet)."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise ModelFolderError(f"{folder}: no such model folder (write one with `python -m export`)")
    if not path.is_file():
        raise ModelFolderError(f"{folder}: no {MANIFEST}; not an exported model folder, or the export did not finish")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ModelFolderError(f"{path}: not valid JSON ({err})") from None
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFolderError(f"{path}: format_version {version!r}, this library reads {FORMAT_VERSION}; "
                               "re-export the model or use a matching version of the package")
    if data.get("kind") != kind:
        raise ModelFolderError(f"{path}: holds a {data.get('kind')!r} model, expected {kind!r}")
    return Manifest(folder, data)
