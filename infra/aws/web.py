"""The web app on AWS: the same files ``iotchat up`` serves, uploaded to the stack's bucket.

The file table is the web app's own (``client/webapp.py``, the one the local server uses too):
the app's own files and the two vendor modules under ``/vendor/``, nothing else from
``node_modules``. ``config.json`` is the app's config for this stack file, plus the sign-in
step's function name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from client.webapp import CONTENT_TYPES, WEB_ROOT, config_from_stack, served_files

CONFIG_KEY = "config.json"


def web_files(root: Path = WEB_ROOT) -> dict[str, Path]:
    """Object key -> file, exactly the files the local server would serve."""
    table = served_files(root)
    return {url.lstrip("/"): path for url, path in table.items() if url != "/"}


def web_config(stack_info: dict[str, Any]) -> dict[str, Any]:
    config = config_from_stack(stack_info)
    config["signInFunction"] = stack_info.get("cognito", {}).get("signInFunction")
    return config


def upload_web(s3: Any, bucket: str, stack_info: dict[str, Any], root: Path = WEB_ROOT) -> int:
    """Upload the app and its config; remove objects an older deploy left. Returns the count."""
    files = web_files(root)
    for key, path in sorted(files.items()):
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=path.read_bytes(),
            ContentType=CONTENT_TYPES[path.suffix],
            CacheControl="no-cache",
        )
    s3.put_object(
        Bucket=bucket,
        Key=CONFIG_KEY,
        Body=json.dumps(web_config(stack_info), indent=2).encode(),
        ContentType="application/json",
        CacheControl="no-store",
    )
    keep = {*files, CONFIG_KEY}
    stale = [
        {"Key": item["Key"]}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for item in page.get("Contents", [])
        if item["Key"] not in keep
    ]
    for start in range(0, len(stale), 1000):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": stale[start : start + 1000]})
    return len(keep)


def empty_bucket(s3: Any, bucket: str) -> int:
    """Delete every object version and delete marker (the bucket is versioned)."""
    count = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        items = [
            {"Key": item["Key"], "VersionId": item["VersionId"]}
            for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
        ]
        for start in range(0, len(items), 1000):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": items[start : start + 1000]})
        count += len(items)
    return count
