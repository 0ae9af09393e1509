"""The Lambda code zip: the handler modules and the project modules they import, nothing else.

Which files go in is computed, not listed: :mod:`modulefinder` follows the imports of every
handler the manifest names (and the sign-in step's) and keeps the modules that live in this
repository. boto3 and the standard library come with the Lambda runtime. The zip is
byte-for-byte reproducible (sorted entries, fixed timestamps and modes), so its SHA-256 names
the code: the same code deploys as the same key and CloudFormation sees no change.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from modulefinder import ModuleFinder
from pathlib import Path

from lambdas.manifest import MANIFEST_PATH, Manifest

from .template import SIGN_IN_HANDLER

ROOT = Path(__file__).resolve().parents[2]
_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class LambdaPackage:
    data: bytes
    files: tuple[str, ...]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def key(self) -> str:
        """The S3 key: content-addressed."""
        return f"lambda/{self.sha256}.zip"


def handler_modules(manifest_path: Path = MANIFEST_PATH) -> list[str]:
    modules = {spec.handler_module for spec in Manifest.load(manifest_path)}
    modules.add(SIGN_IN_HANDLER.rpartition(".")[0])
    return sorted(modules)


def needed_files(modules: list[str], root: Path = ROOT) -> list[str]:
    """Repository-relative paths of ``modules`` and every repository module they import."""
    finder = ModuleFinder(path=[str(root)])
    for name in modules:
        finder.import_hook(name)
    files: set[str] = set()
    for module in finder.modules.values():
        # typeshed's modulefinder.Module does not declare the __file__ it sets
        path = Path(getattr(module, "__file__", None) or "")
        if path.suffix == ".py" and path.is_relative_to(root):
            files.add(path.relative_to(root).as_posix())
    missing = [m for m in modules if m not in finder.modules]
    if missing:
        raise ImportError(f"handler module(s) not found: {', '.join(missing)}")
    return sorted(files)


def build_package(manifest_path: Path = MANIFEST_PATH, root: Path = ROOT) -> LambdaPackage:
    files = needed_files(handler_modules(manifest_path), root)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in files:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, (root / name).read_bytes())
    return LambdaPackage(buffer.getvalue(), tuple(files))
