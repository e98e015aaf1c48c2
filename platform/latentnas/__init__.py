"""latentnas: neural architecture search in a learned latent space, distributed with Ray.

The import name of the platform; its source lives in ``platform/latentnas`` (``platform/``
is a source root, never a package, so the standard library's ``platform`` stays intact).
"""

__version__ = "0.1.0"
