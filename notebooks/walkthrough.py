# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # TinyZero-AStarPO, step by step
#
# A tiny character-level transformer learns to cross FrozenLake maps it has never seen, with
# reinforcement learning and nothing but a checkable reward. This notebook runs every piece of the
# pipeline on real data, in order:
#
# 1. the task and its text environment;
# 2. the base model π_ref and how it fails;
# 3. V\*, the optimal value, estimated by hand from reference samples and compared with the library;
# 4. one A\*PO update, with every term of its loss printed;
# 5. a short training run and its learning curves;
# 6. RAGEN's multi-turn loop: how one episode becomes one token sequence with a mask;
# 7. where to go next.
#
# **Opening it.** This file is the notebook in jupytext's "percent" format (the text form kept in
# git). Either convert it, `jupytext --to ipynb notebooks/walkthrough.py`, and open
# `notebooks/walkthrough.ipynb` in Jupyter or VS Code; or, with jupytext installed in your Jupyter
# (`pip install jupytext jupyterlab`), open the `.py` file itself as a notebook (JupyterLab: right-click,
# *Open With → Notebook*). The tools that run it are the `notebook` extra:
# `.venv/bin/pip install -e ".[notebook]"` (`install.sh` installs them with the dev tools). Without
# Jupyter, `.venv/bin/python notebooks/walkthrough.py` runs it top to bottom as a script (figures are
# written to files). `docs/walkthrough.md` says more, and how to build the slide deck.
#
# **Budget.** Both budgets run `configs/default.yaml`'s recipe (the README's job). `BUDGET = "smoke"`
# (below) shrinks it to `configs/smoke.yaml`'s sizes: the `nano` model pre-trained for 150 steps, 64
# training maps, 3 RL iterations; well under a minute on one CPU thread. It shows every mechanism, but
# its base model is too weak for RL to achieve much. `BUDGET = "full"` keeps `default.yaml`'s sizes:
# the `nano` base model (1–3 minutes to pre-train, once; then cached, and shared with `train.py`),
# stage 1 over 2,000 training maps (under a minute, cached too) and 50 RL iterations (a few minutes).

# %% tags=["parameters"]
BUDGET = "smoke"  # "smoke" (under a minute) or "full" (configs/default.yaml's model and base: minutes)
CACHE_DIR = None  # base models and V* tables; None: the repository's .cache/base_models, as train.py
OUT_DIR = None  # where this notebook's runs and figures go; None: a fresh temporary directory

# %%
import math
import sys
import tempfile
from collections import Counter
from pathlib import Path

import torch
from IPython.display import Image, display
from matplotlib.figure import Figure

# The repository root: this notebook runs from notebooks/ (Jupyter) or from the root (a script).
ROOT = next(p for p in (Path.cwd(), *Path.cwd().parents) if (p / "configs" / "default.yaml").is_file())
sys.path.insert(0, str(ROOT))  # for train.py's compute_reward, the reward hook the README tells you to edit

from tinyzero import evaluation as E
from tinyzero.algorithms import astarpo, get_algorithm
from tinyzero.algorithms.common import LogProbs, make_batch, masked_mean, token_kl, trajectory_logprobs
from tinyzero.algorithms.interface import Forward
from tinyzero.config import load_config
from tinyzero.context import Turn, training_sequences
from tinyzero.environments import make_task
from tinyzero.environments.frozenlake_env import ACTION_NAMES, optimal_policy
from tinyzero.plots import plot_frozenlake_episodes, plot_learning_curves
from tinyzero.rollout import Episode, run_episodes
from tinyzero.runs import read_metrics
from tinyzero.trainer import TinyZeroTrainer
from train import compute_reward

torch.set_num_threads(1)  # tiny matrices: one thread is fastest, and leaves the machine to others

