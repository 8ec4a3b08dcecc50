"""RobNets (Guo et al., "When NAS Meets Robustness", CVPR 2020): the FSP filter
(:mod:`~robnas.oneshot.robnets.fsp`), candidates scored with inherited supernet weights
(:mod:`~robnas.oneshot.robnets.objective`; the ``oneshot:`` objectives of
:mod:`robnas.objectives.oneshot`) and the three analyses (:mod:`~robnas.oneshot.robnets.analysis`).
The search strategy is :class:`robnas.search.robnets.RobNetsSearch`.
"""
