"""Loss masks cover exactly the policy's tokens in multi-turn trajectories, for every history window.

Run: pytest tests/test_context.py -q
"""

from __future__ import annotations

import pytest

from tinyzero.context import Turn, build_context, encode_observation, training_sequences
from tinyzero.models.tokenizer import CharTokenizer

TOK = CharTokenizer()


def make_turns() -> list[Turn]:
    """Four turns: observations with and without a trailing newline, actions with and without EOS."""
    return [
        Turn("P_O\n__G\n", TOK.encode("Right", eos=True)),
        Turn("_PO\n__G", TOK.encode("Down Right", eos=True)),
        Turn("__O\n_PG\n", TOK.encode("Rig")),  # cut at max_new_tokens: no EOS
        Turn("__O\n__P\n", TOK.encode("Up", eos=True)),
    ]


def masked(ids: list[int], mask: list[bool]) -> list[int]:
    return [i for i, m in zip(ids, mask, strict=True) if m]


def unmasked(ids: list[int], mask: list[bool]) -> list[int]:
    return [i for i, m in zip(ids, mask, strict=True) if not m]


def test_encode_observation_always_ends_in_newline() -> None:
    assert encode_observation(TOK, "ab") == TOK.encode("ab\n")
    assert encode_observation(TOK, "ab\n") == TOK.encode("ab\n")


def test_full_history_is_one_sequence_with_every_action_masked_once() -> None:
    turns = make_turns()
    seqs = training_sequences(TOK, turns, history=-1)
    assert len(seqs) == 1
    ids, mask = seqs[0]
    assert len(ids) == len(mask)
    assert ids[0] == TOK.bos_id and not mask[0]
    # masked tokens: exactly the concatenated actions (EOS included where emitted), in order
    assert masked(ids, mask) == [i for t in turns for i in t.action_ids]
    assert sum(mask) == sum(len(t.action_ids) for t in turns)
    # everything else: BOS and the observations, nothing more
    expected_obs = [TOK.bos_id] + [i for t in turns for i in encode_observation(TOK, t.observation)]
    assert unmasked(ids, mask) == expected_obs
    assert TOK.eos_id not in unmasked(ids, mask)
    # the layout is BOS obs_1 act_1 obs_2 act_2 ...
    layout = [TOK.bos_id]
    for t in turns:
        layout += encode_observation(TOK, t.observation) + t.action_ids
    assert ids == layout


@pytest.mark.parametrize("history", [0, 1, 2, 10])
def test_windowed_history_gives_one_sequence_per_turn_with_only_that_action_masked(history: int) -> None:
    turns = make_turns()
    seqs = training_sequences(TOK, turns, history=history)
    assert len(seqs) == len(turns)
    for t, (ids, mask) in enumerate(seqs):
        assert len(ids) == len(mask)
        # only this turn's action is trained, and it is the sequence's tail
        assert masked(ids, mask) == turns[t].action_ids
        n = len(turns[t].action_ids)
        assert all(mask[-n:]) and not any(mask[:-n])
        # the context window: BOS, the last min(history, t) turns in full, then this turn's observation
        window = turns[max(0, t - history) : t]
        ctx = [TOK.bos_id]
        for w in window:
            ctx += encode_observation(TOK, w.observation) + w.action_ids
        ctx += encode_observation(TOK, turns[t].observation)
        assert ids[: len(ids) - n] == ctx
        assert ids[: len(ids) - n] == build_context(TOK, turns[:t], turns[t].observation, history)
    # across all sequences every action is masked exactly once
    assert [i for ids, mask in seqs for i in masked(ids, mask)] == [i for t in turns for i in t.action_ids]


def test_markov_context_shows_only_the_current_observation() -> None:
    turns = make_turns()
    for t, (ids, _) in enumerate(training_sequences(TOK, turns, history=0)):
        assert ids == [TOK.bos_id] + encode_observation(TOK, turns[t].observation) + turns[t].action_ids


def test_build_context_is_a_prefix_of_the_full_sequence() -> None:
    """What the policy saw before turn t, followed by its action, is exactly the trained sequence's prefix."""
    turns = make_turns()
    ((full, full_mask),) = training_sequences(TOK, turns, history=-1)
    for t in range(len(turns)):
        ctx = build_context(TOK, turns[:t], turns[t].observation, history=-1)
        prefix = ctx + turns[t].action_ids
        assert full[: len(prefix)] == prefix
        # the action's tokens are the masked ones at exactly those positions
        assert full_mask[len(ctx) : len(prefix)] == [True] * len(turns[t].action_ids)
        if t + 1 < len(turns):  # and the next observation starts right after it, unmasked
            nxt = encode_observation(TOK, turns[t + 1].observation)
            assert full[len(prefix) : len(prefix) + len(nxt)] == nxt
            assert not any(full_mask[len(prefix) : len(prefix) + len(nxt)])
    last = build_context(TOK, turns[:-1], turns[-1].observation, history=-1) + turns[-1].action_ids
    assert last == full


def test_single_turn_is_the_same_for_every_history() -> None:
    turns = [Turn("12*34=\n", TOK.encode("<answer>408</answer>", eos=True))]
    ref = training_sequences(TOK, turns, history=-1)
    for history in (0, 1, 3):
        assert training_sequences(TOK, turns, history=history) == ref


def test_empty_action_masks_nothing_but_keeps_the_observation() -> None:
    turns = [Turn("a\n", []), Turn("b\n", TOK.encode("x", eos=True))]
    ((ids, mask),) = training_sequences(TOK, turns, history=-1)
    assert masked(ids, mask) == TOK.encode("x", eos=True)
    assert ids == [TOK.bos_id] + TOK.encode("a\nb\nx", eos=True)


@pytest.mark.parametrize("history", [-1, 0, 1, 10])
def test_a_turn_not_learned_leaves_the_loss_but_stays_in_later_contexts(history: int) -> None:
    """`learn` flags (the corpus's thinned turns): turn 1's action is in no loss mask, every other
    action is masked exactly once, and later turns still see turn 1 in their window."""
    turns = make_turns()
    seqs = training_sequences(TOK, turns, history, learn=[True, False, True, True])
    learned = [i for ids, mask in seqs for i in masked(ids, mask)]
    assert learned == turns[0].action_ids + turns[2].action_ids + turns[3].action_ids
    layout = [TOK.bos_id]
    for t in turns:
        layout += encode_observation(TOK, t.observation) + t.action_ids
    if history < 0:
        assert [ids for ids, _ in seqs] == [layout]  # the whole episode, turn 1 included
    else:
        assert len(seqs) == 3  # turn 1 has no sequence of its own
        for (ids, _), t in zip(seqs, (0, 2, 3), strict=True):
            assert ids == build_context(TOK, turns[:t], turns[t].observation, history) + turns[t].action_ids
        seen_by_turn_2, act_1 = seqs[1][0], turns[1].action_ids
        windows = [seen_by_turn_2[i : i + len(act_1)] for i in range(len(seen_by_turn_2))]
        assert (act_1 in windows) == (history >= 1)