# Both budgets are configs/default.yaml's recipe (A*PO, the Huber residual, the per-character KL, two
# update epochs, the trust region); "smoke" shrinks it to configs/smoke.yaml's sizes, with 150
# pre-training steps (~5 s) so that its base writes valid moves and reaches the goal now and then.
SMOKE_SIZES = [
    "model.preset=nano",
    "model.max_seq_len=128",
    "task.num_train=64",
    "task.num_test=16",
    "task.max_turns=6",
    "pretrain.steps=150",
    "pretrain.batch_size=16",
    "pretrain.eval_problems=16",
    "rollout.max_new_tokens=8",
    "astarpo.num_trajectories=16",
    "training.eval_problems=16",
    "training.total_iterations=3",
    "training.eval_every=1",
]
BUDGETS = {  # (config file, overrides)
    "smoke": ("configs/default.yaml", SMOKE_SIZES),
    "full": ("configs/default.yaml", ["training.total_iterations=50", "training.eval_every=10"]),
}
config_file, budget_overrides = BUDGETS[BUDGET]
cache = Path(CACHE_DIR) if CACHE_DIR else ROOT / ".cache" / "base_models"
out = Path(OUT_DIR) if OUT_DIR else Path(tempfile.mkdtemp(prefix="tinyzero-walkthrough-"))
figures = out / "figures"
figures.mkdir(parents=True, exist_ok=True)


def config(*extra: str):
    """The budget's config, on CPU with one thread, its runs under ``out``."""
    common = [f"run.out_dir={out / 'runs'}", f"pretrain.cache_dir={cache}", "run.device=cpu", "run.threads=1"]
    return load_config(ROOT / config_file, [*common, *budget_overrides, *extra])


def show(fig: Figure, name: str) -> Path:
    """Save a figure under ``figures`` and display it (in Jupyter; a script just writes the file)."""
    path = figures / name
    fig.savefig(path, dpi=100, bbox_inches="tight")
    display(Image(filename=str(path)))
    return path


cfg = config()
print(f"budget {BUDGET}: {config_file} {' '.join(budget_overrides)}")
print(f"model {cfg.model.preset}, algorithm {cfg.algorithm.name}, runs and figures in {out}")

# %% [markdown]
# ## 1. The task: FrozenLake as text
#
# A problem is a map of Gymnasium's `FrozenLake`: `S` start, `F` frozen, `H` hole, `G` goal. The model
# never sees those letters: each turn it is shown the grid as text (`P` the player, `_` ice, `O` a
# hole, `G` the goal) and writes one move, `Left`, `Down`, `Right` or `Up`. The dynamics are
# Gymnasium's own. Reward: +1 for reaching the goal, −0.1 for every turn that does not parse as a move.
# Train and test maps are disjoint.

# %%
task = make_task(cfg.task)
problem = task.problems("test")[0]
print("the map (Gymnasium's encoding):", problem)
episode = task.episode(problem)
print("what the model is shown at turn 1:")
print(episode.prompt)
result = episode.step("Down")
print(f"after 'Down': reward {result.reward}, done {result.done}, info {result.info}")
print(result.observation)
bad = task.episode(problem).step("Dwn")
print(f"after 'Dwn' (not a move): reward {bad.reward}, format_ok {bad.info['format_ok']}")
print(f"best achievable success on this map (value iteration): {task.optimum(problem)}")

# %% [markdown]
# Every map is solvable. Here is an optimal policy (value iteration, discounted so that it takes a
# shortest path) played in the text environment, turn by turn, and drawn with `tinyzero.plots`:

# %%
policy = optimal_policy(problem, task.cfg.is_slippery, gamma=0.9)  # γ < 1: the shortest way
size = len(problem)
episode, cells, moves = task.episode(problem), [divmod("".join(problem).index("S"), size)], []
while not episode.done:
    move = ACTION_NAMES[int(policy[cells[-1][0] * size + cells[-1][1]])]
    result = episode.step(move)
    moves.append(move)
    cells.append(divmod(int(episode.env.state), size))
