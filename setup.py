"""Build of the native extension (ADR 0007); everything else is in pyproject.toml."""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [Extension("onramp.engine._simple_profiles", ["src/onramp/engine/_simple_profiles.pyx"], extra_compile_args=["-O3"])],
        language_level=3,
    )
)
