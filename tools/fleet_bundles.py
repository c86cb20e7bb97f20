"""Deployment bundles made wrong on purpose, for the fleet's tests and benchmark."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from edgekit.daemon.bundle import CHECK_FILE, Bundle, npz_bytes, sha256_bytes


def with_wrong_check(bundle: Bundle, folder: Path) -> Bundle:
    """``bundle`` with check outputs its model does not give: a model that loads and fails its
    on-device check, as one a device's runtime computes wrongly would."""
    out = folder / f"bad-{bundle.path.name}"
    with zipfile.ZipFile(bundle.path) as source, zipfile.ZipFile(out, "w") as target:
        for name in source.namelist():
            data = source.read(name)
            if name == CHECK_FILE:
                with np.load(io.BytesIO(data)) as loaded:
                    data = npz_bytes({k: loaded[k] + 1.0 if k.startswith("out_") else loaded[k] for k in loaded.files})
            target.writestr(name, data)
    data = out.read_bytes()
    return Bundle(out, sha256_bytes(data), len(data), bundle.artifact, bundle.artifact_sha256)