print("optimal moves:", " ".join(moves), "| final reward", result.reward, "|", result.info["reason"])
picture = plot_frozenlake_episodes(
    [{"desc": problem, "path": cells, "outcome": result.info["reason"], "caption": "optimal policy"}],
    figures / "optimal_episode.png",
    title="A held-out map and a shortest path to the goal",
)
display(Image(filename=str(picture)))

# %% [markdown]
# ## 2. The base model π_ref and how it fails
#
# Nothing is downloaded: each task's base model is a small transformer pre-trained here, from
# scratch, on a synthetic corpus of episodes in which a fraction `pretrain.skill` of the moves head
# for the goal (ignoring holes) and the rest are random legal moves. It is cached under a hash of its
# settings, so the next run (or `train.py` with the same config) loads it. It is built to be *weak but
# not hopeless*: A\*PO cannot lift a policy above what its reference solves now and then.
#
# Building the trainer builds (or loads) the base model; π_θ starts as a copy of it.

# %%
trainer = TinyZeroTrainer(cfg, reward_fn=compute_reward, progress=False)
report = trainer.base_report
print(f"base model {report['key']}: {report['params']:,} parameters")
for key in ("format_rate", "greedy_success", "pass@1", "pass@8"):
    print(f"  held-out {key}: {report[key]:.3f}")

# %% [markdown]
# Greedy episodes of the base model on held-out maps, with the failure reasons `evaluate.py` reports
# (`tinyzero.evaluation`):

# %%
tok = trainer.tok
held_out = task.problems("test")[:16]
gen = torch.Generator().manual_seed(0)
greedy = run_episodes(trainer.ref, tok, task, held_out, trainer.sampling(greedy=True), gen)
for ep in greedy[:6]:
    moves = " ".join(repr(a) for a in ep.actions)
    print(f"{moves:60.60}  reward {ep.reward:+.1f}  {E.explain_failure(task, ep)}")
kinds = Counter(E.failure_kind(task, ep) or "solved" for ep in greedy)
print(f"\n{len(greedy)} held-out maps, greedy:", dict(kinds))

pictured = [
    {
        "desc": ep.problem,
        "path": E.episode_path(tuple(ep.problem), ep, task.cfg),
        "outcome": ep.reason,
        "caption": f"{E.failure_kind(task, ep) or 'solved'} after {len(ep.turns)} turn(s)",
    }
    for ep in greedy[:4]
]
picture = plot_frozenlake_episodes(pictured, figures / "base_greedy.png", title="The base model, greedy")
display(Image(filename=str(picture)))

# %% [markdown]
# Read the moves: a policy that writes the same moves whatever the map is not reading the map.
# `evaluate.py --checkpoint` measures this on hundreds of held-out maps ("reads the map": its most
# common plan replayed on every map) and counts the failure kinds above for greedy and sampled episodes.

# %% [markdown]
# ## 3. V\*: the optimal value, by hand
#
# A\*PO starts from the KL-regularised objective max_π E[r] − β·KL(π ‖ π_ref). Its optimum is known in
# closed form, π\*(y|x) ∝ π_ref(y|x)·exp(r(x,y)/β), and so is its value, which needs only samples of
# the frozen reference — equation (1):
#
# $$V^*(x) = \beta \log \mathbb{E}_{y\sim\pi_{\mathrm{ref}}}\big[e^{r(x,y)/\beta}\big]
#   \;\approx\; \beta\Big(\operatorname{logsumexp}_i \frac{r_i}{\beta} - \log N\Big)$$
#
# V\* is a soft maximum of the rewards: as β → 0 it tends to the largest of the N rewards, as β → ∞ to
# their mean. Below: N reference samples on a few training maps, V\* computed by hand for a sweep of β,
# and compared with the library's `estimate_v_star`.

# %%
n_samples, n_maps = (16, 4) if BUDGET == "smoke" else (32, 6)
maps = task.problems("train")[:n_maps]
gen = torch.Generator().manual_seed(1)
samples = run_episodes(
    trainer.ref, tok, task, [m for m in maps for _ in range(n_samples)], trainer.sampling(), gen
)
rewards = trainer.rewards(samples).view(n_maps, n_samples).double()
for i, row in enumerate(rewards):
    print(f"map {i}: rewards {Counter(round(float(r), 2) for r in row)}")


