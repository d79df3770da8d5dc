"""The one place hgq_chip imports the RTL library (da4ml 0.6) for pipelining and Verilog.

Tracing, pipelining, code generation and the Verilator harness all come from da4ml 0.6
(``pip install 'hgq_chip[rtl]'``). Its successor alkaid has the same roles under other
names (``alkaid.trace.FVArray``, ``alkaid.trace.trace``, ``alkaid.codegen.RTLModel``); a
backend for it would go here, selected in ``load()``. The two libraries' saved logic must
never be mixed: alkaid 0.8.2 loads da4ml 0.6 JSON without error but computes wrong values
(/work/shared/design/rtl-toolchain-notes.md, section 4).
"""

from __future__ import annotations

from types import SimpleNamespace

from ..errors import ToolMissingError

INSTALL_HINT = "pip install 'hgq_chip[rtl]' (da4ml 0.6)"
BACKEND = "da4ml"


def load() -> SimpleNamespace:
    """The RTL library's entry points: ``FixedVariableArray``, ``comb_trace``, ``relu``,
    ``VerilogModel``, ``to_pipeline``, ``CombLogic``, ``Pipeline``, ``minimal_kif``, plus
    ``backend`` ("da4ml") and ``version``.

    Raises ToolMissingError when da4ml is not installed.
    """
    try:
        import da4ml
        from da4ml.codegen import VerilogModel
        from da4ml.trace import FixedVariableArray, comb_trace
        from da4ml.trace.ops import relu
        from da4ml.trace.pipeline import to_pipeline
        from da4ml.types import CombLogic, Pipeline, minimal_kif
    except ImportError as error:
        raise ToolMissingError(f"da4ml is not installed; {INSTALL_HINT}") from error
    return SimpleNamespace(FixedVariableArray=FixedVariableArray, comb_trace=comb_trace, relu=relu,
                           VerilogModel=VerilogModel, to_pipeline=to_pipeline, CombLogic=CombLogic,
                           Pipeline=Pipeline, minimal_kif=minimal_kif, backend=BACKEND,
                           version=getattr(da4ml, "__version__", "unknown"))
