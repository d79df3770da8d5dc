"""The C++ harness Verilator's model of the RTL top is linked with: one sample per clock.

``hgq_chip_rtl_run(inp, out, n_samples, n_cycles, progress)`` drives the top ``model`` itself
(not da4ml's uniform-width wrapper, whose host code casts inputs by wrapping and is limited to
32-bit elements): each cycle ``t`` it puts input row ``min(t, n_samples - 1)`` (port words, as
``hdl.ports.pack`` makes them) on ``model_inp``, gives one rising clock edge and stores
``model_out`` as output row ``t``. The caller then finds sample ``s`` at row ``s + latency``
(``hdl.rtl_verify``). ``progress`` counts the cycles done, so a crash names the cycle.
Verilator stores ports of up to 64 bits as integers and wider ones as ``VlWide`` arrays of
32-bit words, least significant first; ``put``/``get`` cover both.
"""

from __future__ import annotations

HARNESS_FILE = "hgq_chip_harness.cc"
SYMBOL = "hgq_chip_rtl_run"


def harness_source(top: str, in_words: int, out_words: int) -> str:
    """The harness for top module ``top`` with ports of ``in_words`` / ``out_words`` 32-bit words."""
    return f"""// Written by hgq_chip (hgq_chip/hdl/harness.py): one sample per clock through the top `{top}`.
#include <cstddef>
#include <cstdint>
#include <memory>
#include "verilated.h"
#include "V{top}.h"

template <typename T> static void put(T &port, const uint32_t *w, std::size_t n) {{
    uint64_t v = w[0];
    if (n > 1) v |= static_cast<uint64_t>(w[1]) << 32;
    port = static_cast<T>(v);
}}
template <std::size_t N> static void put(VlWide<N> &port, const uint32_t *w, std::size_t n) {{
    for (std::size_t i = 0; i < N; ++i) port[i] = i < n ? w[i] : 0;
}}
template <typename T> static void get(const T &port, uint32_t *w, std::size_t n) {{
    uint64_t v = static_cast<uint64_t>(port);
    w[0] = static_cast<uint32_t>(v);
    if (n > 1) w[1] = static_cast<uint32_t>(v >> 32);
}}
template <std::size_t N> static void get(const VlWide<N> &port, uint32_t *w, std::size_t n) {{
    for (std::size_t i = 0; i < n; ++i) w[i] = i < N ? port[i] : 0;
}}

extern "C" int {SYMBOL}(const uint32_t *inp, uint32_t *out, uint64_t n_samples, uint64_t n_cycles,
                        int64_t *progress) {{
    const std::size_t in_words = {in_words}, out_words = {out_words};
    auto context = std::make_unique<VerilatedContext>();
    auto dut = std::make_unique<V{top}>(context.get());
    for (uint64_t t = 0; t < n_cycles; ++t) {{
        uint64_t row = t < n_samples ? t : n_samples - 1;
        put(dut->{top}_inp, inp + row * in_words, in_words);
        dut->clk = 0;
        dut->eval();
        dut->clk = 1;
        dut->eval();
        get(dut->{top}_out, out + t * out_words, out_words);
        *progress = static_cast<int64_t>(t + 1);
    }}
    dut->final();
    return 0;
}}
"""