def v_star_by_hand(r: torch.Tensor, beta: float) -> torch.Tensor:
    """β·log mean exp(r/β), through logsumexp: exact and free of overflow for any β."""
    return beta * (torch.logsumexp(r / beta, dim=-1) - math.log(r.shape[-1]))


print("\n    β   by hand (one value per map)              estimate_v_star agrees")
for beta in (0.01, 0.1, cfg.astarpo.beta, 1.0, 10.0, 100.0):
    mine = v_star_by_hand(rewards, beta)
    library = astarpo.estimate_v_star(rewards, beta)
    agree = torch.allclose(mine, library, atol=1e-9)
    assert agree, (mine, library)
    print(f"{beta:6.2f}   {' '.join(f'{v:+.3f}' for v in mine.tolist()):40}  {agree}")
print("max of rewards:", " ".join(f"{v:+.3f}" for v in rewards.max(-1).values.tolist()))
print("mean of rewards:", " ".join(f"{v:+.3f}" for v in rewards.mean(-1).tolist()))
two = torch.tensor([0.0, 1.0], dtype=torch.float64)  # one failure, one success, β = 0.001
naive = 0.001 * torch.log(torch.exp(two / 0.001).mean())
print(f"rewards (0, 1) at β = 0.001: naive β·log mean exp(r/β) = {float(naive)} (exp(1000) overflows),")
print(f"  through logsumexp = {float(v_star_by_hand(two, 0.001)):.6f} (= 1 − 0.001·log 2)")

# %%
betas = torch.logspace(-2.5, 2.5, 61, dtype=torch.float64)
fig = Figure(figsize=(8, 4.5))
ax = fig.subplots()
for i in range(n_maps):
    color = f"C{i}"
    curve = [float(v_star_by_hand(rewards[i], float(b))) for b in betas]
    ax.plot(betas, curve, color=color, label=f"map {i}")
    ax.axhline(float(rewards[i].max()), color=color, ls="--", lw=0.8)
    ax.axhline(float(rewards[i].mean()), color=color, ls=":", lw=1.2)
ax.axvline(cfg.astarpo.beta, color="grey", lw=0.8, label=f"β1 = {cfg.astarpo.beta} (astarpo.beta)")
ax.set_xscale("log")
ax.set_xlabel("β")
ax.set_ylabel("V*(x)")
ax.set_title(f"V*(β) from {n_samples} π_ref samples per map (dashed: max reward, dotted: mean)")
ax.legend(fontsize=8)
show(fig, "v_star_beta.png")

# %% [markdown]
# **Stage 1** does the same for every training map, once, before training: `astarpo.num_value_samples`
# reference samples per map at β1 = `astarpo.beta`, written to a table that is cached across runs.
# The trainer runs it through the algorithm's `prepare` on its first update; here we call it directly.
# Its estimate for our maps differs from the one above only by sampling noise: fewer samples, other
# draws.

# %%
prepared = trainer.prepare()
table = prepared.state
print(f"stage 1: V* for {len(table)} training maps, mean {prepared.metrics['v_star/table_mean']:.3f}")
print(f"samples per map: stage 1 {cfg.astarpo.num_value_samples}, above {n_samples}; β = {cfg.astarpo.beta}")
for i, m in enumerate(maps):
    row = table[task.describe(m)]
    mine = float(v_star_by_hand(rewards[i], cfg.astarpo.beta))
    print(f"map {i}: table {row['v']:+.3f} (π_ref ever succeeded: {row['success']}), above {mine:+.3f}")

