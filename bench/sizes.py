"""Deployment sizes, read from the layer zips `python -m deploy.layers` left in build/layers.

Nothing is built here: layers that were not built are reported as such, not made.
The function zip is assembled the way deploy.layers does it, in a temporary folder.
"""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path
from typing import Any

MIB = 1024 * 1024


def _unzipped(path: Path) -> int:
    with zipfile.ZipFile(path) as archive:
        return sum(info.file_size for info in archive.infolist())


def deployment_sizes(layers_dir: Path, app_dir: Path) -> dict[str, Any]:
    """Unzipped and zipped MiB of each layer, the function zip, and each function's total."""
    from deploy.layers import build_function_zip
    from deploy.specs import FUNCTIONS, LAYERS

    parts: dict[str, dict[str, float]] = {}
    for spec in LAYERS:
        path = layers_dir / spec.zip_name
        if not path.is_file():
            return {"built": False, "note": f"{path} not found: run `make layers`"}
        parts[f"{spec.name}-layer"] = {"unzipped_mib": _unzipped(path) / MIB, "zipped_mib": path.stat().st_size / MIB}
    with tempfile.TemporaryDirectory() as tmp:
        function_zip = build_function_zip(app_dir, Path(tmp) / "function.zip")
        if function_zip is not None:
            parts["function"] = {
                "unzipped_mib": _unzipped(function_zip) / MIB,
                "zipped_mib": function_zip.stat().st_size / MIB,
            }
    functions = {}
    for fn in FUNCTIONS:
        names = [n for n in ("function", *(f"{layer}-layer" for layer in fn.layers)) if n in parts]
        functions[fn.name] = {
            "parts": names,
            "unzipped_mib": sum(parts[n]["unzipped_mib"] for n in names),
            "zipped_mib": sum(parts[n]["zipped_mib"] for n in names),
            "budget_unzipped_mib": fn.budget_bytes / MIB,
        }
    return {"built": True, "layers_dir": str(layers_dir), "parts": parts, "functions": functions}
