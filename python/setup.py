"""Builds gptqcpp's C++ module with the project's CMake build (no download: pybind11, the BLAS and
the other libraries come from Debian packages, see scripts/setup.sh) and packages it.

    pip install --no-build-isolation ./python      (in a virtual environment, or --user)

The build directory is $GPTQ_BUILD_DIR, else build/ at the repository root (an existing build is
reused: only what changed is rebuilt)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent.parent


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build = Path(os.environ.get("GPTQ_BUILD_DIR", ROOT / "build")).resolve()
        configure = ["cmake", "-S", str(ROOT), "-B", str(build), "-G", "Ninja",
                     "-DCMAKE_BUILD_TYPE=" + os.environ.get("BUILD_TYPE", "Release"),
                     "-DPython_EXECUTABLE=" + os.path.realpath(sys.executable)]
        subprocess.check_call(configure + os.environ.get("CMAKE_ARGS", "").split())
        subprocess.check_call(["cmake", "--build", str(build), "--target", "gptqcpp", "-j", str(os.cpu_count() or 1)])
        built = sorted((build / "python" / "gptqcpp").glob("_core*.so"))
        if not built:
            raise RuntimeError(f"the CMake build did not produce {build}/python/gptqcpp/_core*.so "
                               "(are python3-dev and pybind11-dev installed? scripts/setup.sh)")
        target = Path(self.get_ext_fullpath(ext.name))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(built[-1], target)


setup(ext_modules=[Extension("gptqcpp._core", sources=[])], cmdclass={"build_ext": CMakeBuild})