# %% [markdown]
# ## 4. One A\*PO update, term by term
#
# Taking logs of π\* gives β·log π\*/π_ref = r − V\* = A\*, the optimal advantage. Stage 2 samples one
# episode per map from π_θ and fits the policy's log-ratio to it by least squares — equation (2):
#
# $$\mathcal{L}(\theta) = \frac{1}{N}\sum_{i}\Big(\beta_2
#   \log\frac{\pi_\theta(y_i|x_i)}{\pi_{\mathrm{ref}}(y_i|x_i)} - \big(r(x_i,y_i) - V^*(x_i)\big)\Big)^2$$
#
# with sequence-summed log-probs over the policy's own tokens, minus a small entropy bonus. The
# `default.yaml` recipe that both budgets use adds two terms (docs/algorithms.md says why): residuals
# beyond `astarpo.huber_delta` count linearly (a Huber loss), and `astarpo.kl_coef` times the exact
# per-character KL(π_θ ‖ π_ref) over the policy's tokens.
#
# First the batch, through the trainer's own path: `trainer.collect()` draws the maps and plays the
# episodes with π_θ, scores them and pads them into a `Rollouts` (token ids, and a mask over the
# policy's tokens).

# %%
data = trainer.collect()
batch = data.batch
print(f"{len(data.episodes)} episodes -> {batch.ids.shape[0]} sequences of up to {batch.ids.shape[1]} tokens")
print(f"{int(batch.mask.sum())} of them are the policy's (trained); the rest are observations or padding")
print("rewards (value: episodes):", dict(Counter(round(r, 2) for r in data.rewards.tolist())))

# %% [markdown]
# Now the log-probs (π_θ with gradients, π_ref without) as a `Forward`, the algorithm's real `loss`
# on it (`tinyzero.algorithms.astarpo.loss`), and every term recomputed by hand next to it.

# %%
a = cfg.astarpo
v_star = torch.tensor([table[key]["v"] for key in data.keys])
advantage = data.rewards - v_star  # A* = r − V*
with torch.no_grad():
    ref = trajectory_logprobs(trainer.ref, batch, dist=True)


SHOW = 12  # episodes listed one per line


def loss_terms(policy: torch.nn.Module) -> torch.Tensor:
    """Print the A*PO loss of ``policy`` on the batch, term by term; return the log-ratios."""
    lp = trajectory_logprobs(policy, batch, dist=True)
    old = LogProbs(lp.token.detach(), lp.entropy.detach(), lp.traj.detach())
    loss, metrics = astarpo.loss(cfg, data, Forward(policy=lp, old=old, ref=ref), table)
    with torch.no_grad():
        log_ratio = lp.traj - ref.traj  # log π_θ(y|x) − log π_ref(y|x), summed over the episode's tokens
        residual = a.beta2 * log_ratio - advantage
        if a.huber_delta > 0:  # e² inside ±δ, 2δ|e| − δ² beyond
            d, e = a.huber_delta, residual.abs()
            regression = torch.where(e <= d, e**2, 2 * d * e - d**2).mean()
        else:
            regression = (residual**2).mean()
        entropy = masked_mean(lp.entropy, batch.mask)
        kl = masked_mean(token_kl(lp.dist, ref.dist), batch.mask)
        total = regression - cfg.training.entropy_coef * entropy + a.kl_coef * kl
    shown = min(SHOW, len(data.rewards))
    print(f"the first {shown} of {len(data.rewards)} episodes:\n     r      V*      A*   log-ratio  residual")
    for row in list(zip(data.rewards, v_star, advantage, log_ratio, residual))[:shown]:
        print("  ".join(f"{float(x):+7.3f}" for x in row))
    kind = f"Huber, δ = {a.huber_delta}" if a.huber_delta else "mean of squares"
    print(f"regression  {float(regression):9.5f}   ({kind} of the residuals)")
    print(f"entropy     {float(entropy):9.5f}   × −{cfg.training.entropy_coef}   (bonus)")
    print(f"KL/token    {float(kl):9.5f}   × {a.kl_coef}")
    print(f"total       {float(total):9.5f}   astarpo.loss says {float(loss.detach()):.5f}")
    assert abs(float(total) - float(loss.detach())) < 1e-5
    return log_ratio


