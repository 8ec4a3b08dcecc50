"""Zero-cost proxies: score an untrained network from one batch (or none).

>>> import robnas
>>> net = robnas.spaces.get("nb201").build("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
>>> x, y = robnas.data.proxy_batch(robnas.data.synthetic(16), 8)
>>> robnas.proxies.compute("synflow", net, x, y) > 0
True
"""

from robnas.proxies import base, croze, gradient, jacobian, ntk, robust, size, zen  # noqa: F401  (importing a proxy module registers it)
from robnas.proxies.base import PROXIES, ProxyResult, ProxySpec, compute, names, register, run

__all__ = ["PROXIES", "ProxyResult", "ProxySpec", "base", "compute", "names", "register", "run"]
