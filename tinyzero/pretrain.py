"""Base models: for each task, a π_ref trained here from scratch on a synthetic corpus, and cached.

Why: nothing may be downloaded, and A*PO cannot lift a policy above its reference's pass@K
(docs/algorithms.md; the early probes in docs/results.md), so each task needs a base that knows the
answer *format* and solves a few problems by luck — "weak but not hopeless". The corpus mixes skilled
demonstrations (a fraction ``pretrain.skill``: a correct countdown expression, the true product, a
move toward the goal) with random but well-formed ones (random expressions over the given numbers,
products with injected digit errors, random legal moves). The base model is stored under a hash of
every setting that shapes it, so any run with the same settings reuses it instead of paying minutes of
pre-training again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
import shutil
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from tinyzero.config import Config, PretrainConfig
from tinyzero.context import Turn, build_context, pad_batch, training_sequences
from tinyzero.environments import make_task
from tinyzero.environments.base import Task
from tinyzero.errors import UserError
from tinyzero.metrics import mean, pass_at_k
from tinyzero.models.hf import HFCausalLM, HFTokenizer, load_hf_model_dir
from tinyzero.models.io import build_model, load_model_dir, save_model_dir
from tinyzero.models.tokenizer import CharTokenizer
from tinyzero.models.transformer import TransformerLM
from tinyzero.rollout import SamplingSettings, run_episodes

CORPUS_VERSION = 1  # bump when the corpus or training recipe changes, so old caches are not reused
SEARCH_VERSION = 3  # task.demos=search: 2 divisions last, restarts thinned; 3 slips (other keys kept)
MAX_POOL = 40_000  # sequences generated up front unless pretrain.pool says otherwise


def pretrain_seed(cfg: Config) -> int:
    """The base model's seed: ``pretrain.seed``, or ``run.seed`` when it is -1 (the default).

    A separate seed lets several RL seeds share one base model (benchmarks compare algorithms and
    seeds on the same π_ref); -1 keeps the cache keys of runs made before the key existed.
    """
    return cfg.run.seed if cfg.pretrain.seed < 0 else cfg.pretrain.seed


def base_model_key(cfg: Config) -> str:
    """Hash of everything that shapes the base model (task, architecture, corpus, recipe, seed)."""
    task = asdict(cfg.task)
    task.pop("num_test")  # evaluation size does not change the model
    # Keys added after bases were cached: left out at their defaults, so those bases keep their keys.
    for added_later, default in (
        ("scratchpad", False),
        ("restart", False),
        ("show_tried", False),
        ("sizes", []),
        ("scratchpad_errors", "slip"),
        ("trace", "attempts"),
        ("demos", "heuristic"),
        ("demo_restarts", 0.25),
        ("demo_checks", 0.0),
    ):
        if task[added_later] == default:
            task.pop(added_later)
    if task.get("demos") == "search":
        task["search_version"] = SEARCH_VERSION
    recipe = {
        k: v for k, v in asdict(cfg.pretrain).items() if k not in ("cache_dir", "eval_problems", "seed")
    }
    for added_later in ("num_problems", "pool"):  # at 0 (the default) they keep older bases' keys
        if not recipe[added_later]:
            recipe.pop(added_later)
    settings = {
        "version": CORPUS_VERSION,
        "task": task,
        # source/path only matter for model.source=hf, which builds no base: keep old cache keys valid.
        "model": {k: v for k, v in asdict(cfg.model).items() if k not in ("source", "path")},
        "pretrain": recipe,
        "history": cfg.rollout.history,
        "max_new_tokens": cfg.rollout.max_new_tokens,
        "seed": pretrain_seed(cfg),
    }
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    return f"{cfg.task.name}-{cfg.model.preset}-{digest}"


def base_model_dir(cfg: Config) -> Path:
    return Path(cfg.pretrain.cache_dir) / base_model_key(cfg)


def build_corpus(
    task: Task,
    tok: CharTokenizer,
    problems: list[Any],
    n_sequences: int,
    skill: float,
    history: int,
    seed: int,
) -> list[tuple[list[int], list[bool]]]:
    """(ids, loss_mask) sequences from behaviour-policy episodes, laid out exactly as rollouts are."""
    rng = random.Random(seed)
    corpus: list[tuple[list[int], list[bool]]] = []
    while len(corpus) < n_sequences:
        problem = problems[rng.randrange(len(problems))]
        demo = task.behaviour_turns(problem, rng, skill)
        turns = [Turn(obs, tok.encode(action, eos=True)) for obs, action in demo]
        learn = [task.learns_turn(obs, action, rng) for obs, action in demo]
        corpus.extend(training_sequences(tok, turns, history, learn))
    return corpus[:n_sequences]


def corpus_problems(cfg: Config, task: Task) -> list[Any]:
    """The training problems the corpus demonstrates: all, or the first ``pretrain.num_problems``.

    Why a subset: the corpus shows each problem dozens of times, so the base memorises the problems it
    saw (multiplication: near-perfect on them, 0.83 on held-out ones) and RL on those alone has little
    to learn from. With a subset, the rest of the training pool is new to the base, as held-out
    problems are (``sample_problems`` lists are prefixes of each other, so the subset is stable).
    """
    problems = task.problems("train")
    return problems[: cfg.pretrain.num_problems] if cfg.pretrain.num_problems else problems


def corpus_size(p: PretrainConfig) -> int:
    """Sequences in the corpus: ``pretrain.pool``, or by default the steps' worth capped at 40,000.

    Why the option: the default pool is a few thousand episodes of a long multi-turn task (multi-turn
    countdown: ~4,000 searches of ~10 turns for 12,000 training problems), so a skill met once per
    episode, such as spotting the one operation that finishes, is shown only that many times, each
    seen six times over in 4,000 steps. A larger pool shows more distinct cases, each fewer times.
    Measured there (docs/results.md): 256,000 sequences at 4,000 steps moved the base little (greedy
    0.50 -> 0.54); 8,000 steps over 512,000 gave 0.695; the shipped config, 12,000 steps over 768,000
    (each sequence seen once) with check drills, 0.845.
    """
    return p.pool or min(MAX_POOL, p.steps * p.batch_size)


def check_lengths(cfg: Config, task: Task, tok: CharTokenizer, corpus: list | None = None) -> None:
    """UserError unless episodes fit ``model.max_seq_len``: a first prompt plus ``rollout.max_new_tokens``
    (for rollouts) and every corpus sequence (for pre-training). Checked up front because otherwise the
    model raises deep inside a forward pass, or every episode silently ends as "context_full"."""
    limit, fix = cfg.model.max_seq_len, "raise model.max_seq_len or shorten episodes"
    for problem in task.problems("test")[:8]:
        prompt = build_context(tok, [], task.episode(problem, seed=0).prompt, cfg.rollout.history)
        need = len(prompt) + cfg.rollout.max_new_tokens
        if need > limit:
            raise UserError(
                f"a {task.name} prompt ({len(prompt)} tokens) plus rollout.max_new_tokens="
                f"{cfg.rollout.max_new_tokens} needs {need} tokens but model.max_seq_len={limit}: {fix}"
            )
    longest = max((len(ids) for ids, _ in corpus or []), default=0)
    if longest > limit:
        raise UserError(
            f"a {task.name} training episode needs {longest} tokens but model.max_seq_len={limit}: {fix} "
            f"(task.size, task.max_turns, rollout.history)"
        )


def lm_loss(
    model: TransformerLM, ids: torch.Tensor, attn: torch.Tensor, loss_mask: torch.Tensor
) -> torch.Tensor:
    """Next-token cross-entropy on the masked (action) tokens only."""
    logits = model(ids[:, :-1], attention_mask=attn[:, :-1])  # (B, T-1, V)
    target_mask = loss_mask[:, 1:]
    return F.cross_entropy(logits[target_mask], ids[:, 1:][target_mask])


def lr_at(step: int, total: int, peak: float, warmup: int = 50) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def pretrain(cfg: Config, out_dir: str | Path, device: str = "cpu", progress: bool = True) -> dict:
    """Train a base model for ``cfg.task`` into ``out_dir`` and return its report."""
    seed = pretrain_seed(cfg)
    torch.manual_seed(seed)
    task = make_task(cfg.task)
    tok = CharTokenizer()
    model = build_model(cfg.model.preset, tok.vocab_size, cfg.model.max_seq_len).to(device)
    p = cfg.pretrain
    start = time.perf_counter()
    corpus = build_corpus(
        task,
        tok,
        corpus_problems(cfg, task),
        corpus_size(p),
        p.skill,
        cfg.rollout.history,
        seed,
    )
    check_lengths(cfg, task, tok, corpus)
    corpus_seconds = time.perf_counter() - start
    opt = torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=0.01, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(seed)
    bar = tqdm(
        range(p.steps), desc=f"pre-training {cfg.task.name} base", disable=not progress, mininterval=1.0
    )
    model.train()
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, p.steps, p.lr)
        idx = torch.randint(len(corpus), (p.batch_size,), generator=gen).tolist()
        ids, attn, loss_mask = (t.to(device) for t in pad_batch([corpus[i] for i in idx], tok.pad_id))
        loss = lm_loss(model, ids, attn, loss_mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 25 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    train_seconds = time.perf_counter() - start
    report = evaluate_base(model, tok, task, cfg, device)
    report.update(
        key=base_model_key(cfg),
        final_loss=float(loss.item()),
        corpus_sequences=len(corpus),
        corpus_seconds=round(corpus_seconds, 1),
        train_seconds=round(train_seconds, 1),
        params=sum(q.numel() for q in model.parameters()),
    )
    out_dir = Path(out_dir)
    save_model_dir(model, tok, out_dir)
    (out_dir / "report.json").write_text(json.dumps(report, indent=1))
    return report


@torch.no_grad()
def evaluate_base(
    model: TransformerLM, tok: CharTokenizer, task: Task, cfg: Config, device: str = "cpu", samples: int = 8
) -> dict:
    """Held-out figures that say whether a base is "weak but not hopeless": format, greedy, pass@1, pass@8.

    Also greedy success on as many of the corpus' own problems (``train_greedy_success``): a base far
    better there than on held-out problems has memorised its corpus (countdown with 2,000 training
    problems: 0.985 against 0.335), and RL on those problems then mostly rehearses answers.
    """
    n = cfg.pretrain.eval_problems
    problems = task.problems("test")[:n]
    gen = torch.Generator(device=device).manual_seed(pretrain_seed(cfg) + 1)
    settings = SamplingSettings(max_new_tokens=cfg.rollout.max_new_tokens, history=cfg.rollout.history)
    greedy_settings = SamplingSettings(**{**asdict(settings), "greedy": True})
    greedy = run_episodes(model, tok, task, problems, greedy_settings, gen)
    sampled = run_episodes(model, tok, task, [q for q in problems for _ in range(samples)], settings, gen)
    wins = [sum(e.success for e in sampled[i * samples : (i + 1) * samples]) for i in range(len(problems))]
    # last, so the held-out figures above draw the same random numbers as before this figure existed
    seen = run_episodes(model, tok, task, corpus_problems(cfg, task)[:n], greedy_settings, gen)
    return {
        "task": task.name,
        "eval_problems": len(problems),
        "format_rate": mean([e.format_ok for e in sampled]),
        "greedy_success": mean([e.success for e in greedy]),
        "pass@1": mean([pass_at_k(samples, c, 1) for c in wins]),
        f"pass@{samples}": mean([pass_at_k(samples, c, samples) for c in wins]),
        "mean_reward": mean([e.reward for e in sampled]),
        "mean_optimum": mean([task.optimum(q) for q in problems]),
        "train_greedy_success": mean([e.success for e in seen]),
    }


def ensure_base_model(cfg: Config, device: str = "cpu", progress: bool = True) -> Path:
    """The cached base model's directory, pre-training it first if this is the first run that needs it."""
    out = base_model_dir(cfg)
    if (out / "report.json").is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)  # an unwritable cache fails now, not after training
    tmp = out.with_name(f"{out.name}.tmp{uuid.uuid4().hex[:8]}")  # never touches the seeded RNGs
    try:
        report = pretrain(cfg, tmp, device=device, progress=progress)
        if out.exists():  # another process finished first: keep theirs
            shutil.rmtree(tmp)
        else:
            tmp.rename(out)  # atomic: a half-written base model is never visible under the real name
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    if progress:
        print(f"base model built in {report['train_seconds']:.0f}s and cached at {out}")
    return out


