"""`iotchat edge package`: a recipe Greengrass accepts, naming an artifact that exists and runs."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from client.edge import COMPONENT_NAME, COMPONENT_VERSION
from client.edge.package import RECIPE_TEMPLATE, PackageError, package
from tests.client.edge.helpers import run_python

ROOT = Path(__file__).resolve().parents[3]
IOTCHAT = [sys.executable, "-m", "cli.main"]


def _check_recipe(recipe: dict, room: str) -> list[dict]:
    """What Greengrass requires of a recipe, and what this component needs in it."""
    assert recipe["RecipeFormatVersion"] == "2020-01-25"
    assert recipe["ComponentName"] == COMPONENT_NAME
    assert isinstance(recipe["ComponentVersion"], str)
    assert recipe["ComponentDescription"] and recipe["ComponentPublisher"]
    config = recipe["ComponentConfiguration"]["DefaultConfiguration"]
    assert config["room"] == room and config["intervalSeconds"] > 0
    policies = config["accessControl"]["aws.greengrass.ipc.mqttproxy"]
    allowed: dict[str, set[str]] = {}
    for name, policy in policies.items():
        assert name.startswith(f"{COMPONENT_NAME}:")  # policy ids are unique per component
        for operation in policy["operations"]:
            allowed.setdefault(operation, set()).update(policy["resources"])
    assert allowed["aws.greengrass#PublishToIoTCore"] == {"chat/out", "chat/stream"}
    assert allowed["aws.greengrass#SubscribeToIoTCore"] == {
        "chat/in/{iot:thingName}",
        f"chat/pub/{room}",
    }
    [manifest] = recipe["Manifests"]
    assert manifest["Platform"]["os"] == "linux"
    lifecycle = manifest["Lifecycle"]
    assert "Install" in lifecycle
    run = lifecycle["Run"]["Script"]
    assert "-m client.edge" in run and "{configuration:/room}" in run
    assert "{artifacts:decompressedPath}/iotchat-edge" in run  # where Unarchive: ZIP puts it
    artifacts = manifest["Artifacts"]
    assert [a["Unarchive"] for a in artifacts] == ["ZIP"]
    return artifacts


def test_the_checked_in_recipe_is_a_valid_template():
    recipe = yaml.safe_load(RECIPE_TEMPLATE.read_text())
    assert recipe["ComponentVersion"] == COMPONENT_VERSION
    [artifact] = _check_recipe(recipe, "lobby")
    assert artifact["URI"].endswith(f"/{COMPONENT_NAME}/{COMPONENT_VERSION}/iotchat-edge.zip")


def test_package_cli_writes_the_artifact_its_recipe_names(tmp_path):
    out = tmp_path / "build"
    options = ["--bucket", "my-gg-artifacts", "--version", "1.2.3", "--room", "lab"]
    result = subprocess.run(
        [*IOTCHAT, "edge", "package", "--out", str(out), *options, "--prefix", "components"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    recipe_path = out / "recipes" / f"{COMPONENT_NAME}-1.2.3.yaml"
    recipe = yaml.safe_load(recipe_path.read_text())
    assert recipe["ComponentVersion"] == "1.2.3"
    [artifact] = _check_recipe(recipe, "lab")
    uri = urlparse(artifact["URI"])
    assert (uri.scheme, uri.netloc) == ("s3", "my-gg-artifacts")
    assert uri.path == f"/components/{COMPONENT_NAME}/1.2.3/iotchat-edge.zip"
    # The Greengrass CLI's local layout: artifacts/<component>/<version>/<file named by the URI>.
    local = out / "artifacts" / COMPONENT_NAME / "1.2.3" / Path(uri.path).name
    assert local.is_file()
    assert f"aws s3 cp {local} {artifact['URI']}" in result.stdout
    with zipfile.ZipFile(local) as archive:
        names = set(archive.namelist())
        assert archive.testzip() is None
    assert {"client/__init__.py", "client/edge/__main__.py", "client/chat_client.py"} <= names
    assert not any(name.startswith(("infra/", "tests/")) for name in names)


def test_the_artifact_runs_on_its_own(tmp_path):
    """Unzipped alone (as on the core), the entry point imports and refuses a bad room."""
    built = package(tmp_path / "build")
    unpacked = tmp_path / "iotchat-edge"
    with zipfile.ZipFile(built.artifact) as archive:
        archive.extractall(unpacked)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(unpacked)}
    help_run = run_python(["-m", "client.edge", "--help"], cwd=tmp_path, env=env)
    assert help_run.returncode == 0, help_run.stderr
    assert "--room" in help_run.stdout and "--interval" in help_run.stdout
    bad = run_python(
        ["-m", "client.edge", "--room", "no spaces", "--device-dir", "x"], cwd=tmp_path, env=env
    )
    assert bad.returncode == 1 and "room 'no spaces'" in bad.stderr
    where = run_python(
        ["-c", "import client.edge.runner as m; print(m.__file__)"], cwd=tmp_path, env=env
    )
    assert where.stdout.strip().startswith(str(unpacked)), where.stdout  # not this checkout


def test_the_same_sources_give_the_same_artifact(tmp_path):
    first = package(tmp_path / "a").artifact.read_bytes()
    assert package(tmp_path / "b").artifact.read_bytes() == first


@pytest.mark.parametrize(
    ("option", "value"),
    [("version", "1.0"), ("bucket", "Bad_Bucket"), ("room", "a b")],
)
def test_bad_options_are_refused(tmp_path, option, value):
    with pytest.raises(PackageError):
        package(tmp_path, **{option: value})
    assert not (tmp_path / "artifacts").exists()
