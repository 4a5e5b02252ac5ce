"""Decoding: greedy, beam search, sampling and stop tokens, with and without the cache."""

import keras
import numpy as np
import pytest
from keras import ops

from kerlm.generation import BeamSearch
from kerlm.heads import CausalLM, Seq2SeqLM
from kerlm.models import DecoderBackbone, EncoderDecoderBackbone

VOCAB = 40


def _seq2seq(seed, num_layers, copy_attention=False):
    keras.utils.set_random_seed(seed)
    backbone = EncoderDecoderBackbone(vocabulary_size=VOCAB, num_layers=num_layers,
                                      hidden_dim=32, num_heads=4, intermediate_dim=64,
                                      dropout=0.0, max_sequence_length=64)
    return Seq2SeqLM(backbone, copy_attention=copy_attention)


@pytest.fixture(scope="module")
def seq2seq():
    return _seq2seq(3, num_layers=2)


@pytest.fixture(scope="module")
def seq2seq_copy():
    return _seq2seq(5, num_layers=1, copy_attention=True)


@pytest.fixture(scope="module")
def causal():
    keras.utils.set_random_seed(4)
    backbone = DecoderBackbone(vocabulary_size=VOCAB, num_layers=2, hidden_dim=32,
                               num_heads=4, intermediate_dim=64, dropout=0.0,
                               max_sequence_length=64)
    return CausalLM(backbone)


