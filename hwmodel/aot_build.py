"""Build :data:`hwmodel.jit.AOT_MODULE`: the kernels declared with an :class:`hwmodel.jit.AotSignature`, compiled
ahead of time with ``numba.pycc`` (see :mod:`hwmodel.jit` for why and how they are used).

    python -m hwmodel.aot_build [--output-dir DIR]     # default: next to hwmodel/jit.py (scripts/setup.sh runs it)

Takes ~10-20 s and a C compiler. The module is written under a temporary name and renamed into place. Where the
CPU's features are known (:func:`hwmodel.jit.cpu_features`, Linux) code is generated for the host CPU, as numba's
JIT does (a generic x86-64 build measured 3-4% slower); the features are part of the digest, so a node whose CPU
differs ignores the module instead of running instructions it may lack. Elsewhere the code is generic.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.machinery
import os
import tempfile
from pathlib import Path

from hwmodel.jit import (
    AOT_DIGEST_EXPORT,
    AOT_MODULE,
    KERNEL_MODULES,
    Kernel,
    build_digest,
    cpu_features,
    load_numba,
)


def aot_kernels() -> list[Kernel]:
    """Every kernel of :data:`hwmodel.jit.KERNEL_MODULES` that declares an AOT signature, in module order."""
    found: list[Kernel] = []
    for name in KERNEL_MODULES:
        module = importlib.import_module(name)
        found += [k for k in vars(module).values()
                  if isinstance(k, Kernel) and k.aot is not None and k.__module__ == name]
    return found


def _constant(value: int):
    def digest() -> int:
        return value

    return digest


def build(output_dir: Path) -> Path:
    """Compile the AOT kernels into ``output_dir``; returns the module's path."""
    load_numba()
    from numba.pycc import CC

    kernels = aot_kernels()
    if not kernels:
        raise RuntimeError(f"no kernel in {KERNEL_MODULES} declares an AotSignature")
    name = AOT_MODULE.rpartition(".")[2]
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    target = output_dir / f"{name}{suffix}"
    digest = build_digest()
    with tempfile.TemporaryDirectory(prefix="aot-build-", dir=output_dir) as tmp:
        cc = CC(name)
        cc.output_dir = tmp
        cc.verbose = False
        cc.target_cpu = "host" if cpu_features() else ""  # see hwmodel.jit.cpu_features
        for kernel in kernels:
            cc.export(kernel.aot_name, kernel.aot.numba_signature)(kernel.py_func)
        cc.export(AOT_DIGEST_EXPORT, "int64()")(_constant(digest))
        cc.compile()
        built = Path(tmp) / target.name
        if not built.exists():
            raise RuntimeError(f"numba.pycc did not write {built.name} (files: {os.listdir(tmp)})")
        os.replace(built, target)
    if build_digest() != digest:
        target.unlink()
        raise RuntimeError("the kernel sources changed during the build; run it again")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hwmodel.aot_build", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", type=Path, default=Path(__file__).resolve().parent,
                        help="folder of the hwmodel package the module is for (default: this one)")
    args = parser.parse_args(argv)
    path = build(args.output_dir)
    print(f"wrote {path} ({len(aot_kernels())} kernels)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
