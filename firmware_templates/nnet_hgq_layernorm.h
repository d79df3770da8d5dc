// hgq_chip: layer normalization over the last axis (hgq_chip.layers.HLayerNormalization).
//
// Per row of n_in elements x[j] (already cast to the input quantizer's type, data_T):
//   s    = sum_j x[j]                         exact in sum_t
//   m    = s * factor                         exact in mean_t (factor: the quantized 1/n, factor_t)
//   d[j] = x[j] - m                           exact in centered_t, then cast to diff_t (diff_q)
//   q    = sum_j d[j] * d[j]                  exact in sq_sum_t
//   v    = q                                  cast to var_t (var_q: n x the variance)
//   r    = rsqrt_table[raw bits of v]         entries rsqrt_q(1/sqrt(factor * v + eps)), filled by the Keras layer
//   z[j] = d[j] * r                           exact in norm_prod_t, then cast to norm_t (norm_q)
//   y[j] = z[j] * gamma[j] + beta[j]          exact in affine_t, then cast to res_T (output quantizer)
//
// Every type comes from hgq_chip's precision derivation (conversion/rules/layernorm.py): the only
// roundings are the declared casts to diff_t, var_t, norm_t and res_T, so the C simulation equals
// Keras bit for bit. The table is indexed by the raw bits of v read as unsigned.

#ifndef NNET_HGQ_LAYERNORM_H_
#define NNET_HGQ_LAYERNORM_H_

#include "nnet_common.h"

namespace nnet {

struct hgq_layernorm_config {
    static const unsigned n_in = 1;    // elements per row (the normalized axis)
    static const unsigned n_outer = 1; // rows
    static const bool scale = true;    // multiply by gamma
    static const bool center = true;   // add beta
    static const unsigned table_size = 2;
    typedef ap_ufixed<2, 2> sum_t, factor_t, mean_t, centered_t, diff_t, sq_sum_t, var_t;
    typedef ap_ufixed<2, 2> rsqrt_table_t, norm_prod_t, norm_t, gamma_t, beta_t, affine_t;
    static const unsigned long long factor_raw = 1; // the raw bits of factor in factor_t
};

template <class data_T, class res_T, typename CONFIG_T>
void hgq_layernorm(data_T data[CONFIG_T::n_outer * CONFIG_T::n_in], res_T res[CONFIG_T::n_outer * CONFIG_T::n_in],
                   typename CONFIG_T::rsqrt_table_t rsqrt_table[CONFIG_T::table_size],
                   typename CONFIG_T::gamma_t gamma[CONFIG_T::n_in], typename CONFIG_T::beta_t beta[CONFIG_T::n_in]) {
    #pragma HLS INLINE
    typename CONFIG_T::factor_t factor;
    factor.range(CONFIG_T::factor_t::width - 1, 0) = CONFIG_T::factor_raw;
    for (unsigned row = 0; row < CONFIG_T::n_outer; row++) {
        #pragma HLS UNROLL
        const unsigned base = row * CONFIG_T::n_in;
        typename CONFIG_T::sum_t total = 0;
        for (unsigned j = 0; j < CONFIG_T::n_in; j++) {
            #pragma HLS UNROLL
            total += data[base + j];
        }
        const typename CONFIG_T::mean_t mean = total * factor;
        typename CONFIG_T::diff_t d[CONFIG_T::n_in];
        #pragma HLS ARRAY_PARTITION variable=d complete
        typename CONFIG_T::sq_sum_t squares = 0;
        for (unsigned j = 0; j < CONFIG_T::n_in; j++) {
            #pragma HLS UNROLL
            const typename CONFIG_T::centered_t centered = data[base + j] - mean;
            d[j] = centered;
            squares += d[j] * d[j];
        }
        const typename CONFIG_T::var_t v = squares;
        const typename CONFIG_T::rsqrt_table_t r = rsqrt_table[v.range(CONFIG_T::var_t::width - 1, 0).to_uint()];
        for (unsigned j = 0; j < CONFIG_T::n_in; j++) {
            #pragma HLS UNROLL
            const typename CONFIG_T::norm_prod_t product = d[j] * r;
            const typename CONFIG_T::norm_t z = product;
            typename CONFIG_T::affine_t y = z;
            if (CONFIG_T::scale)
                y = z * gamma[j];
            if (CONFIG_T::center)
                y += beta[j];
            res[base + j] = y;
        }
    }
}

} // namespace nnet

#endif
