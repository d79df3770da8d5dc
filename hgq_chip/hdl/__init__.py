"""Pipelined Verilog of a whole model (``hgq_chip rtl``) and its Verilator check (``hgq_chip verify``).

The package is ``hgq_chip.hdl``, not ``hgq_chip.rtl``: ``hgq_chip.rtl`` is the Python API
function, and a subpackage of the same name would rebind it on import
(``tests/test_package_exports.py``). Modules here import da4ml lazily (it is the ``rtl`` extra),
through ``compat`` only.
"""
