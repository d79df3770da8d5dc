// hgq_chip: softmax over the last axis with an exp table and an inverse table (hgq_chip.layers.HSoftmax).
//
// Per row of n_in elements x[j] (already cast to the input quantizer's type, data_T):
//   t[j] = max(x) - x[j]          (stable; exact in diff_t)   or t[j] = x[j]
//   e[j] = exp_table[min(raw bits of t[j], size - 1)]         entries filled by the Keras layer itself
//   s    = sum_j e[j]                                         exact in sum_t
//   q    = s                                                  cast to inv_in_t (the sum quantizer's rounding/overflow)
//   r    = inv_table[raw bits of q]
//   y[j] = e[j] * r                                           exact in product_t, then cast to res_T (output quantizer)
//
// Every type comes from hgq_chip's precision derivation (conversion/rules/softmax.py): the only
// roundings are the declared casts to inv_in_t and res_T, so the C simulation equals Keras bit for bit.
// A table is indexed by the raw bits of its index read as unsigned: for a signed index the
// non-negative values come first (the converter orders the entries the same way).

#ifndef NNET_HGQ_SOFTMAX_H_
#define NNET_HGQ_SOFTMAX_H_

#include "nnet_common.h"

namespace nnet {

struct hgq_softmax_config {
    static const unsigned n_in = 1;    // elements per row (the softmax axis)
    static const unsigned n_outer = 1; // rows
    static const bool stable = true;   // subtract the row maximum first
    static const unsigned exp_table_size = 2;
    static const unsigned inv_table_size = 2;
    typedef ap_ufixed<2, 2> diff_t, exp_table_t, sum_t, inv_in_t, inv_table_t, product_t;
};

// The raw bits of a fixed-point value as an unsigned table index.
template <class T> unsigned hgq_softmax_index(T value) {
    #pragma HLS INLINE
    return value.range(T::width - 1, 0).to_uint();
}

template <class data_T, class res_T, typename CONFIG_T>
void hgq_softmax(data_T data[CONFIG_T::n_outer * CONFIG_T::n_in], res_T res[CONFIG_T::n_outer * CONFIG_T::n_in],
                 typename CONFIG_T::exp_table_t exp_table[CONFIG_T::exp_table_size],
                 typename CONFIG_T::inv_table_t inv_table[CONFIG_T::inv_table_size]) {
    #pragma HLS INLINE
    for (unsigned row = 0; row < CONFIG_T::n_outer; row++) {
        #pragma HLS UNROLL
        const unsigned base = row * CONFIG_T::n_in;
        data_T top = data[base];
        if (CONFIG_T::stable) {
            for (unsigned j = 1; j < CONFIG_T::n_in; j++) {
                #pragma HLS UNROLL
                if (data[base + j] > top)
                    top = data[base + j];
            }
        }
        typename CONFIG_T::exp_table_t e[CONFIG_T::n_in];
        #pragma HLS ARRAY_PARTITION variable=e complete
        typename CONFIG_T::sum_t total = 0;
        for (unsigned j = 0; j < CONFIG_T::n_in; j++) {
            #pragma HLS UNROLL
            unsigned index;
            if (CONFIG_T::stable) {
                const typename CONFIG_T::diff_t t = top - data[base + j];
                index = hgq_softmax_index(t);
            } else {
                index = hgq_softmax_index(data[base + j]);
            }
            // A stable table stops where its entries become constant: a larger index reads the last one.
            if (index >= CONFIG_T::exp_table_size)
                index = CONFIG_T::exp_table_size - 1;
            e[j] = exp_table[index];
            total += e[j];
        }
        const typename CONFIG_T::inv_in_t quantized_sum = total;
        const typename CONFIG_T::inv_table_t r = inv_table[hgq_softmax_index(quantized_sum)];
        for (unsigned j = 0; j < CONFIG_T::n_in; j++) {
            #pragma HLS UNROLL
            const typename CONFIG_T::product_t product = e[j] * r;
            res[base + j] = product;
        }
    }
}

} // namespace nnet

#endif
