"""What the policy sees before each turn: the token-level context of a (multi-turn) episode.

A trajectory is one token sequence, RAGEN-style::

    BOS  obs_1  act_1 EOS  obs_2  act_2 EOS  ...  obs_T  act_T EOS

The agent's tokens (``act_t EOS``) are the only ones trained; observations are masked out. The EOS
that ends an action doubles as the end-of-turn marker, so the context of turn t is literally the
sequence the model has produced so far, with no re-tokenization drift.

``history`` sets how many previous turns stay in the context: -1 keeps the whole episode (one
sequence per trajectory), 0 shows only the current observation (a Markov context, which the early
probes in docs/results.md found learns to read the FrozenLake map far better at this scale), k keeps
the last k turns.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tinyzero.models.tokenizer import CharTokenizer


def encode_observation(tok: CharTokenizer, observation: str) -> list[int]:
    """Observation text, always ending in a newline so the action starts on a fresh line."""
    if not observation.endswith("\n"):
        observation += "\n"
    return tok.encode(observation)


@dataclass
class Turn:
    """One turn: the observation shown and the action ids the policy wrote (EOS included if emitted)."""

    observation: str
    action_ids: list[int]


def build_context(tok: CharTokenizer, past: list[Turn], observation: str, history: int) -> list[int]:
    """Token ids of the prompt for the next action, given the earlier turns of the episode."""
    kept = past if history < 0 else past[len(past) - history :] if history > 0 else []
    ids = [tok.bos_id]
    for turn in kept:
        ids += encode_observation(tok, turn.observation) + turn.action_ids
    return ids + encode_observation(tok, observation)


def training_sequences(
    tok: CharTokenizer, turns: list[Turn], history: int, learn: list[bool] | None = None
) -> list[tuple[list[int], list[bool]]]:
    """The (ids, loss_mask) sequences whose masked tokens are exactly the policy's tokens, each once.

    history == -1: one sequence for the whole trajectory, every action masked in.
    otherwise: one sequence per turn (its own window of context), only that turn's action masked in.
    ``learn`` (one flag per turn, default all True) leaves a turn's action out of the loss while it
    stays in the context of later turns; a per-turn sequence with nothing to learn is not returned.
    """
    learn = [True] * len(turns) if learn is None else learn
    if history < 0:
        ids, mask = [tok.bos_id], [False]
        for turn, learned in zip(turns, learn, strict=True):
            obs = encode_observation(tok, turn.observation)
            ids += obs + turn.action_ids
            mask += [False] * len(obs) + [learned] * len(turn.action_ids)
        return [(ids, mask)]
    out = []
    for t, (turn, learned) in enumerate(zip(turns, learn, strict=True)):
        if learned:
            ctx = build_context(tok, turns[:t], turn.observation, history)
            out.append((ctx + turn.action_ids, [False] * len(ctx) + [True] * len(turn.action_ids)))
    return out


def pad_batch(seqs: list[tuple[list[int], list[bool]]], pad_id: int) -> tuple[torch.Tensor, ...]:
    """Right-pad (ids, mask) pairs into (input_ids, attention_mask, loss_mask) tensors."""
    width = max(len(ids) for ids, _ in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(seqs), width), dtype=torch.bool)
    loss = torch.zeros((len(seqs), width), dtype=torch.bool)
    for row, (s, m) in enumerate(seqs):
        ids[row, : len(s)] = torch.tensor(s)
        attn[row, : len(s)] = True
        loss[row, : len(m)] = torch.tensor(m)
    return ids, attn, loss
