"""robnas: robust neural architecture search.

Robust zero-cost proxies (CRoZe), robust cell spaces and published robust models
(RobNets, Wsr-NAS), gradient-based training-free search (HNAS), attacks, common
corruptions, tabular benchmarks, search strategies and training recipes.
"""

from robnas import data, proxies, spaces
from robnas.errors import RobnasError

__version__ = "0.1.0"

__all__ = ["RobnasError", "__version__", "data", "proxies", "spaces"]
