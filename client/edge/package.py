"""``iotchat edge package``: the component's artifact zip and a recipe that names it.

The output follows the layout the Greengrass CLI's local deployments read
(``artifacts/<component>/<version>/`` and ``recipes/``), and the recipe's artifact URI is the
S3 key to upload the zip to, so one build serves a local test deployment and the cloud.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..chat_client import ROOM_RULE, valid_room
from . import COMPONENT_NAME

HERE = Path(__file__).resolve().parent
CLIENT = HERE.parent
RECIPE_TEMPLATE = HERE / "recipe.yaml"
ARTIFACT_NAME = "iotchat-edge.zip"
# What the component imports at run time: the chat client and this package, nothing else.
CLIENT_MODULES = (
    "__init__.py",
    "chat_client.py",
    "events.py",
    "identity.py",
    "stack_file.py",
    "transport.py",
)
ZIP_TIME = (2020, 1, 1, 0, 0, 0)  # fixed, so the same sources give the same zip (and digest)
VERSION = re.compile(r"^\d+\.\d+\.\d+$")
BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
TEMPLATE_BUCKET = "amzn-s3-demo-bucket"
TEMPLATE_ROOM = "lobby"


class PackageError(ValueError):
    """A refused option; the message is for the user."""


@dataclass(frozen=True)
class Package:
    artifact: Path
    recipe: Path
    artifact_uri: str
    version: str


def template_version(template: str) -> str:
    match = re.search(r'^ComponentVersion:\s*"?([^"\s]+)"?\s*$', template, re.MULTILINE)
    if match is None:
        raise PackageError(f"{RECIPE_TEMPLATE} has no ComponentVersion")
    return match.group(1)


def _sources() -> list[tuple[Path, str]]:
    files = [(CLIENT / name, f"client/{name}") for name in CLIENT_MODULES]
    files += [(path, f"client/edge/{path.name}") for path in sorted(HERE.glob("*.py"))]
    return files


def build_artifact(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for source, name in _sources():
            info = zipfile.ZipInfo(name, ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, source.read_bytes())
    return path


def _replace_once(text: str, old: str, new: str) -> str:
    if text.count(old) != 1:
        raise PackageError(f"{RECIPE_TEMPLATE}: expected {old!r} exactly once")
    return text.replace(old, new)


def render_recipe(template: str, uri: str, version: str, room: str) -> str:
    """The template with this build's artifact URI, version and default room."""
    old_version = template_version(template)
    old_uri = f"s3://{TEMPLATE_BUCKET}/{COMPONENT_NAME}/{old_version}/{ARTIFACT_NAME}"
    text = _replace_once(template, f"URI: {old_uri}", f"URI: {uri}")
    text = _replace_once(
        text, f'ComponentVersion: "{old_version}"', f'ComponentVersion: "{version}"'
    )
    text = _replace_once(text, f"room: {TEMPLATE_ROOM}\n", f"room: {room}\n")
    return _replace_once(text, f"- chat/pub/{TEMPLATE_ROOM}\n", f"- chat/pub/{room}\n")


def package(
    out_dir: Path,
    bucket: str = TEMPLATE_BUCKET,
    version: str | None = None,
    room: str = TEMPLATE_ROOM,
    prefix: str = "",
) -> Package:
    """Write the zip under ``artifacts/<name>/<version>/`` and the recipe under ``recipes/``."""
    template = RECIPE_TEMPLATE.read_text()
    version = version or template_version(template)
    if not VERSION.match(version):
        raise PackageError(f"version {version!r} is not MAJOR.MINOR.PATCH")
    if not BUCKET.match(bucket):
        raise PackageError(f"{bucket!r} is not an S3 bucket name")
    if not valid_room(room):
        raise PackageError(f"room {room!r} is not {ROOM_RULE}")
    prefix = prefix.strip("/")
    key = "/".join(part for part in (prefix, COMPONENT_NAME, version, ARTIFACT_NAME) if part)
    uri = f"s3://{bucket}/{key}"
    out = Path(out_dir)
    artifact = build_artifact(out / "artifacts" / COMPONENT_NAME / version / ARTIFACT_NAME)
    recipe = out / "recipes" / f"{COMPONENT_NAME}-{version}.yaml"
    recipe.parent.mkdir(parents=True, exist_ok=True)
    recipe.write_text(render_recipe(template, uri, version, room))
    return Package(artifact, recipe, uri, version)
