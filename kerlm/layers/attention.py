"""Multi-head attention written with `keras.ops` only (runs on any Keras backend)."""

import keras
from keras import ops

from kerlm.layers.position import apply_rotary


def dropout(inputs, layer, training=None):
    """Apply `layer` (a `keras.layers.Dropout`) to `inputs`, drawing its random numbers in float32.

    Same distribution and seed stream as `layer(inputs, training=training)`; but Keras draws
    the uniform numbers in the inputs' dtype, and under mixed precision bfloat16/float16
    random generation is ~2.5× slower on CPU than float32 (it was the largest non-matmul op
    of a `mixed_bfloat16` training step).

    Example:
    >>> import numpy as np
    >>> x = np.ones((2, 1000), "float32")
    >>> y = keras.ops.convert_to_numpy(dropout(x, keras.layers.Dropout(0.5), training=True))
    >>> sorted(set(y.ravel().tolist())), bool(0.4 < (y == 0).mean() < 0.6)
    ([0.0, 2.0], True)
    >>> dropout(x, keras.layers.Dropout(0.5)) is x  # inference: identity
    True
    """
    rate = layer.rate
    if not training or not rate:
        return inputs
    if rate >= 1.0:
        return ops.zeros_like(inputs)
    keep = keras.random.uniform(ops.shape(inputs), dtype="float32",
                                seed=layer.seed_generator) >= rate
    return ops.where(keep, inputs * ops.cast(1.0 / (1.0 - rate), inputs.dtype),
                     ops.zeros((), inputs.dtype))


def merge_padding_and_attention_mask(query_length, padding_mask=None, attention_mask=None,
                                     use_causal_mask=False, key_length=None, query_offset=None):
    """Combine masks into one boolean `[batch, query, key]` mask (True = may attend).

    `padding_mask` is `[batch, key]` (1 for real tokens), `attention_mask` is
    `[batch, query, key]`, and `use_causal_mask` forbids attending to later positions; the
    first query sits at position `query_offset` (default: the queries are the last
    `query_length` keys). Returns None when there is nothing to mask.

    Example:
    >>> m = merge_padding_and_attention_mask(1, use_causal_mask=True, key_length=4,
    ...                                      query_offset=1)
    >>> keras.ops.convert_to_numpy(m).astype(int).tolist()
    [[[1, 1, 0, 0]]]
    """
    mask = None
    if padding_mask is not None:
        mask = ops.expand_dims(ops.cast(padding_mask, "bool"), axis=1)
    if attention_mask is not None:
        attention_mask = ops.cast(attention_mask, "bool")
        mask = attention_mask if mask is None else ops.logical_and(mask, attention_mask)
    if use_causal_mask:
        key_length = query_length if key_length is None else key_length
        if query_offset is None:
            query_offset = key_length - query_length
        q = ops.arange(query_length)[:, None] + query_offset
        causal = ops.expand_dims(q >= ops.arange(key_length)[None, :], axis=0)
        mask = causal if mask is None else ops.logical_and(mask, causal)
    return mask


