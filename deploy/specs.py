"""What we deploy and the limits it must fit: layers, functions, architectures, budgets.

Its own module so that the layer build, the smoke test, layer publishing, the benchmarks
and the tests read one definition; nothing here builds, checks or talks to AWS.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS_DIR = REPO_ROOT / "requirements"

MIB = 1024 * 1024
# Lambda's own limits are in MiB (250 MB unzipped = 262,144,000 bytes), so all sizes are.
MAX_ZIP_BYTES = 50 * MIB
LAMBDA_MAX_UNZIPPED = 250 * MIB

# libgomp source: the scikit-learn wheel (manylinux_2_28, cp312) bundles a libgomp built
# for old glibc. Only that one file is taken; scikit-learn itself goes in no layer.
LIBGOMP_SOURCE_PIN = "scikit-learn==1.9.1"
LIBGOMP_MEMBER_GLOB = "scikit_learn.libs/libgomp-*.so.1*"
# LightGBM's C library for the native layer, from the lightgbm wheel pinned in
# requirements/layer-model.txt (the same build the model layer's Python package wraps).
LIB_LIGHTGBM_DIST = "lightgbm"
LIB_LIGHTGBM_MEMBER = "lightgbm/lib/lib_lightgbm.so"

# Symbol-version ceilings of the python3.12 runtime (Amazon Linux 2023: glibc 2.34,
# GCC 11 runtime libraries: libstdc++ up to GLIBCXX_3.4.29 / CXXABI_1.3.13).
VERSION_CEILINGS: dict[str, tuple[int, ...]] = {
    "GLIBC": (2, 34),
    "GLIBCXX": (3, 4, 29),
    "CXXABI": (1, 3, 13),
    "GCC": (11,),
}

# Libraries an extension may need that the python3.12 Lambda image provides itself
# (glibc, the GCC runtime and zlib are in every AL2023 Lambda image). Anything else must
# be found inside the layer: via RPATH/RUNPATH ($ORIGIN) or in lib/ (/opt/lib is on
# Lambda's LD_LIBRARY_PATH).
SYSTEM_LIBS_COMMON = frozenset(
    {
        "libc.so.6",
        "libm.so.6",
        "libpthread.so.0",
        "libdl.so.2",
        "librt.so.1",
        "libutil.so.1",
        "libstdc++.so.6",
        "libgcc_s.so.1",
        "libz.so.1",
    }
)


@dataclass(frozen=True)
class Arch:
    """A Lambda architecture and the names that stand for it in wheels and ELF files."""

    lambda_name: str
    machine: str
    elf_machine: str
    loader: str

    def platform_tags(self) -> list[str]:
        """Manylinux tags for glibc <= 2.34, newest first; pip does not expand them itself."""
        tags = [f"manylinux_2_{minor}_{self.machine}" for minor in range(34, 16, -1)]
        return [*tags, f"manylinux2014_{self.machine}"]

    def system_libs(self) -> frozenset[str]:
        """The allow-list plus this architecture's dynamic loader."""
        return SYSTEM_LIBS_COMMON | {self.loader}


ARCHES = {
    "x86_64": Arch("x86_64", "x86_64", "Advanced Micro Devices X86-64", "ld-linux-x86-64.so.2"),
    "arm64": Arch("arm64", "aarch64", "AArch64", "ld-linux-aarch64.so.1"),
}


@dataclass(frozen=True)
class LayerSpec:
    """One layer: its pins (None: no Python packages), what may never be in it, its native libraries."""

    name: str
    requirements: Path | None
    forbidden_top_level: frozenset[str] = frozenset()
    with_libgomp: bool = False
    with_lib_lightgbm: bool = False

    @property
    def zip_name(self) -> str:
        return f"{self.name}-layer.zip"


LAYERS = (
    LayerSpec(
        "model",
        REQUIREMENTS_DIR / "layer-model.txt",
        # lightgbm imports pandas/sklearn whenever they are importable: never here.
        frozenset({"pandas", "sklearn", "scikit_learn.libs"}),
        with_libgomp=True,
    ),
    LayerSpec(
        "pandas",
        REQUIREMENTS_DIR / "layer-pandas.txt",
        # numpy comes from the model layer; two copies would shadow each other.
        frozenset({"numpy", "numpy.libs", "scipy", "lightgbm", "sklearn", "scikit_learn.libs"}),
    ),
    # The API function's only layer: lib/lib_lightgbm.so and lib/libgomp.so.1 (/opt/lib is on
    # Lambda's LD_LIBRARY_PATH), for chalicelib's ctypes binding. No numpy, scipy or
    # lightgbm package: importing them was most of the API's cold start.
    LayerSpec("native", None, with_libgomp=True, with_lib_lightgbm=True),
)


@dataclass(frozen=True)
class FunctionSpec:
    """A Lambda function of the app, the layers it gets and its unzipped budget."""

    name: str
    layers: tuple[str, ...]
    budget_bytes: int


FUNCTIONS = (
    FunctionSpec("api_handler", ("native",), 25 * MIB),
    FunctionSpec("score_uploaded_csv", ("model", "pandas"), 180 * MIB),
    # The fan-out's steps score ranges with the same code as score_uploaded_csv.
    FunctionSpec("fanout_task", ("model", "pandas"), 180 * MIB),
)

# The lean API (issue 10): what answering /predict_price, /health and /openapi.json may
# not import, and its peak RSS. deploy.smoke enforces both.
HEAVY_MODULES = ("numpy", "scipy", "narwhals", "pandas", "lightgbm")
API_PEAK_RSS_BYTES = 40 * MIB
