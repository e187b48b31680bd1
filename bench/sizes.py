"""Deployment sizes, read from the layer zips `make layers` (`python -m deploy.layers`) left in build/layers.

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
    """Unzipped and zipped MiB of each built layer, the function zip, and each function whose parts are all there.

    A function with a layer not built gets `missing` instead of totals: a partial sum would
    look like a size that passes its budget.
    """
    from deploy.layers import build_function_zip
    from deploy.specs import FUNCTIONS, LAYERS

    parts: dict[str, dict[str, float]] = {}
    missing: dict[str, str] = {}
    for spec in LAYERS:
        path = layers_dir / spec.zip_name
        if path.is_file():
            parts[f"{spec.name}-layer"] = {
                "unzipped_mib": _unzipped(path) / MIB,
                "zipped_mib": path.stat().st_size / MIB,
            }
        else:
            missing[f"{spec.name}-layer"] = f"{path} not found: run `make layers`"
    with tempfile.TemporaryDirectory() as tmp:
        function_zip = build_function_zip(app_dir, Path(tmp) / "function.zip")
        if function_zip is None:
            missing["function"] = f"{app_dir / 'app.py'} not found"
        else:
            parts["function"] = {
                "unzipped_mib": _unzipped(function_zip) / MIB,
                "zipped_mib": function_zip.stat().st_size / MIB,
            }
    functions: dict[str, dict[str, Any]] = {}
    for fn in FUNCTIONS:
        names = ["function", *(f"{layer}-layer" for layer in fn.layers)]
        budget = fn.budget_bytes / MIB
        absent = [n for n in names if n not in parts]
        if absent:
            functions[fn.name] = {"parts": names, "missing": absent, "budget_unzipped_mib": budget}
            continue
        functions[fn.name] = {
            "parts": names,
            "unzipped_mib": sum(parts[n]["unzipped_mib"] for n in names),
            "zipped_mib": sum(parts[n]["zipped_mib"] for n in names),
            "budget_unzipped_mib": budget,
        }
    return {
        "built": not missing,
        "layers_dir": str(layers_dir),
        "parts": parts,
        "missing": missing,
        "functions": functions,
    }
