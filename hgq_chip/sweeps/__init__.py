"""Sweeps at scale: many trainings on Ray Tune, their global Pareto front and its firmware fan-out.

``hgq_chip.sweeps.sweep(spec, out, ...)`` (also ``hgq_chip.sweep`` at the package top and
``hgq_chip sweep SPEC.yaml --out DIR``). Needs the ``sweep`` extra (``ray[tune]``, ``optuna``),
imported only when a sweep runs. Modules: ``spec`` (the YAML spec), ``trial`` (one training in
a Ray worker), ``front`` (the global front), ``fanout`` (convert/verify/estimate/synth tasks),
``cluster`` (Ray start-up on loopback or a cluster), ``run`` (the orchestration), ``tasks``
(the MNIST-4x4 loader and MLP builder), ``cli`` (the command).
"""

from .._lazy import lazy_exports

_EXPORTS = {"SweepSpec": ".spec", "load_spec": ".spec", "sweep": ".run"}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = sorted(_EXPORTS)
