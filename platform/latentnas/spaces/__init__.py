"""Search spaces: cells as graphs, validity, canonical hashes, enumeration, tensors."""

from __future__ import annotations

from functools import lru_cache

from latentnas.errors import UnknownNameError
from latentnas.spaces.base import Cell, FiniteSpace, SearchSpace
from latentnas.spaces.nb101 import NB101Space
from latentnas.spaces.nb101_full import NB101FullSpace
from latentnas.spaces.nb201 import NB201Space
from latentnas.spaces.nbgraph import NBGraphSpace

_FACTORIES = {
    "nb201": NB201Space,
    "nb101": NB101Space,
    "nb101-full": NB101FullSpace,
    "nbgraph": NBGraphSpace,
    "nbgraph-proteins": lambda: NBGraphSpace(proteins=True),
}
SPACE_NAMES = tuple(_FACTORIES)


@lru_cache(maxsize=None)
def get_space(name: str) -> SearchSpace:
    """The (process-wide, shared) space called ``name``; see ``SPACE_NAMES``."""
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise UnknownNameError("space", name, SPACE_NAMES) from None
    return factory()


__all__ = ["Cell", "SearchSpace", "FiniteSpace", "NB201Space", "NB101Space", "NBGraphSpace",
           "get_space", "SPACE_NAMES"]
