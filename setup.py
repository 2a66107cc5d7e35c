"""Build fastconv's Cython extensions, with OpenMP when the compiler has it.

OpenMP is probed by compiling and linking a tiny program.  Without it (or with
``FASTCONV_NO_OPENMP=1`` in the environment) the build goes on serial: the
kernels' ``prange`` loops then run on one thread and every test still passes.

``FASTCONV_EXTRA_CFLAGS`` / ``FASTCONV_EXTRA_LDFLAGS`` (space-separated) are
appended to the extensions' compile / link flags after the OpenMP probe, which
does not see them: ``tools/sanitize.sh`` builds with ``-fsanitize=...`` this
way (through plain ``CFLAGS`` the probe's executable would fail to link
against the sanitizer runtime, and the build would silently go serial).
"""

import glob
import os
import shlex
import shutil
import sys
import sysconfig
import tempfile
import textwrap

import numpy as np
from Cython import __version__ as cython_version
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
# Every fastconv/_kernels/*.pyx is one extension module.
KERNELS = sorted(
    os.path.splitext(os.path.basename(p))[0]
    for p in glob.glob(os.path.join(HERE, "fastconv", "_kernels", "*.pyx"))
)

CYTHON_DIRECTIVES = {
    "language_level": 3,
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": False,
    "nonecheck": False,
    "embedsignature": True,
}

OPENMP_PROBE = textwrap.dedent(
    """
    #include <omp.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        return n > 0 ? 0 : 1;
    }
    """
)


def _openmp_flags(compiler):
    """Return (compile_args, link_args) for OpenMP, or None when unavailable."""
    if os.environ.get("FASTCONV_NO_OPENMP", "0") not in ("", "0"):
        print("fastconv: FASTCONV_NO_OPENMP is set; building without OpenMP")
        return None
    if compiler.compiler_type == "msvc":
        candidates = [(["/openmp"], [])]
    elif sys.platform == "darwin":
        candidates = [(["-Xpreprocessor", "-fopenmp"], ["-lomp"]), (["-fopenmp"], ["-fopenmp"])]
    else:
        candidates = [(["-fopenmp"], ["-fopenmp"])]
    for cflags, ldflags in candidates:
        tmp = tempfile.mkdtemp(prefix="fastconv-omp-")
        try:
            src = os.path.join(tmp, "probe.c")
            with open(src, "w") as f:
                f.write(OPENMP_PROBE)
            objs = compiler.compile([src], output_dir=tmp, extra_postargs=cflags)
            # setuptools links extensions with LDFLAGS but executables without
            # them: pass them here too, so that an OpenMP runtime found only
            # through LDFLAGS (macOS: -L<libomp prefix>/lib) passes the probe.
            env_ldflags = [] if compiler.compiler_type == "msvc" else shlex.split(os.environ.get("LDFLAGS", ""))
            compiler.link_executable(objs, "probe", output_dir=tmp, extra_postargs=ldflags + env_ldflags)
            return cflags, ldflags
        except Exception:  # noqa: BLE001 - any failure means "no OpenMP"
            continue
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    print("fastconv: WARNING the compiler does not support OpenMP; building a serial fastconv")
    return None


class BuildExt(build_ext):
    """build_ext that adds OpenMP and warning flags per compiler, then records them."""

    def build_extensions(self):
        cc = self.compiler
        if cc.compiler_type == "msvc":
            base = ["/O2"]
        else:
            # -fwrapv: integer convolution wraps on overflow like NumPy instead of
            # being undefined behaviour.  No -march: wheels must run on any CPU.
            # A C function the kernels call but no header defines (a misspelt
            # name) fails the build instead of leaving an undefined symbol.
            base = ["-O3", "-fwrapv", "-fno-math-errno", "-Wno-unreachable-code",
                    "-Werror=implicit-function-declaration"]
        omp = _openmp_flags(cc)
        ccflags, ldflags = (base + omp[0], omp[1]) if omp else (base, [])
        ccflags = ccflags + shlex.split(os.environ.get("FASTCONV_EXTRA_CFLAGS", ""))
        ldflags = ldflags + shlex.split(os.environ.get("FASTCONV_EXTRA_LDFLAGS", ""))
        self._force_if_flags_changed(ccflags + ["|"] + ldflags)
        for ext in self.extensions:
            ext.extra_compile_args = ccflags + list(ext.extra_compile_args or [])
            ext.extra_link_args = ldflags + list(ext.extra_link_args or [])
        _write_build_info(
            {
                "openmp": omp is not None,
                "compiler": " ".join(getattr(cc, "compiler_so", None) or [cc.compiler_type]),
                "compile_args": ccflags,
                "link_args": ldflags,
                "cython_version": cython_version,
                "numpy_build_version": np.__version__,
                "platform": sysconfig.get_platform(),
            },
            self.build_lib,
        )
        super().build_extensions()

    def _force_if_flags_changed(self, flags):
        """Rebuild every extension when the flags differ from the last build in ``build_temp``.

        setuptools skips extensions whose sources are older than their targets,
        so switching ``FASTCONV_NO_OPENMP`` in a reused tree would otherwise
        keep the previous build's objects.
        """
        stamp = os.path.join(self.build_temp, "fastconv-flags.txt")
        text = "\n".join(flags)
        previous = None
        if os.path.exists(stamp):
            with open(stamp) as f:
                previous = f.read()
        if previous != text:
            self.force = True
            os.makedirs(self.build_temp, exist_ok=True)
            with open(stamp, "w") as f:
                f.write(text)


def _write_build_info(info, build_lib):
    """Write fastconv/_build_info.py (read by show_config) into source and build trees."""
    text = '"""Generated by setup.py at build time; not in version control."""\n\n'
    text += "BUILD_INFO = " + repr(info) + "\n"
    for root in {HERE, os.path.abspath(build_lib)}:
        pkg = os.path.join(root, "fastconv")
        if os.path.isdir(pkg):
            with open(os.path.join(pkg, "_build_info.py"), "w") as f:
                f.write(text)


extensions = [
    Extension(
        f"fastconv._kernels.{name}",
        [f"fastconv/_kernels/{name}.pyx"],
        depends=glob.glob("fastconv/_kernels/*.h"),
        include_dirs=[np.get_include(), "fastconv/_kernels"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
    for name in KERNELS
]

setup(
    ext_modules=cythonize(extensions, compiler_directives=CYTHON_DIRECTIVES),
    cmdclass={"build_ext": BuildExt},
)
