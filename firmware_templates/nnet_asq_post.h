// hgq_chip: dense and convolution layers with LSQ/ASQ input codes and LSQ/POT/POST weights (seed 001).
//
//   m   = sat(round(x * r(beta) * 2^-code_shift))   b-bit input codes (r = 1, beta = 1 for LSQ)
//   acc = sum_i m[i] * unit[i][j]                    exact, in accum_t (per output position for a conv)
//   y   = acc * beta * 2^out_shift + bias             exact, in res_T
//
// Every type comes from hgq_chip's precision derivation, wide enough that each step is exact
// (only the cast to code_t rounds and saturates, and the cast to beta_t; both declared).
// The Keras layer (hgq_chip.layers.ASQDense) computes the same steps, so C simulation is
// bit-exact. POT/POST weights are codes sigma*(j+1): the layer multiplies each input once by
// the constant c ~ 1/sqrt(2) and otherwise only shifts and adds.

#ifndef NNET_ASQ_POST_H_
#define NNET_ASQ_POST_H_

#include "nnet_common.h"

namespace nnet {

// Weight encodings: integer multipliers (LSQ) or level codes sigma*(j+1) (POT, POST).
struct asq_uniform_weights {};
struct asq_log_weights {};

struct asq_post_config {
    static const unsigned n_in = 1;
    static const unsigned n_out = 1;
    static const unsigned n_hidden = 0;     // adapter hidden units; 0: one linear layer
    static const int code_shift = 0;        // input step 2^code_shift
    static const int out_shift = 0;         // accumulator scale 2^out_shift
    static const bool sqrt2_levels = false; // POST (odd levels use c) or POT
    static const unsigned beta_min_code = 0;
    // Convolutions (channels_last, 'valid'; a 1D conv has height 1): n_in = filt_height * filt_width * n_chan
    // codes per patch, n_out = filters.
    static const unsigned in_height = 1;
    static const unsigned in_width = 1;
    static const unsigned n_chan = 1;
    static const unsigned filt_height = 1;
    static const unsigned filt_width = 1;
    static const unsigned stride_height = 1;
    static const unsigned stride_width = 1;
    static const unsigned out_height = 1;
    static const unsigned out_width = 1;
    static constexpr double beta_min = 0.5;
    static constexpr double sqrt_half = 0.70703125;
    typedef asq_uniform_weights weight_kind;
    typedef ap_fixed<2, 2> in_t, code_t, code_wide_t, accum_t, out_wide_t, weight_t, bias_t;
    typedef ap_fixed<2, 2> xc_t, term_t, sqrt_half_t;
    typedef ap_fixed<2, 2> sum_t, hidden_t, z_t, beta_t, adapter_t, table_t, product_t, rescaled_t;
};

// value * 2^-shift in the (wide enough) type wide_T.
template <class wide_T, class value_T> wide_T asq_shift_right(value_T value, int shift) {
    #pragma HLS INLINE
    wide_T wide = value;
    if (shift >= 0) {
        wide = wide >> shift;
    } else {
        wide = wide << -shift;
    }
    return wide;
}

// xc[i] = m[i] * c for POST: the one product per input element, shared by every output (and patch).
template <typename CONFIG_T, unsigned N>
void asq_sqrt_half_products(typename CONFIG_T::code_t m[N], typename CONFIG_T::xc_t xc[N]) {
    #pragma HLS INLINE
    const typename CONFIG_T::sqrt_half_t c = CONFIG_T::sqrt_half;
    for (unsigned i = 0; i < N; i++) {
        #pragma HLS UNROLL
        if (CONFIG_T::sqrt2_levels)
            xc[i] = m[i] * c;
    }
}

// acc[j] = sum_i m[i] * w[i][j]: integer weights, one constant multiplication each (xc unused).
template <typename CONFIG_T>
void asq_accumulate(typename CONFIG_T::code_t m[CONFIG_T::n_in], typename CONFIG_T::xc_t xc[CONFIG_T::n_in],
                    typename CONFIG_T::accum_t acc[CONFIG_T::n_out],
                    typename CONFIG_T::weight_t w[CONFIG_T::n_in * CONFIG_T::n_out], asq_uniform_weights) {
    #pragma HLS INLINE
    for (unsigned j = 0; j < CONFIG_T::n_out; j++) {
        #pragma HLS UNROLL
        acc[j] = 0;
        for (unsigned i = 0; i < CONFIG_T::n_in; i++) {
            #pragma HLS UNROLL
            acc[j] += m[i] * w[i * CONFIG_T::n_out + j];
        }
    }
}

// acc[j] = sum_i m[i] * sigma * (c or 1) * 2^-e from the codes and their x*c products: shifts and adds only.
template <typename CONFIG_T>
void asq_accumulate(typename CONFIG_T::code_t m[CONFIG_T::n_in], typename CONFIG_T::xc_t xc[CONFIG_T::n_in],
                    typename CONFIG_T::accum_t acc[CONFIG_T::n_out],
                    typename CONFIG_T::weight_t w[CONFIG_T::n_in * CONFIG_T::n_out], asq_log_weights) {
    #pragma HLS INLINE
    for (unsigned j = 0; j < CONFIG_T::n_out; j++) {
        #pragma HLS UNROLL
        acc[j] = 0;
        for (unsigned i = 0; i < CONFIG_T::n_in; i++) {
            #pragma HLS UNROLL
            const int code = w[i * CONFIG_T::n_out + j];
            if (code == 0)
                continue;
            const unsigned level = (code < 0 ? -code : code) - 1;
            const bool odd = CONFIG_T::sqrt2_levels && (level & 1);
            const unsigned shift = CONFIG_T::sqrt2_levels ? (level >> 1) : level;
            typename CONFIG_T::term_t term;
            if (odd) {
                term = xc[i];
            } else {
                term = m[i];
            }
            term = term >> shift;
            if (code < 0) {
                acc[j] -= term;
            } else {
                acc[j] += term;
            }
        }
    }
}

// beta = clamp(sat(round(adapter(sum_i x[i])))) over all N input elements, adapter constants [a1.., d1.., a2.., d2].
template <class data_T, typename CONFIG_T, unsigned N>
typename CONFIG_T::beta_t asq_beta(data_T x[N], typename CONFIG_T::adapter_t adapter[]) {
    #pragma HLS INLINE
    typename CONFIG_T::sum_t total = 0;
    for (unsigned i = 0; i < N; i++) {
        #pragma HLS UNROLL
        total += (typename CONFIG_T::in_t)x[i];
    }
    typename CONFIG_T::z_t z;
    if (CONFIG_T::n_hidden == 0) {
        z = total * adapter[0] + adapter[1];
    } else {
        const unsigned h = CONFIG_T::n_hidden;
        z = adapter[3 * h];
        for (unsigned k = 0; k < h; k++) {
            #pragma HLS UNROLL
            typename CONFIG_T::hidden_t hidden = total * adapter[k] + adapter[h + k];
            if (hidden < 0)
                hidden = 0;
            z += hidden * adapter[2 * h + k];
        }
    }
    typename CONFIG_T::beta_t beta = z;
    const typename CONFIG_T::beta_t lowest = CONFIG_T::beta_min;
    if (beta < lowest)
        beta = lowest;
    return beta;
}

// LSQ codes: x rounded to the power-of-two step.
template <class data_T, typename CONFIG_T, unsigned N>
void asq_input_codes(data_T x[N], typename CONFIG_T::code_t m[N]) {
    #pragma HLS INLINE
    for (unsigned i = 0; i < N; i++) {
        #pragma HLS UNROLL
        m[i] = asq_shift_right<typename CONFIG_T::code_wide_t>((typename CONFIG_T::in_t)x[i], CONFIG_T::code_shift);
    }
}

// ASQ codes: x * r (r = 1/beta from the table) rounded to the power-of-two step.
template <class data_T, typename CONFIG_T, unsigned N>
void asq_input_codes(data_T x[N], typename CONFIG_T::code_t m[N], typename CONFIG_T::table_t r) {
    #pragma HLS INLINE
    for (unsigned i = 0; i < N; i++) {
        #pragma HLS UNROLL
        const typename CONFIG_T::product_t scaled = (typename CONFIG_T::in_t)x[i] * r;
        m[i] = asq_shift_right<typename CONFIG_T::code_wide_t>(scaled, CONFIG_T::code_shift);
    }
}

// 1/beta from the table indexed by beta's raw bits.
template <typename CONFIG_T>
typename CONFIG_T::table_t asq_reciprocal(typename CONFIG_T::beta_t beta, typename CONFIG_T::table_t table[]) {
    #pragma HLS INLINE
    return table[beta.range(CONFIG_T::beta_t::width - 1, 0).to_uint() - CONFIG_T::beta_min_code];
}

// The scale of LSQ outputs: 1 (no rescale product).
struct asq_no_rescale {};

// res = acc * 2^out_shift + bias (LSQ) ...
template <class res_T, typename CONFIG_T>
void asq_outputs(typename CONFIG_T::accum_t acc[CONFIG_T::n_out], res_T res[CONFIG_T::n_out],
                 typename CONFIG_T::bias_t b[CONFIG_T::n_out], asq_no_rescale) {
    #pragma HLS INLINE
    for (unsigned j = 0; j < CONFIG_T::n_out; j++) {
        #pragma HLS UNROLL
        res[j] = asq_shift_right<typename CONFIG_T::out_wide_t>(acc[j], -CONFIG_T::out_shift) + b[j];
    }
}

// ... or res = acc * beta * 2^out_shift + bias (ASQ: one rescale product per output).
template <class res_T, typename CONFIG_T>
void asq_outputs(typename CONFIG_T::accum_t acc[CONFIG_T::n_out], res_T res[CONFIG_T::n_out],
                 typename CONFIG_T::bias_t b[CONFIG_T::n_out], typename CONFIG_T::beta_t beta) {
    #pragma HLS INLINE
    for (unsigned j = 0; j < CONFIG_T::n_out; j++) {
        #pragma HLS UNROLL
        const typename CONFIG_T::rescaled_t rescaled = acc[j] * beta;
        res[j] = asq_shift_right<typename CONFIG_T::out_wide_t>(rescaled, -CONFIG_T::out_shift) + b[j];
    }
}

template <class data_T, class res_T, typename CONFIG_T>
void asq_post_dense(data_T x[CONFIG_T::n_in], res_T res[CONFIG_T::n_out],
                    typename CONFIG_T::weight_t w[CONFIG_T::n_in * CONFIG_T::n_out],
                    typename CONFIG_T::bias_t b[CONFIG_T::n_out]) {
    #pragma HLS INLINE
    typename CONFIG_T::code_t m[CONFIG_T::n_in];
    typename CONFIG_T::xc_t xc[CONFIG_T::n_in];
    typename CONFIG_T::accum_t acc[CONFIG_T::n_out];
    #pragma HLS ARRAY_PARTITION variable=m complete
    #pragma HLS ARRAY_PARTITION variable=xc complete
    #pragma HLS ARRAY_PARTITION variable=acc complete
    asq_input_codes<data_T, CONFIG_T, CONFIG_T::n_in>(x, m);
    asq_sqrt_half_products<CONFIG_T, CONFIG_T::n_in>(m, xc);
    asq_accumulate<CONFIG_T>(m, xc, acc, w, typename CONFIG_T::weight_kind());
    asq_outputs<res_T, CONFIG_T>(acc, res, b, asq_no_rescale());
}

template <class data_T, class res_T, typename CONFIG_T>
void asq_post_dense_adaptive(data_T x[CONFIG_T::n_in], res_T res[CONFIG_T::n_out],
                             typename CONFIG_T::weight_t w[CONFIG_T::n_in * CONFIG_T::n_out],
                             typename CONFIG_T::bias_t b[CONFIG_T::n_out], typename CONFIG_T::adapter_t adapter[],
                             typename CONFIG_T::table_t table[]) {
    #pragma HLS INLINE
    const typename CONFIG_T::beta_t beta = asq_beta<data_T, CONFIG_T, CONFIG_T::n_in>(x, adapter);
    typename CONFIG_T::code_t m[CONFIG_T::n_in];
    typename CONFIG_T::xc_t xc[CONFIG_T::n_in];
    typename CONFIG_T::accum_t acc[CONFIG_T::n_out];
    #pragma HLS ARRAY_PARTITION variable=m complete
    #pragma HLS ARRAY_PARTITION variable=xc complete
    #pragma HLS ARRAY_PARTITION variable=acc complete
    asq_input_codes<data_T, CONFIG_T, CONFIG_T::n_in>(x, m, asq_reciprocal<CONFIG_T>(beta, table));
    asq_sqrt_half_products<CONFIG_T, CONFIG_T::n_in>(m, xc);
    asq_accumulate<CONFIG_T>(m, xc, acc, w, typename CONFIG_T::weight_kind());
    asq_outputs<res_T, CONFIG_T>(acc, res, b, beta);
}

// Convolution: codes and x*c of every input element once, then per output position the patch's
// codes go through the dense accumulation (shifts and adds for POT/POST).
template <typename CONFIG_T>
void asq_patch(unsigned oh, unsigned ow, typename CONFIG_T::code_t m[], typename CONFIG_T::xc_t xc[],
               typename CONFIG_T::code_t m_patch[CONFIG_T::n_in], typename CONFIG_T::xc_t xc_patch[CONFIG_T::n_in]) {
    #pragma HLS INLINE
    for (unsigned fh = 0; fh < CONFIG_T::filt_height; fh++) {
        for (unsigned fw = 0; fw < CONFIG_T::filt_width; fw++) {
            for (unsigned c = 0; c < CONFIG_T::n_chan; c++) {
                #pragma HLS UNROLL
                const unsigned row = oh * CONFIG_T::stride_height + fh;
                const unsigned column = ow * CONFIG_T::stride_width + fw;
                const unsigned source = (row * CONFIG_T::in_width + column) * CONFIG_T::n_chan + c;
                const unsigned tap = (fh * CONFIG_T::filt_width + fw) * CONFIG_T::n_chan + c;
                m_patch[tap] = m[source];
                xc_patch[tap] = xc[source];
            }
        }
    }
}

// Every output position: gather its patch, accumulate, scale (asq_no_rescale or beta) and add the bias.
template <class res_T, typename CONFIG_T, class scale_T>
void asq_conv_positions(typename CONFIG_T::code_t m[], typename CONFIG_T::xc_t xc[],
                        res_T res[CONFIG_T::out_height * CONFIG_T::out_width * CONFIG_T::n_out],
                        typename CONFIG_T::weight_t w[CONFIG_T::n_in * CONFIG_T::n_out],
                        typename CONFIG_T::bias_t b[CONFIG_T::n_out], scale_T scale) {
    #pragma HLS INLINE
    for (unsigned oh = 0; oh < CONFIG_T::out_height; oh++) {
        for (unsigned ow = 0; ow < CONFIG_T::out_width; ow++) {
            #pragma HLS UNROLL
            typename CONFIG_T::code_t m_patch[CONFIG_T::n_in];
            typename CONFIG_T::xc_t xc_patch[CONFIG_T::n_in];
            typename CONFIG_T::accum_t acc[CONFIG_T::n_out];
            asq_patch<CONFIG_T>(oh, ow, m, xc, m_patch, xc_patch);
            asq_accumulate<CONFIG_T>(m_patch, xc_patch, acc, w, typename CONFIG_T::weight_kind());
            asq_outputs<res_T, CONFIG_T>(acc, res + (oh * CONFIG_T::out_width + ow) * CONFIG_T::n_out, b, scale);
        }
    }
}

template <class data_T, class res_T, typename CONFIG_T>
void asq_post_conv(data_T x[CONFIG_T::in_height * CONFIG_T::in_width * CONFIG_T::n_chan],
                   res_T res[CONFIG_T::out_height * CONFIG_T::out_width * CONFIG_T::n_out],
                   typename CONFIG_T::weight_t w[CONFIG_T::n_in * CONFIG_T::n_out],
                   typename CONFIG_T::bias_t b[CONFIG_T::n_out]) {
    #pragma HLS INLINE
    const unsigned n_elements = CONFIG_T::in_height * CONFIG_T::in_width * CONFIG_T::n_chan;
    typename CONFIG_T::code_t m[n_elements];
    typename CONFIG_T::xc_t xc[n_elements];
    #pragma HLS ARRAY_PARTITION variable=m complete
    #pragma HLS ARRAY_PARTITION variable=xc complete
    asq_input_codes<data_T, CONFIG_T, n_elements>(x, m);
    asq_sqrt_half_products<CONFIG_T, n_elements>(m, xc);
    asq_conv_positions<res_T, CONFIG_T>(m, xc, res, w, b, asq_no_rescale());
}

template <class data_T, class res_T, typename CONFIG_T>
void asq_post_conv_adaptive(data_T x[CONFIG_T::in_height * CONFIG_T::in_width * CONFIG_T::n_chan],
                            res_T res[CONFIG_T::out_height * CONFIG_T::out_width * CONFIG_T::n_out],
                            typename CONFIG_T::weight_t w[CONFIG_T::n_in * CONFIG_T::n_out],
                            typename CONFIG_T::bias_t b[CONFIG_T::n_out], typename CONFIG_T::adapter_t adapter[],
                            typename CONFIG_T::table_t table[]) {
    #pragma HLS INLINE
    const unsigned n_elements = CONFIG_T::in_height * CONFIG_T::in_width * CONFIG_T::n_chan;
    const typename CONFIG_T::beta_t beta = asq_beta<data_T, CONFIG_T, n_elements>(x, adapter);
    typename CONFIG_T::code_t m[n_elements];
    typename CONFIG_T::xc_t xc[n_elements];
    #pragma HLS ARRAY_PARTITION variable=m complete
    #pragma HLS ARRAY_PARTITION variable=xc complete
    asq_input_codes<data_T, CONFIG_T, n_elements>(x, m, asq_reciprocal<CONFIG_T>(beta, table));
    asq_sqrt_half_products<CONFIG_T, n_elements>(m, xc);
    asq_conv_positions<res_T, CONFIG_T>(m, xc, res, w, b, beta);
}

} // namespace nnet

#endif