before = loss_terms(trainer.policy)

# %% [markdown]
# Before the first step π_θ = π_ref: every log-ratio and the KL are 0, and each residual is −A\*. The
# gradient raises log π_θ of the episodes that did better than V\* and lowers the others. Now the real
# step, as `trainer.update()` runs it: `loss_on` (the forwards, `training.update_epochs` − 1 steps on
# the batch, the last loss) then `optimize` (backward, clipping, AdamW, and the trust region, which
# shrinks or undoes a step that raises the KL to π_ref by more than `training.max_kl_rise`).

# %%
trainer.trust.reset()  # what update() does at the start of an iteration
loss, metrics = trainer.loss_on(data)
grad_norm = trainer.optimize(loss)
last = float(loss.detach())
print(f"{cfg.training.update_epochs} update epochs; last loss {last:.5f}, gradient norm {grad_norm:.3f}")
print(f"trust region: KL rise {trainer.trust.rise:+.4f}, step scale {trainer.trust.scale} (1 = whole step)")
print("the trainer's metrics:", {k: round(v, 4) for k, v in metrics.items()})

# %% [markdown]
# The same batch under the updated π_θ: the log-ratios and the KL are no longer 0. The step pushes
# each episode's log-ratio toward its target A\*/β2, but every episode shares the same weights (and the
# KL term and the trust region hold the step back), so one step moves many episodes the way their own
# target asks, not all of them: the count is printed below.

# %%
after = loss_terms(trainer.policy)
moved = after - before
agree = [(m > 0) == (adv > 0) for m, adv in zip(moved.tolist(), advantage.tolist()) if abs(adv) > 1e-6]
print(f"\nlog π_θ moved the way A* points on {sum(agree)} of the {len(agree)} episodes with A* ≠ 0")

# %% [markdown]
# ## 5. A short training run
#
# `trainer.train()` is that update in a loop, with held-out evaluation, `metrics.jsonl`, checkpoints
# and a summary; `python train.py --config ...` is a thin wrapper around it. A fresh trainer (the
# one above has taken a step outside the loop) finds the base model and the stage-1 table in the cache.

# %%
run = TinyZeroTrainer(config("run.name=walkthrough"), reward_fn=compute_reward, progress=False)
summary = run.train()
rows = read_metrics(run.run_dir)
print(f"{summary['iterations']} iterations in {summary['elapsed_s']:.1f} s; run directory {run.run_dir}")
base, final = summary["base/greedy_success"], summary["eval/greedy_success"]
print(f"held-out greedy success: {base:.3f} (base model's report) -> {final:.3f}")
for r in rows:
    if "eval/greedy_success" in r:
        line = f"iteration {r['iteration']:3d}: held-out greedy {r['eval/greedy_success']:.3f}"
        print(line + (f", training reward {r['reward/mean']:+.3f}" if "reward/mean" in r else ""))
curves = plot_learning_curves([run.run_dir], figures)
display(Image(filename=str(curves[0]), width=900))

# %% [markdown]
# A few iterations move little: the README's run takes 75 iterations (3.4 minutes on 2 idle cores,
# stage 1 included) to reach 0.9 held-out greedy success from the base's 0.155, and ends at 0.995
# after 250 on the development machine; other seeds take 75 and 100, other CPUs may take longer
# (docs/results.md has every figure and the commands). The same plot for any run:
# `python evaluate.py --plot runs/<name>`.
#
# ## 6. RAGEN's multi-turn loop
#
# RAGEN treats a whole episode as **one token sequence**, `BOS obs_1 act_1 EOS obs_2 act_2 EOS …`,
# and trains only the agent's tokens: the observations come from the environment and are masked out
# (`tinyzero.context`). Here is one sampled multi-turn episode laid out that way; the agent's tokens,
# the only ones with a loss, are in [brackets].

