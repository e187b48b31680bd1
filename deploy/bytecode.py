"""Bytecode for the function zip: a 3.12 unchecked-hash pyc next to every module it ships.

Why: Chalice 1.34 zips sources only (app.py, chalicelib/, and its runtime chalice/app.py
and chalice/__init__.py; vendor/ lands at the zip root), and /var/task is read-only, so
Lambda recompiled all of them at every cold start (about 0.08 s measured). The layers
already carry such pycs (deploy/layers.py).

Why post-process the zip rather than stage pycs in vendor/: the pycs are compiled from the
very bytes in the zip, so they can never be stale. Unchecked-hash pycs are used without
looking at the source; a stale vendor/ copy (say, after `chalice deploy` run by hand)
would silently run old code. Any pyc already in the zip (Chalice copies whatever
chalicelib/__pycache__ holds in the working tree, timestamp-based) is replaced.

How it reaches `chalice deploy` and `chalice package`, which build their zip themselves:
both name it by a hash of its inputs and reuse a zip of that name unchanged, so
`--prepare` builds it with Chalice's own packager first and adds the pycs in place
(see build_chalice_package). PYTHONDONTWRITEBYTECODE=1 must be set for both steps
(the Makefile does): the hash covers chalicelib/__pycache__, which the CLI's import of
app.py would otherwise rewrite in between.

    python -m deploy.bytecode --prepare PROJECT_DIR   # before chalice deploy / package
    python -m deploy.bytecode --check ZIP             # every module has its pyc
"""

from __future__ import annotations

import argparse
import importlib.util
import py_compile
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

LAMBDA_TASK_ROOT = "/var/task"
PYTHON_VERSION = (3, 12)
UNCHECKED_HASH_FLAGS = 0b01  # PEP 552: hash-based, check_source off


class BytecodeError(Exception):
    """The zip's bytecode cannot be made, or is missing, stale or for another Python."""


def require_python312() -> None:
    """Bytecode is only valid for the interpreter that wrote it: Lambda's is 3.12."""
    if sys.version_info[:2] != PYTHON_VERSION:
        raise BytecodeError(f"bytecode for Lambda python3.12 must be compiled by 3.12, not {sys.version.split()[0]}")


def pyc_name(source: str) -> str:
    """`chalicelib/api.py` -> `chalicelib/__pycache__/api.cpython-312.pyc` (as importlib looks it up)."""
    path = PurePosixPath(source)
    return str(path.parent / "__pycache__" / f"{path.stem}.{sys.implementation.cache_tag}.pyc").removeprefix("./")


def is_bytecode(name: str) -> bool:
    return name.endswith(".pyc") or "__pycache__/" in name


def compile_source(source: bytes, name: str, work: Path) -> bytes:
    """Unchecked-hash pyc of `source`; tracebacks name the file as it lies in /var/task."""
    src = work / "source.py"
    out = work / "compiled.pyc"
    src.write_bytes(source)
    try:
        py_compile.compile(
            str(src),
            cfile=str(out),
            dfile=f"{LAMBDA_TASK_ROOT}/{name}",
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
    except py_compile.PyCompileError as error:
        raise BytecodeError(f"{name} does not compile: {error.msg}") from error
    return out.read_bytes()


def add_bytecode(zip_path: Path) -> int:
    """Rewrite `zip_path` with a fresh pyc for each .py in it (old pycs dropped). Returns the count."""
    require_python312()
    tmp = zip_path.with_suffix(".bytecode.tmp")
    count = 0
    with (
        zipfile.ZipFile(zip_path) as source_zip,
        zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as out,
        tempfile.TemporaryDirectory() as work,
    ):
        for info in source_zip.infolist():
            if is_bytecode(info.filename):
                continue
            data = source_zip.read(info)
            out.writestr(info, data)
            if info.filename.endswith(".py"):
                pyc = zipfile.ZipInfo(pyc_name(info.filename), date_time=info.date_time)
                pyc.compress_type = zipfile.ZIP_DEFLATED
                pyc.external_attr = (0o100000 | 0o644) << 16
                out.writestr(pyc, compile_source(data, info.filename, Path(work)))
                count += 1
    tmp.replace(zip_path)
    return count


def bytecode_problems(zip_path: Path) -> list[str]:
    """Every .py in the zip has a 3.12 unchecked-hash pyc made from exactly its bytes."""
    problems: list[str] = []
    with zipfile.ZipFile(zip_path) as zf:
        names = set(zf.namelist())
        sources = sorted(n for n in names if n.endswith(".py"))
        for name in sources:
            pyc = pyc_name(name)
            if pyc not in names:
                problems.append(f"{name}: no {pyc}")
                continue
            header = zf.read(pyc)[:16]
            if header[:4] != importlib.util.MAGIC_NUMBER:
                problems.append(f"{pyc}: not Python 3.12 bytecode")
            elif int.from_bytes(header[4:8], "little") != UNCHECKED_HASH_FLAGS:
                problems.append(f"{pyc}: not unchecked-hash")
            elif header[8:16] != importlib.util.source_hash(zf.read(name)):
                problems.append(f"{pyc}: compiled from other source than {name} (stale)")
        if not sources:
            problems.append(f"{zip_path}: no .py files")
    return problems


def build_chalice_package(project_dir: Path) -> Path:
    """Build the deployment zip where `chalice deploy`/`package` look for it, and add the bytecode.

    Chalice 1.34 names that zip by a hash of its inputs (requirements.txt, app.py,
    chalicelib/, its runtime, vendor/), not of the zip, and reuses a zip of that name as
    it is. So the next `chalice deploy` or `chalice package` ships this zip, pycs included.
    """
    require_python312()
    from chalice.deploy.packager import DependencyBuilder, LambdaDeploymentPackager
    from chalice.utils import UI, OSUtils

    osutils = OSUtils()
    packager = LambdaDeploymentPackager(osutils=osutils, dependency_builder=DependencyBuilder(osutils), ui=UI())
    runtime = f"python{PYTHON_VERSION[0]}.{PYTHON_VERSION[1]}"
    zip_path = Path(packager.create_deployment_package(str(project_dir), runtime))
    add_bytecode(zip_path)
    return zip_path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.bytecode", description=__doc__.split("\n")[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--prepare", type=Path, metavar="PROJECT_DIR", help="before chalice deploy / package")
    target.add_argument("--check", type=Path, metavar="ZIP", help="check a function zip")
    args = parser.parse_args(argv)
    try:
        zip_path = build_chalice_package(args.prepare.resolve()) if args.prepare else args.check
        problems = bytecode_problems(zip_path)
        if problems:
            raise BytecodeError("\n".join(problems))
    except BytecodeError as error:
        print(f"BYTECODE FAILED: {error}", file=sys.stderr)
        return 1
    print(f"{zip_path}: 3.12 unchecked-hash bytecode for every module")
    return 0


if __name__ == "__main__":
    sys.exit(main())
