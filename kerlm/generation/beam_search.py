"""Beam search with length penalty, a set of finished hypotheses and early stopping.

Why not `keras_hub.samplers.BeamSampler`: it ranks beams by their raw summed log
probability, has no length penalty, and keeps ended beams competing with live ones (so a
short hypothesis that ended early blocks longer, better ones); it also reorders the whole
cache tree each step. This one follows Tensor2Tensor / GNMT: live beams are ranked by log
probability, ended hypotheses go to a separate top-`num_beams` set ranked by
`log_prob / ((5 + length) / 6) ** length_penalty`, and a sequence stops when that set is
full and (with `early_stopping=False`) no live beam can still beat its worst member.
It keeps keras-hub's sampler protocol (`next(prompt, cache, index)`), so the models'
generation code is the same for every sampler.
"""

import keras
import keras_hub
from keras import ops, tree

NEG_INF = -1e9


class BeamSearch(keras_hub.samplers.Sampler):
    """Beam search over `num_beams` hypotheses; returns the best sequence per prompt.

    The caller's `next`, `prompt`, `cache` and `mask` have batch `b`; they are expanded to
    `b * num_beams` rows here (row `i * num_beams + j` is beam `j` of prompt `i`). Anything
    `next` reads besides its arguments (e.g. an encoder's keys and values) must be expanded
    the same way by the caller, e.g. with `ops.repeat(x, num_beams, axis=0)`.

    Example:
    >>> import numpy as np
    >>> def next(prompt, cache, index):  # a fixed distribution: token 3 then end token 1
    ...     logits = np.where(np.arange(5) == (1 if index >= 3 else 3), 5.0, 0.0)
    ...     return ops.tile(logits[None].astype("float32"), (prompt.shape[0], 1)), None, cache
    >>> out = BeamSearch(num_beams=2)(next, prompt=np.zeros((1, 6), "int32"), index=1,
    ...                               mask=np.array([[True] + [False] * 5]),
    ...                               stop_token_ids=(1,))
    >>> ops.convert_to_numpy(out).tolist()
    [[0, 3, 3, 1, 0, 0]]
    """

    def __init__(self, num_beams=4, length_penalty=0.0, early_stopping=False, **kwargs):
        super().__init__(**kwargs)
        if num_beams < 1:
            raise ValueError(f"num_beams must be >= 1, got {num_beams}")
        self.num_beams = num_beams
        self.length_penalty = length_penalty
        self.early_stopping = early_stopping

    def _penalty(self, length):
        """GNMT's length penalty `((5 + length) / 6) ** alpha`."""
        return ops.power((5.0 + ops.cast(length, "float32")) / 6.0, self.length_penalty)

    def __call__(self, next, prompt, cache=None, index=0, mask=None, stop_token_ids=None,
                 hidden_states=None, model=None, **kwargs):
        k = self.num_beams
        batch_size, max_length = ops.shape(prompt)[0], ops.shape(prompt)[1]
        index = ops.cast(index, "int32")
        mask = (ops.zeros_like(prompt, dtype="bool") if mask is None
                else ops.cast(mask, "bool"))
        prompt_lengths = ops.sum(ops.cast(mask, "int32"), axis=1)  # [b]
        stop_token_ids = tuple(stop_token_ids or ())
        expand = lambda x: ops.repeat(x, k, axis=0)  # noqa: E731
        flat_mask = expand(mask)
        cache = tree.map_structure(expand, () if cache is None else cache)
        positions = ops.arange(max_length, dtype="int32")

        alive_seq = ops.reshape(expand(prompt), (batch_size, k, max_length))
        # only beam 0 is live at first, so the first step does not pick k copies of one token
        alive_score = ops.tile(ops.convert_to_tensor([[0.0] + [NEG_INF] * (k - 1)]),
                               (batch_size, 1))
        finished_seq = alive_seq
        finished_score = ops.full((batch_size, k), NEG_INF)
        finished_flag = ops.zeros((batch_size, k), dtype="bool")
        done = ops.zeros((batch_size,), dtype="bool")

        def gather(x, indices):  # x [b, n, ...], indices [b, m] -> [b, m, ...]
            extra = len(x.shape) - 2
            idx = ops.reshape(indices, tuple(ops.shape(indices)) + (1,) * extra)
            return ops.take_along_axis(x, idx, axis=1)

        def cond(alive_seq, alive_score, finished_seq, finished_score, finished_flag, done,
                 cache, index):
            return ops.logical_not(ops.all(done))

        def body(alive_seq, alive_score, finished_seq, finished_score, finished_flag, done,
                 cache, index):
            logits, _, cache = next(ops.reshape(alive_seq, (-1, max_length)), cache, index)
            log_probs = ops.log_softmax(ops.cast(logits, "float32") / self.temperature, axis=-1)
            vocabulary_size = ops.shape(log_probs)[-1]
            # Positions still inside a (longer) prompt take the prompt's token at no cost.
            forced = flat_mask[:, index]
            prompt_token = ops.reshape(alive_seq, (-1, max_length))[:, index]
            one_hot = ops.equal(ops.arange(vocabulary_size, dtype="int32")[None],
                                ops.cast(prompt_token, "int32")[:, None])
            log_probs = ops.where(forced[:, None], ops.where(one_hot, 0.0, NEG_INF), log_probs)

            scores = alive_score[:, :, None] + ops.reshape(log_probs, (batch_size, k, -1))
            scores = ops.reshape(scores, (batch_size, -1))
            top_scores, top_ids = ops.top_k(scores, 2 * k)  # 2k: enough for k that go on
            source_beam = top_ids // vocabulary_size
            token = ops.cast(top_ids % vocabulary_size, alive_seq.dtype)
            candidates = gather(alive_seq, source_beam)
            candidates = ops.where(ops.equal(positions, index)[None, None],
                                   token[:, :, None], candidates)
            is_end = ops.zeros_like(token, dtype="bool")
            for stop in stop_token_ids:
                is_end = ops.logical_or(is_end, ops.equal(token, stop))
            in_prompt = ops.reshape(gather(ops.reshape(flat_mask, (batch_size, k, -1))[:, :, index],
                                           source_beam), (batch_size, 2 * k))
            is_end = ops.logical_and(ops.logical_and(is_end, ops.logical_not(in_prompt)),
                                     top_scores > NEG_INF / 2)

            # Live beams: the best k candidates that did not end.
            alive_score, pick = ops.top_k(ops.where(is_end, NEG_INF, top_scores), k)
            alive_seq = gather(candidates, pick)
            rows = ops.arange(batch_size, dtype="int32")[:, None] * k
            reorder = ops.reshape(rows + ops.cast(gather(source_beam, pick), "int32"), (-1,))
            cache = tree.map_structure(lambda c: ops.take(c, reorder, axis=0), cache)

            # Ended hypotheses join the finished set, scored with the length penalty.
            length = index + 1 - prompt_lengths  # generated tokens, end token included
            end_score = top_scores / self._penalty(length)[:, None]
            merged_score = ops.concatenate(
                [finished_score, ops.where(is_end, end_score, NEG_INF)], axis=1)
            merged_flag = ops.concatenate([finished_flag, is_end], axis=1)
            merged_seq = ops.concatenate([finished_seq, candidates], axis=1)
            new_score, best = ops.top_k(merged_score, k)
            keep = done[:, None]  # a sequence that is done keeps its finished set
            finished_score = ops.where(keep, finished_score, new_score)
            finished_flag = ops.where(keep, finished_flag, gather(merged_flag, best))
            finished_seq = ops.where(keep[:, :, None], finished_seq, gather(merged_seq, best))

            # Done: k finished hypotheses, and (unless early_stopping) no live beam can win.
            full = ops.all(finished_flag, axis=1)
            if not self.early_stopping:
                max_new = max_length - prompt_lengths
                bound = ops.maximum(alive_score[:, 0] / self._penalty(max_new),
                                    alive_score[:, 0] / self._penalty(length))
                full = ops.logical_and(full, finished_score[:, k - 1] >= bound)
            index = index + 1
            done = ops.logical_or(done, full) if stop_token_ids else done
            done = ops.logical_or(done, ops.greater_equal(index, max_length))
            return (alive_seq, alive_score, finished_seq, finished_score, finished_flag, done,
                    cache, index)

        state = self.run_loop(cond, body, model=model,
                              loop_vars=(alive_seq, alive_score, finished_seq, finished_score,
                                         finished_flag, done, cache, index),
                              maximum_iterations=max_length - index)
        alive_seq, _, finished_seq, _, finished_flag, *_ = state
        # A prompt with no finished hypothesis (max_length reached) returns its best live beam.
        return ops.where(finished_flag[:, 0, None], finished_seq[:, 0], alive_seq[:, 0])

    def get_config(self):
        config = super().get_config()
        config.update(num_beams=self.num_beams, length_penalty=self.length_penalty,
                      early_stopping=self.early_stopping)
        return config


keras.saving.register_keras_serializable(package="kerlm")(BeamSearch)
