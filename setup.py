"""Build of the native extensions (ADR 0007); everything else is in pyproject.toml."""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [Extension(f"onramp.engine.{name}", [f"src/onramp/engine/{name}.pyx"], extra_compile_args=["-O3"])
         for name in ("_simple_profiles", "_dealing", "_kv_profiles")],
        language_level=3,
    )
)