@keras.saving.register_keras_serializable(package="kerlm")
class MultiHeadAttention(keras.layers.Layer):
    """Scaled dot-product attention over `num_heads` heads, with a key/value cache.

    Self-attention uses one fused query/key/value projection; pass `key_value` for
    cross-attention. `num_key_value_heads < num_heads` gives grouped-query attention (1 is
    multi-query): each key/value head serves `num_heads / num_key_value_heads` query heads.
    `rotary_max_wavelength` applies RoPE to queries and keys; `attention_bias`
    (`[batch or 1, heads, query, key]`, e.g. T5's relative position bias) is added to the
    logits; `scale_scores=False` drops the `1/sqrt(key_dim)` factor (T5 folds it into the
    weights). Masks combine a `[batch, key]` padding mask, an optional `[batch, query, key]`
    attention mask and an optional causal mask. Softmax runs in float32 (safe under
    `mixed_bfloat16`).

    Incremental decoding: pass `cache` (`[batch, 2, max_length, kv_heads, key_dim]`, keys
    then values) and `cache_index` (position of the first query): the new keys/values are
    written at `cache_index`, queries attend to the cache causally, and the layer returns
    `(output, cache)`. With `cache` and no `cache_index` the cache is read-only (a
    cross-attention cache from `key_value_cache(encoder_output)`) and only `output` returns.

    Example:
    >>> import numpy as np
    >>> layer = MultiHeadAttention(num_heads=2, key_dim=4)
    >>> x = np.ones((1, 3, 8), "float32")
    >>> tuple(layer(x, padding_mask=np.array([[1, 1, 0]])).shape)
    (1, 3, 8)
    >>> cache = np.zeros((1, 2, 5, 2, 4), "float32")
    >>> out, cache = layer(x[:, :1], cache=cache, cache_index=0, use_causal_mask=True)
    >>> tuple(out.shape), tuple(cache.shape)
    ((1, 1, 8), (1, 2, 5, 2, 4))
    """

    def __init__(self, num_heads, key_dim, num_key_value_heads=None, dropout=0.0,
                 use_bias=True, scale_scores=True, rotary_max_wavelength=None,
                 kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.num_key_value_heads = num_key_value_heads or num_heads
        if num_heads % self.num_key_value_heads:
            raise ValueError(f"num_heads={num_heads} is not a multiple of "
                             f"num_key_value_heads={self.num_key_value_heads}")
        self.dropout = dropout
        self.use_bias = use_bias
        self.scale_scores = scale_scores
        self.rotary_max_wavelength = rotary_max_wavelength
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.supports_masking = False

    def _dense(self, equation, output_shape, bias_axes, name):
        return keras.layers.EinsumDense(
            equation, output_shape=output_shape, bias_axes=bias_axes if self.use_bias else None,
            kernel_initializer=self.kernel_initializer, dtype=self.dtype_policy, name=name)

    def build(self, query_shape, key_value_shape=None):
        hidden_dim = query_shape[-1]
        heads = (self.num_heads, self.key_dim)
        kv_heads = (self.num_key_value_heads, self.key_dim)
        self._fused = key_value_shape is None and self.num_key_value_heads == self.num_heads
        if self._fused:
            self.qkv_dense = self._dense("btd,dnhk->btnhk", (None, 3) + heads, "nhk", "qkv")
            self.qkv_dense.build(query_shape)
        else:
            self.query_dense = self._dense("btd,dhk->bthk", (None,) + heads, "hk", "query")
            self.query_dense.build(query_shape)
            self.kv_dense = self._dense("btd,dnhk->btnhk", (None, 2) + kv_heads, "nhk",
                                        "key_value")
            self.kv_dense.build(key_value_shape or query_shape)
        self.output_dense = self._dense("bthk,hkd->btd", (None, hidden_dim), "d",
                                        "attention_output")
        self.output_dense.build((None, None) + heads)
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        self.built = True

    def key_value_cache(self, key_value):
        """The read-only `[batch, 2, length, kv_heads, key_dim]` cache of a cross-attention."""
        return ops.transpose(self.kv_dense(key_value), (0, 2, 1, 3, 4))

    def _project(self, query, key_value):
        # `unstack` rather than `qkv[:, :, i]` slices: the gradient of three strided slices
        # is three zero-filled copies of the whole fused tensor plus their sum (≈ 15 % of a
        # training step on CPU); unstack's gradient is one stack.
        if self._fused:
            return ops.unstack(self.qkv_dense(query), 3, axis=2)
        k, v = ops.unstack(self.kv_dense(query if key_value is None else key_value), 2, axis=2)
        return self.query_dense(query), k, v

    def call(self, query, key_value=None, padding_mask=None, attention_mask=None,
             use_causal_mask=False, attention_bias=None, cache=None, cache_index=None,
             training=None):
        query_offset = None
        if cache is not None and cache_index is None:  # read-only cross-attention cache
            q = self.query_dense(query)
            k, v = cache[:, 0], cache[:, 1]
        else:
            q, k, v = self._project(query, key_value)
            if self.rotary_max_wavelength:
                start = 0 if cache_index is None else cache_index
                q = apply_rotary(q, start, self.rotary_max_wavelength)
                k = apply_rotary(k, start, self.rotary_max_wavelength)
            if cache is not None:
                new = ops.stack([k, v], axis=1)
                cache = ops.slice_update(cache, [0, 0, cache_index, 0, 0],
                                         ops.cast(new, cache.dtype))
                k, v = ops.cast(cache[:, 0], q.dtype), ops.cast(cache[:, 1], q.dtype)
                query_offset = cache_index
        mask = merge_padding_and_attention_mask(
            ops.shape(q)[1], padding_mask, attention_mask, use_causal_mask, ops.shape(k)[1],
            query_offset)
        output = self.output_dense(self.attend(q, k, v, mask, attention_bias, training))
        return output if cache_index is None else (output, cache)

    def attend(self, q, k, v, mask=None, attention_bias=None, training=None):
        """Attention of `[batch, q, heads, dim]` queries over `[batch, k, kv_heads, dim]` keys."""
        if q.shape[1] == 1:  # one query per sequence (cached decoding)
            return self._attend_one(q, k, v, mask, attention_bias, training)
        groups = self.num_heads // self.num_key_value_heads
        if groups > 1:
            k, v = ops.repeat(k, groups, axis=2), ops.repeat(v, groups, axis=2)
        if self.scale_scores:
            q = q * ops.cast(1.0 / self.key_dim ** 0.5, q.dtype)
        scores = ops.cast(ops.einsum("bqhd,bkhd->bhqk", q, k), "float32")
        if attention_bias is not None:
            scores = scores + ops.cast(attention_bias, "float32")
        if mask is not None:
            scores = ops.where(ops.expand_dims(mask, axis=1), scores, -1e9)
        # dropout on the float32 probabilities, then cast: cheaper than in bfloat16 on CPU
        weights = dropout(ops.softmax(scores, axis=-1), self.dropout_layer, training)
        return ops.einsum("bhqk,bkhd->bqhd", ops.cast(weights, v.dtype), v)

    def _attend_one(self, q, k, v, mask, attention_bias, training):
        """`attend` for one query per sequence, as broadcast products and sums over the keys.

        Keras' einsum lowering transposes the whole `[batch, keys, heads, dim]` key and value
        cache into head-major order before a tiny batched matmul; under XLA each product +
        sum here is one fused pass over the cache instead, and without XLA there are fewer
        ops. Greedy decoding (bench/decode_speed.py): batch 8, 256 tokens, XLA 7.1–8.8 →
        5.3–7.2 ms per step; batch 1, no XLA, 3.2–3.4 → 2.8 ms. Computed in float32.
        """
        batch, dtype = ops.shape(q)[0], q.dtype
        kv_heads, groups = self.num_key_value_heads, self.num_heads // self.num_key_value_heads
        q, k, v = (ops.cast(t, "float32") for t in (q, k, v))
        if self.scale_scores:
            q = q * (1.0 / self.key_dim ** 0.5)
        # query head i uses key/value head i // groups (as `ops.repeat` in `attend`)
        q = ops.reshape(q, (batch, 1, kv_heads, groups, self.key_dim))
        scores = ops.sum(q * ops.expand_dims(k, 3), axis=-1)  # [batch, keys, kv_heads, groups]
        scores = ops.reshape(scores, (batch, -1, self.num_heads))
        if attention_bias is not None:  # [batch or 1, heads, 1, keys]
            scores = scores + ops.transpose(ops.cast(attention_bias, "float32")[:, :, 0], (0, 2, 1))
        if mask is not None:  # [batch or 1, 1, keys]
            scores = ops.where(ops.transpose(mask, (0, 2, 1)), scores, -1e9)
        weights = dropout(ops.softmax(scores, axis=1), self.dropout_layer, training)
        weights = ops.reshape(weights, (batch, -1, kv_heads, groups, 1))
        out = ops.sum(weights * ops.expand_dims(v, 3), axis=1)  # [batch, kv_heads, groups, dim]
        return ops.cast(ops.reshape(out, (batch, 1, self.num_heads, self.key_dim)), dtype)

    def get_config(self):
        config = super().get_config()
        config.update(num_heads=self.num_heads, key_dim=self.key_dim,
                      num_key_value_heads=self.num_key_value_heads, dropout=self.dropout,
                      use_bias=self.use_bias, scale_scores=self.scale_scores,
                      rotary_max_wavelength=self.rotary_max_wavelength,
                      kernel_initializer=keras.initializers.serialize(self.kernel_initializer))
        return config
