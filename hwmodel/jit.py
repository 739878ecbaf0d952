"""hwmodel's numba kernels, loaded on their first call: from the ahead-of-time compiled module when it was built
from the current sources, otherwise by numba (compiled, or loaded from numba's on-disk cache).

A short command (``naas-hw evaluate --layer ... --search``) spends more on importing numba (~0.25 s) and loading
its cached kernels (~0.25 s) than on its work (~0.1 s). So hwmodel never imports numba at import time:

* :func:`njit` wraps a kernel in a :class:`Kernel`, which creates numba's dispatcher (importing numba) at its first
  call, or when a kernel being compiled refers to it. To numba it looks like a dispatcher: ``_numba_type_`` types
  it, and ``targetoptions`` / ``py_func`` let numba's inliner honour ``inline="always"``.
* A kernel called from Python by short commands declares an :class:`AotSignature`; ``python -m
  hwmodel.aot_build`` (run by ``scripts/setup.sh``) compiles those kernels with ``numba.pycc`` into
  :data:`AOT_MODULE`, a plain extension module that needs numpy only, for the build machine's CPU (as numba's JIT
  does). It records a digest of :data:`KERNEL_FILES` and the CPU's features; a module built from other sources or
  for another CPU (a cluster node of another kind sharing the install) is ignored, as is one that fails to
  import, and :data:`AOT_ENV` ``=0`` turns it off.
* A call uses the AOT function only when every argument has exactly the declared type (dtype, dimensions,
  C-contiguous and writeable arrays; Python or numpy scalars of the declared kind), else numba's dispatcher.
  Same code, same numba version, same results: ``tests/test_jit.py`` checks them bit for bit.

A ``parallel=True`` kernel refers to ``prange``; this module's :data:`prange` is the builtin ``range`` (what
``prange`` means outside numba) and the kernel's module global is set to ``numba.prange`` when its dispatcher is
created, so its loops are parallel loops as before. AOT kernels cannot be parallel (``numba.pycc`` has no
threading layer), nor call one.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import os
import platform
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

#: The modules holding kernels, in the order the AOT build imports them.
KERNEL_MODULES = ("hwmodel.tiling_kernel", "hwmodel.nestkernel", "hwmodel.search")
#: Sources the AOT module's digest covers: every kernel module (a kernel's callees are compiled into it).
KERNEL_FILES = tuple(Path(__file__).with_name(m.rpartition(".")[2] + ".py") for m in KERNEL_MODULES)
#: The AOT module built by :mod:`hwmodel.aot_build`.
AOT_MODULE = "hwmodel._aot_kernels"
#: Its export holding the :func:`build_digest` it was built with.
AOT_DIGEST_EXPORT = "build_digest"
#: Where Linux lists the CPU's features.
CPUINFO = "/proc/cpuinfo"
#: Set to ``0`` to ignore the AOT module (every kernel then runs on numba's JIT), e.g. to compare the two.
AOT_ENV = "NAAS_HW_AOT"
#: Outside numba, ``prange`` is ``range`` (numba's own docs); see the module docstring.
prange = range

_ARG = re.compile(r"^(?P<dtype>[a-z]+[0-9]*)(?:\[(?P<dims>[^\]]*)\])?$")
#: numba scalar type names -> the Python / numpy scalar types a call may pass for them.
_SCALARS: dict[str, tuple[type, ...]] = {
    "int64": (int, np.int64),
    "float64": (float, np.float64),
    "boolean": (bool, np.bool_),
}
_ARRAY_DTYPES = {"int64": np.dtype(np.int64), "float64": np.dtype(np.float64)}


@dataclass(frozen=True)
class AotSignature:
    """A kernel's ahead-of-time signature in numba's type syntax: scalars ``int64`` / ``float64`` / ``boolean``,
    C-contiguous arrays ``float64[:, ::1]``; ``returns`` may be any numba type (``Tuple((...))``, ``void``)."""

    returns: str
    args: tuple[str, ...]

    def __post_init__(self) -> None:
        for arg in self.args:
            _arg_check(arg)

    @property
    def numba_signature(self) -> str:
        return f"{self.returns}({', '.join(self.args)})"


def _arg_check(arg: str) -> Callable[[Any], bool]:
    """The test an argument must pass to go to the AOT function declared with type ``arg``."""
    match = _ARG.match(arg.replace(" ", ""))
    if match is None:
        raise ValueError(f"AotSignature: cannot read argument type {arg!r} (expected e.g. 'int64', 'float64[:, ::1]')")
    name, dims = match["dtype"], match["dims"]
    if dims is None:
        if name not in _SCALARS:
            raise ValueError(f"AotSignature: scalar type {name!r} not supported (use one of {sorted(_SCALARS)})")
        kinds = _SCALARS[name]
        if name == "int64":  # bool is an int subclass, and numba types it as a boolean
            return lambda v: isinstance(v, kinds) and not isinstance(v, bool)
        return lambda v: isinstance(v, kinds)
    axes = dims.split(",")
    if name not in _ARRAY_DTYPES or axes[-1] != "::1" or any(a != ":" for a in axes[:-1]):
        raise ValueError(f"AotSignature: array type {arg!r} must be a C-contiguous int64 / float64 array "
                         "(e.g. 'float64[:, ::1]')")
    dtype, ndim = _ARRAY_DTYPES[name], len(axes)
    return lambda v: (isinstance(v, np.ndarray) and v.dtype == dtype and v.ndim == ndim
                      and v.flags.c_contiguous and v.flags.writeable)


def cpu_features() -> str:
    """The CPU features AOT code may use: on Linux the first ``flags`` (x86) / ``Features`` (Arm) line of
    ``/proc/cpuinfo`` (the build then targets the host CPU), elsewhere ``""`` (it targets a generic CPU)."""
    try:
        with open(CPUINFO, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip() in ("flags", "Features"):
                    return " ".join(sorted(value.split()))
    except OSError:
        pass
    return ""


def build_digest() -> int:
    """Digest of :data:`KERNEL_FILES`, the machine's architecture and :func:`cpu_features`, as a non-negative
    int64: the AOT module is used only where it equals the one it was built with."""
    h = hashlib.sha256()
    for path in KERNEL_FILES:
        h.update(path.read_bytes())
    h.update(f"\0{platform.machine()}\0{cpu_features()}".encode())
    return int.from_bytes(h.digest()[:8], "little") >> 1


@functools.cache
def aot_module() -> ModuleType | None:
    """The AOT module when it exists, imports, was built from the current :data:`KERNEL_FILES` on a CPU with the
    same features, and
    :data:`AOT_ENV` is not ``0`` (read once per process)."""
    if os.environ.get(AOT_ENV, "").strip() == "0":
        return None
    try:
        module = importlib.import_module(AOT_MODULE)
    except ImportError:
        return None
    return module if getattr(module, AOT_DIGEST_EXPORT)() == build_digest() else None


def load_numba() -> ModuleType:
    """Import numba, letting its first import skip the BLAS probe of ``numba.np.arraymath``.

    That probe imports ``scipy.linalg`` (~0.2 s with the ``numpy.f2py`` scipy's array-API shim pulls in) only to
    choose the inner loop of ``np.correlate`` / ``np.convolve``, which no hwmodel kernel calls. It runs once, when
    ``numba.np.arraymath`` is first imported; we import it with ``scipy.linalg.cython_blas`` unimportable for that
    moment, so kernels compiled by this process use numba's own loop for those two. ``np.dot`` and ``np.linalg``
    look for BLAS / LAPACK when compiled, after the block is lifted. Nothing is done when numba or scipy's BLAS
    module was imported first."""
    blocked = "scipy.linalg.cython_blas"
    if "numba.np.arraymath" not in sys.modules and blocked not in sys.modules:
        sys.modules[blocked] = None  # type: ignore[assignment]  # `import` of it raises ImportError
        try:
            import numba.np.arraymath
        finally:
            if sys.modules.get(blocked, False) is None:
                del sys.modules[blocked]
    import numba

    return numba


class Kernel:
    """A numba kernel whose dispatcher is created on first use (see the module docstring)."""

    def __init__(self, py_func: Callable[..., Any], options: dict[str, Any], aot: AotSignature | None) -> None:
        functools.update_wrapper(self, py_func)
        self.py_func = py_func
        self._options = options
        #: numba's jit options but ``cache``, as a dispatcher has them (its inliner reads ``inline`` here).
        self.targetoptions = {k: v for k, v in options.items() if k != "cache"}
        self.aot = aot
        self._checks = None if aot is None else tuple(_arg_check(a) for a in aot.args)
        self._dispatcher: Any = None
        self._aot_function: Callable[..., Any] | None = None
        self._aot_resolved = aot is None

    @property
    def aot_name(self) -> str:
        """The kernel's name in the AOT module."""
        return f"{self.__module__.rpartition('.')[2]}__{self.__name__}"

    @property
    def dispatcher(self) -> Any:
        """numba's dispatcher of the kernel (created, and numba imported, on first access)."""
        if self._dispatcher is None:
            numba = load_numba()
            if self._options.get("parallel"):
                self.py_func.__globals__["prange"] = numba.prange
            self._dispatcher = numba.njit(**self._options)(self.py_func)
        return self._dispatcher

    @property
    def compiled(self) -> Any:
        """numba's dispatcher if created already, else None (creates nothing)."""
        return self._dispatcher

    @property
    def _numba_type_(self) -> Any:
        return self.dispatcher._numba_type_

    def aot_function(self) -> Callable[..., Any] | None:
        """The kernel's AOT-compiled function, when the AOT module is current (looked up once)."""
        if not self._aot_resolved:
            module = aot_module()
            self._aot_function = None if module is None else getattr(module, self.aot_name, None)
            self._aot_resolved = True
        return self._aot_function

    def accepts_aot(self, args: tuple[Any, ...]) -> bool:
        """Whether ``args`` have exactly the types of the kernel's AOT signature."""
        checks = self._checks
        return checks is not None and len(args) == len(checks) and all(c(a) for c, a in zip(checks, args))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not kwargs and self._checks is not None:
            function = self.aot_function()
            if function is not None and self.accepts_aot(args):
                return function(*args)
        return self.dispatcher(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # the dispatcher's other attributes (stats, signatures, ...)
        if name.startswith("__") or name in ("_dispatcher", "_options", "_checks"):
            raise AttributeError(name)
        return getattr(self.dispatcher, name)

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return _kernel_named, (self.__module__, self.__qualname__)


def _kernel_named(module: str, qualname: str) -> Kernel:
    return getattr(importlib.import_module(module), qualname)


def njit(*, aot: AotSignature | None = None, **options: Any) -> Callable[[Callable[..., Any]], Kernel]:
    """``numba.njit(**options)``, created on first use; ``aot``: the signature it is compiled with ahead of time
    (its module must be one of :data:`KERNEL_MODULES`, and it must not be ``parallel``)."""

    def wrap(py_func: Callable[..., Any]) -> Kernel:
        if aot is not None and (py_func.__module__ not in KERNEL_MODULES or options.get("parallel")):
            raise ValueError(f"{py_func.__qualname__}: an AOT kernel must be serial and live in one of "
                             f"hwmodel.jit.KERNEL_MODULES {KERNEL_MODULES}")
        return Kernel(py_func, options, aot)

    return wrap