# %%
episode = max(samples, key=lambda e: len(e.turns))  # the longest of the reference samples above
if len(episode.turns) < 2:  # a base that ends every episode at once: play two moves by hand
    env, observation, turns = task.episode(problem), None, []
    observation = env.prompt
    for move in ("Right", "Down"):
        turns.append(Turn(observation, tok.encode(move, eos=True)))
        observation = env.step(move).observation
    episode = Episode(problem=problem, turns=turns, actions=["Right", "Down"])


def layout(ids: list[int], mask: list[bool]) -> str:
    """The sequence as text: specials named, newlines as ⏎, the masked (agent) tokens in brackets."""
    names = {tok.bos_id: "<bos>", tok.eos_id: "<eos>", tok.pad_id: "<pad>"}
    text, inside = "", False
    for i, m in zip(ids, mask):
        if m != inside:
            text, inside = text + ("[" if m else "]"), m
        text += names.get(i) or tok.decode([i]).replace("\n", "⏎\n")
    return text + ("]" if inside else "")


whole = training_sequences(tok, episode.turns, history=-1)
print(f"{len(episode.turns)} turns, actions {episode.actions}, reward {episode.reward:+.1f}")
print(f"history = -1 (the whole episode in context): {len(whole)} sequence\n")
print(layout(*whole[0]))
assert sum(whole[0][1]) == episode.num_action_tokens  # exactly the agent's tokens are trained

# %% [markdown]
# How much of the episode the model sees is `rollout.history`. The configs here use `0`: each turn
# shows only the current grid (a Markov context, which the early probes in docs/results.md found
# learns to read the map far better at this scale), so each turn becomes its own sequence with only
# its action masked. The losses get these tensors from `make_batch`, whose mask is the one above.

# %%
per_turn = training_sequences(tok, episode.turns, history=0)
print(f"history = 0: {len(per_turn)} sequences, one per turn")
for ids, mask in per_turn[:2]:
    print(layout(ids, mask), end="\n\n")
rebuilt = make_batch(tok, [episode], 0, "cpu")
assert int(rebuilt.mask.sum()) == episode.num_action_tokens

# %% [markdown]
# RAGEN's update (`algorithm.name=ragen`, `tinyzero/algorithms/ragen_astarpo.py`) is A\*PO's
# regression on these sequences with one change: instead of a stage-1 table it samples K =
# `num_completions` episodes of each map from π_θ and estimates V\* from that group, importance-weighted
# toward π_ref (exact at the first iteration, when π_θ = π_ref). What it asks the trainer to collect:

# %%
ragen = get_algorithm("ragen")
plan = ragen.collect(cfg)
print(f"RAGEN: {plan.prompts} maps × K = {plan.samples_per_prompt} episodes per iteration")
print(f"A*PO:  {astarpo.collect(cfg).prompts} maps × 1 episode, V* from the stage-1 table")
group = rewards[0, : cfg.num_completions]  # K reference episodes of one map: all weights equal
shown = [round(r, 2) for r in group.tolist()]
v_group = float(astarpo.estimate_v_star(group, cfg.astarpo.beta))
print(f"V* from one group of K = {len(group)}, rewards {shown}: {v_group:+.3f}")

# %% [markdown]
# ## 7. Where to go next
#
# - **Run the real thing**: `bash install.sh && .venv/bin/python train.py --config configs/default.yaml`
#   (README), then `python evaluate.py --checkpoint runs/default --report runs/default/eval.md`.
# - **Read the math next to the code**: docs/algorithms.md (A\*PO, RAGEN, the baselines, and the
#   departures from the papers this recipe needed at this scale).
# - **Add an algorithm, a task or a model**: docs/extending.md walks through RLOO (one file and one
#   registry line) and a word-reversal task the same way; an algorithm is `collect`, an optional
#   `prepare` and a `loss` over a `Rollouts` and a `Forward`, exactly the objects used above.
# - **The honest numbers**: docs/results.md, including what does not learn yet (countdown, slippery
#   FrozenLake).
# - **Change the budget**: set `BUDGET = "full"` at the top and run everything again.