def load_base_model(
    cfg: Config, device: str = "cpu", progress: bool = True
) -> tuple[TransformerLM, CharTokenizer, dict]:
    path = ensure_base_model(cfg, device, progress)
    model, tok = load_model_dir(path, device)
    return model, tok, json.loads((path / "report.json").read_text())


def hf_base_key(cfg: Config) -> str:
    """Names the reference (and its cached base report): the model files' identity + task settings."""
    p = Path(cfg.model.path).resolve()
    files = sorted((f.name, f.stat().st_size, int(f.stat().st_mtime)) for f in p.iterdir() if f.is_file())
    task = dataclasses.asdict(cfg.task)
    task.pop("num_test")
    settings = {
        "path": str(p),
        "files": files,
        "task": task,
        "max_seq_len": cfg.model.max_seq_len,
        "rollout": [cfg.rollout.history, cfg.rollout.max_new_tokens],
        "eval_problems": cfg.pretrain.eval_problems,
        "seed": cfg.run.seed,
    }
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    return f"{cfg.task.name}-hf-{p.name}-{digest}"


def load_hf_reference(
    cfg: Config, device: torch.device | str, progress: bool = True
) -> tuple[str, dict, HFCausalLM, HFTokenizer]:
    """(key, base report, π_ref, tokenizer) for ``model.source: hf``: the local model is π_ref as is.

    No pre-training; the base report (greedy success, pass@1, pass@8 on held-out problems) is still
    computed, once, and cached under ``pretrain.cache_dir/<key>/report.json`` like a built base model.

    The HF counterpart of ``ensure_base_model``; it lives here and not in ``models.hf`` because its
    base report plays episodes (``evaluate_base``), which the models layer must not import.
    """
    model, tok = load_hf_model_dir(cfg.model.path, device, cfg.model.max_seq_len)
    key = hf_base_key(cfg)
    report_path = Path(cfg.pretrain.cache_dir) / key / "report.json"
    if report_path.is_file():
        return key, json.loads(report_path.read_text()), model, tok
    if progress:
        print(f"evaluating the Hugging Face reference model at {cfg.model.path} (cached afterwards)")
    report = evaluate_base(model, tok, make_task(cfg.task), cfg, str(device))
    report.update(key=key, source="hf", path=str(cfg.model.path), params=model.num_params())
    report_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = report_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=1))
    tmp.replace(report_path)
    return key, report, model, tok


def format_report(report: dict) -> str:
    """One line per figure, for the console."""
    keys = (
        "format_rate",
        "greedy_success",
        "pass@1",
        "pass@8",
        "mean_reward",
        "mean_optimum",
        "train_greedy_success",
        "train_seconds",
    )
    body = "  ".join(
        f"{k}={report[k]:.3f}" if isinstance(report.get(k), float) else f"{k}={report.get(k)}"
        for k in keys
        if k in report
    )
    line = f"base model {report.get('key', '')} ({report.get('eval_problems')} held-out problems): {body}"
    return line + memorisation_warning(report)


MEMORISED_GAP = 0.2  # greedy success this much higher on the corpus' problems than on held-out ones


def memorisation_warning(report: dict) -> str:
    """A second line when the base solves its corpus' problems far better than new ones, else ''."""
    seen, held_out = report.get("train_greedy_success"), report.get("greedy_success")
    if seen is None or held_out is None or seen - held_out < MEMORISED_GAP:
        return ""
    return (
        f"\nwarning: the base memorised its corpus (greedy {seen:.3f} on its training problems, "
        f"{held_out:.3f} on held-out ones): RL on those problems mostly rehearses answers; "
        "raise task.num_train (more distinct problems) or lower pretrain.steps"
    )