def sources(batch=3, length=7, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(4, VOCAB, (batch, length)).astype("int32")
    mask = np.ones_like(ids)
    mask[1, 4:] = 0  # a shorter source
    return {"encoder_token_ids": ids * mask, "encoder_padding_mask": mask}


def uncached_greedy(model, source, steps):
    """Greedy decoding by re-running the full model on the whole prefix at each step."""
    batch = source["encoder_token_ids"].shape[0]
    tokens = np.full((batch, 1), 2, "int32")
    for _ in range(steps):
        logits = model({**source, "decoder_token_ids": tokens,
                        "decoder_padding_mask": np.ones_like(tokens)})
        next_token = ops.convert_to_numpy(ops.argmax(logits[:, -1], axis=-1)).astype("int32")
        tokens = np.concatenate([tokens, next_token[:, None]], axis=1)
    return tokens


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("head", ["seq2seq", "seq2seq_copy"])
def test_seq2seq_cached_greedy_equals_uncached(head, jit_compile, request):
    model = request.getfixturevalue(head)
    source = sources()
    out = model.generate(source, max_length=12, start_token_id=2, jit_compile=jit_compile)
    np.testing.assert_array_equal(out["token_ids"], uncached_greedy(model, source, 11))
    assert out["padding_mask"].all()


def test_copy_attention_beam_search_scores_at_least_greedy(seq2seq_copy):
    """Beam search over the copy head's log-probabilities finds at least greedy's score."""
    source = sources(seed=4)
    greedy = seq2seq_copy.generate(source, max_length=8, start_token_id=2, jit_compile=False)
    beam = seq2seq_copy.generate(source, max_length=8, start_token_id=2, sampler="beam",
                                 beam_width=4, jit_compile=False)
    for out in (greedy, beam):
        assert out["token_ids"].shape == (3, 8)
    assert (sequence_log_prob(seq2seq_copy, source, beam["token_ids"], beam["padding_mask"])
            >= sequence_log_prob(seq2seq_copy, source, greedy["token_ids"],
                                 greedy["padding_mask"]) - 1e-4).all()


def test_causal_cached_greedy_equals_uncached(causal):
    prompt = np.array([[5, 6, 7], [8, 9, 10]], "int32")
    out = causal.generate(prompt, max_length=10, jit_compile=False)["token_ids"]
    tokens = prompt
    for _ in range(7):
        logits = causal({"token_ids": tokens, "padding_mask": np.ones_like(tokens)})
        next_token = ops.convert_to_numpy(ops.argmax(logits[:, -1], axis=-1)).astype("int32")
        tokens = np.concatenate([tokens, next_token[:, None]], axis=1)
    np.testing.assert_array_equal(out, tokens)


def test_beam_width_one_equals_greedy(seq2seq, causal):
    source = sources(seed=1)
    stop = int(uncached_greedy(seq2seq, source, 4)[0, 3])  # some sequence emits it
    greedy = seq2seq.generate(source, max_length=14, start_token_id=2, stop_token_ids=[stop],
                              jit_compile=False)
    beam = seq2seq.generate(source, max_length=14, start_token_id=2, stop_token_ids=[stop],
                            sampler="beam", beam_width=1, length_penalty=0.0,
                            jit_compile=False)
    np.testing.assert_array_equal(beam["token_ids"], greedy["token_ids"])
    np.testing.assert_array_equal(beam["padding_mask"], greedy["padding_mask"])
    prompt = {"token_ids": np.array([[5, 6, 7], [8, 9, 0]]),
              "padding_mask": np.array([[1, 1, 1], [1, 1, 0]])}
    np.testing.assert_array_equal(
        causal.generate(prompt, max_length=9, sampler="beam", beam_width=1,
                        jit_compile=False)["token_ids"],
        causal.generate(prompt, max_length=9, jit_compile=False)["token_ids"])


def sequence_log_prob(model, source, tokens, mask):
    logits = model({**source, "decoder_token_ids": tokens[:, :-1],
                    "decoder_padding_mask": np.ones_like(tokens[:, :-1])})
    log_probs = ops.convert_to_numpy(ops.log_softmax(logits, axis=-1))
    picked = np.take_along_axis(log_probs, tokens[:, 1:, None], axis=-1)[..., 0]
    return (picked * mask[:, 1:]).sum(axis=1)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_beam_search_scores_at_least_greedy(seq2seq, jit_compile):
    """Without stop tokens and length penalty, beam 4's best sequence is never less likely
    than greedy's here (the toy test below shows it finding a strictly likelier one)."""
    source = sources(seed=2)
    kwargs = dict(max_length=8, start_token_id=2, jit_compile=jit_compile)
    greedy = seq2seq.generate(source, **kwargs)["token_ids"]
    beam = seq2seq.generate(source, sampler="beam", beam_width=4, **kwargs)["token_ids"]
    ones = np.ones_like(greedy)
    beam_score = sequence_log_prob(seq2seq, source, beam, ones)
    greedy_score = sequence_log_prob(seq2seq, source, greedy, ones)
    assert np.all(beam_score >= greedy_score - 1e-4)


def toy_next(table):
    """A `next` whose log probabilities depend only on the previous token (a bigram table)."""
    table = np.log(np.asarray(table, "float32"))

    def next(prompt, cache, index):
        previous = ops.take(prompt, index - 1, axis=1)
        return ops.take(ops.convert_to_tensor(table), previous, axis=0), None, cache
    return next


def test_beam_search_finds_the_likelier_path_and_length_penalty_prefers_longer():
    # token 0 start; greedy picks 1 (0.6) then ends (token 3) only with 0.3;
    # 2 (0.4) ends with 0.9: beam finds 0 2 3 (0.36) over greedy's 0 1 ... paths.
    table = [[0.0, 0.6, 0.4, 0.0, 0.0],
             [0.0, 0.0, 0.0, 0.3, 0.7],
             [0.0, 0.0, 0.0, 0.9, 0.1],
             [1.0, 0.0, 0.0, 0.0, 0.0],
             [0.0, 0.0, 0.0, 0.5, 0.5]]
    table = np.maximum(np.asarray(table), 1e-9)
    prompt = np.zeros((1, 6), "int32")
    mask = np.array([[True] + [False] * 5])
    run = lambda sampler: ops.convert_to_numpy(sampler(  # noqa: E731
        toy_next(table), prompt=prompt, index=1, mask=mask, stop_token_ids=(3,)))
    assert run(BeamSearch(num_beams=2)).tolist() == [[0, 2, 3, 0, 0, 0]]
    # 0 1 4 3 has probability 0.21 (length 3) vs 0.36 (length 2), 0 1 4 4 3 0.105: a strong
    # length penalty (score / ((5 + length) / 6) ** alpha) prefers the longer ones
    longer = run(BeamSearch(num_beams=3, length_penalty=3.0))[0]
    assert longer[:3].tolist() == [0, 1, 4] and np.count_nonzero(longer) > 3


def first_positions(rows, token):
    """Per row, the first position after position 0 holding `token`, or None."""
    return [next((i for i in range(1, len(r)) if r[i] == token), None) for r in rows]


def test_generation_stops_per_sequence_at_the_end_token(seq2seq):
    source = sources(batch=3, seed=5)
    # different decoder prompts, so the rows' continuations differ
    source.update(decoder_token_ids=np.array([[2, 5], [2, 19], [2, 33]]),
                  decoder_padding_mask=np.ones((3, 2), "int32"))
    free = seq2seq.generate(source, max_length=12, start_token_id=2)["token_ids"]
    # a stop token that the sequences reach at different steps (or never)
    stop = next(t for t in np.unique(free[:, 2:])
                if len(set(first_positions(free[:, 1:], t))) > 1)
    out = seq2seq.generate(source, max_length=12, start_token_id=2, stop_token_ids=[stop])
    for row, ids, mask, end in zip(free, out["token_ids"], out["padding_mask"],
                                   first_positions(free[:, 1:], stop)):
        end = len(row) - 1 if end is None else end + 1
        np.testing.assert_array_equal(ids[:end + 1], row[:end + 1])  # same tokens until end
        assert mask[:end + 1].all() and not mask[end + 1:].any()
        assert (ids[end + 1:] == 0).all()
    assert len(set(out["padding_mask"].sum(axis=1).tolist())) > 1  # ended at different steps


@pytest.mark.parametrize("sampler,options", [("top_k", {"top_k": 5}),
                                             ("top_p", {"top_p": 0.9}),
                                             ("random", {"temperature": 1.5})])
def test_seeded_sampling_is_reproducible(seq2seq, sampler, options):
    source = sources(batch=4, seed=6)
    draw = lambda seed: seq2seq.generate(  # noqa: E731
        source, max_length=16, start_token_id=2, sampler=sampler, seed=seed,
        jit_compile=False, **options)["token_ids"]
    first = draw(7)
    np.testing.assert_array_equal(draw(7), first)  # same seed, same draws, call after call
    assert not np.array_equal(draw(8), first)


def test_temperature_zero_like_sampling_approaches_greedy(seq2seq):
    source = sources(seed=9)
    greedy = seq2seq.generate(source, max_length=10, start_token_id=2)["token_ids"]
    cold = seq2seq.generate(source, max_length=10, start_token_id=2, sampler="random",
                            temperature=1e-4, seed=1)["token_ids"]
    np.testing.assert_array_equal(cold, greedy)


@pytest.mark.parametrize("sampler", ["greedy", "beam"])
def test_generate_ids_in_a_tf_function_equals_generate(seq2seq, sampler):
    """The public graph-mode step (what exported SavedModels trace): prompts already padded
    to the output width, a one-token prefill, a stop token, the encoder inputs."""
    import tensorflow as tf

    source, width, stop = sources(), 10, 7
    prompt = np.zeros((3, width), "int32")
    prompt[:, 0] = 2
    model_sampler = seq2seq._sampler(sampler, {})

    @tf.function
    def decode(prompt, prompt_mask, encoder_ids, encoder_mask):
        return seq2seq.generate_ids(prompt, prompt_mask, model_sampler, (stop,),
                                    inputs={"encoder_token_ids": encoder_ids,
                                            "encoder_padding_mask": encoder_mask},
                                    prompt_length=1)

    token_ids, mask = decode(prompt, prompt != 0, source["encoder_token_ids"],
                             source["encoder_padding_mask"])
    expected = seq2seq.generate(source, max_length=width, start_token_id=2,
                                stop_token_ids=[stop], sampler=sampler, jit_compile=False)
    np.testing.assert_array_equal(np.where(mask, token_ids, 0), expected["token_ids"])
    np.testing.assert_array_equal(mask.numpy(), expected["padding_mask"])
