"""Training log-probs are over exactly the generated tokens: make_batch + trajectory_logprobs on real
multi-turn FrozenLake episodes reproduce the log-probs recorded while sampling.

Run: pytest tests/test_rollout_batch.py -q
"""

from __future__ import annotations

import pytest
import torch

from tinyzero.algorithms.common import make_batch, trajectory_logprobs
from tinyzero.config import TaskConfig
from tinyzero.environments import make_task
from tinyzero.models.io import build_model
from tinyzero.models.tokenizer import CharTokenizer
from tinyzero.rollout import SamplingSettings, run_episodes

TOK = CharTokenizer()


@pytest.fixture(scope="module")
def setup() -> tuple:
    torch.set_num_threads(1)  # tiny matrices: one thread is fastest, and immune to a busy machine
    torch.manual_seed(0)
    model = build_model("nano", TOK.vocab_size, max_seq_len=96).eval()
    with torch.no_grad():  # make EOS likely, so some actions end with it and others are cut off
        model.tok_emb.weight[TOK.eos_id] = 2.0 * model.tok_emb.weight[TOK.eos_id] + 0.02
    task = make_task(TaskConfig(name="frozenlake", num_train=6, num_test=2, max_turns=3))
    return model, task


@pytest.mark.parametrize("history", [-1, 0, 1])
def test_trajectory_logprobs_equal_the_sampling_logprobs(setup: tuple, history: int) -> None:
    model, task = setup
    problems = [p for p in task.problems("train") for _ in range(3)]
    gen = torch.Generator().manual_seed(1234)
    episodes = run_episodes(
        model, TOK, task, problems, SamplingSettings(max_new_tokens=6, history=history), gen
    )

    # The test is only meaningful if it covers multi-turn episodes, EOS-terminated and cut-off actions.
    assert max(len(e.turns) for e in episodes) >= 2
    actions = [t.action_ids for e in episodes for t in e.turns]
    assert any(a and a[-1] == TOK.eos_id for a in actions)
    assert any(TOK.eos_id not in a for a in actions)

    batch = make_batch(TOK, episodes, history, "cpu")
    assert batch.num_traj == len(episodes)
    # one sequence per trajectory with the full history, one per turn otherwise
    expected_rows = len(episodes) if history < 0 else sum(len(e.turns) for e in episodes)
    assert batch.ids.shape[0] == expected_rows
    # the masked tokens are exactly the generated ones, trajectory by trajectory
    for n, ep in enumerate(episodes):
        rows = (batch.traj == n).nonzero().flatten()
        got = torch.cat([batch.ids[r][batch.mask[r]] for r in rows]).tolist()
        assert got == [i for t in ep.turns for i in t.action_ids]
    assert not (batch.mask & ~batch.attn).any()

    with torch.no_grad():
        lp = trajectory_logprobs(model, batch)
    recorded = torch.tensor([e.sample_logprob for e in episodes])
    assert lp.traj.shape == (len(episodes),)
    torch.testing.assert_close(lp.traj, recorded, atol=1e-4, rtol=0)
    # token log-probs are zero outside the mask and negative on it
    assert (lp.token[~batch.mask] == 0).all()
    assert (lp.token[batch.mask] < 0).all()


def test_history_changes_the_context_but_not_the_tokens_trained(setup: tuple) -> None:
    """Same episodes, different history windows: same masked tokens, different log-probs (more context)."""
    model, task = setup
    problems = task.problems("train")[:4]
    episodes = run_episodes(
        model,
        TOK,
        task,
        problems,
        SamplingSettings(max_new_tokens=6, history=-1),
        torch.Generator().manual_seed(5),
    )
    full = make_batch(TOK, episodes, -1, "cpu")
    markov = make_batch(TOK, episodes, 0, "cpu")
    assert int(full.mask.sum()) == int(markov.mask.sum()) == sum(e.num_action_tokens for e in episodes)
    with torch.no_grad():
        same = trajectory_logprobs(model, full).traj
        shorter = trajectory_logprobs(model, markov).traj
    torch.testing.assert_close(same, torch.tensor([e.sample_logprob for e in episodes]), atol=1e-4, rtol=0)
    multi = torch.tensor([len(e.turns) > 1 for e in episodes])
    assert multi.any()
    torch.testing.assert_close(shorter[~multi], same[~multi])  # one turn: the same context either way
    assert not torch.allclose(shorter[multi], same[multi])
