"""Configuration: a dataclass schema, YAML files and dotted command-line overrides (OmegaConf).

Why a schema: every hyper-parameter is declared once, with its type, default and a one-line
description (the comment beside it), so a typo in a YAML file or on the command line is caught
before any compute is spent, with a "did you mean" hint, instead of being silently ignored.

    cfg = load_config("configs/smoke.yaml", ["task.name=countdown", "training.lr=1e-3"])
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from tinyzero.errors import UserError

# The registries: every name a config may give, and where its implementation lives. Adding a task or an
# algorithm is one file and one line here (docs/extending.md). Named, not imported: the config layer
# sits below the implementations, and a run imports only what it uses.
TASKS: dict[str, str] = {  # task.name -> "module:Task subclass"
    "countdown": "tinyzero.environments.countdown:CountdownTask",
    "countdown_turns": "tinyzero.environments.countdown_turns:CountdownTurnsTask",
    "multiplication": "tinyzero.environments.multiplication:MultiplicationTask",
    "frozenlake": "tinyzero.environments.frozenlake_env:FrozenLakeTask",
    "reverse": "tinyzero.environments.reverse:ReverseTask",
}
ALGORITHMS: dict[str, str] = {  # algorithm.name -> the module whose ALGORITHM it runs
    "astarpo": "tinyzero.algorithms.astarpo",
    "ragen": "tinyzero.algorithms.ragen_astarpo",
    "grpo": "tinyzero.algorithms.grpo",
    "ppo": "tinyzero.algorithms.ppo",
    "rloo": "tinyzero.algorithms.rloo",
}
PRESETS = ("nano", "tiny", "small")
LR_SCHEDULES = ("constant", "cosine", "linear")


@dataclass
class RunConfig:
    """Where a run lives and what makes it reproducible."""

    name: str = "default"  # run directory is <out_dir>/<name>
    out_dir: str = "runs"  # parent folder of all runs
    seed: int = 0  # fixes init, data order and sampling; same seed on CPU → same weights
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 0  # torch intra-op threads; 0 = torch's default
    dtype: str = "float32"  # float32 | bfloat16 (autocast; weights stay fp32) | auto (bf16 if native)
    compile: bool = False  # torch.compile the training forward (slow first iterations; docs/scaling.md)


@dataclass
class TaskConfig:
    """Which task to train on and how its problems are generated."""

    name: str = (
        "frozenlake"  # countdown | countdown_turns (one operation a turn) | multiplication | frozenlake
    )
    seed: int = 0  # fixes problem generation; the train/test split is a function of the problem
    num_train: int = 2000  # size of the training problem pool
    num_test: int = 200  # held-out problems for evaluation
    # countdown
    num_numbers: int = 3  # how many numbers are given (each used exactly once)
    max_number: int = 20  # numbers are drawn from 1..max_number
    max_target: int = 100  # targets are reachable integers in 1..max_target
    # multiplication
    digits_a: int = 2  # digits of the first factor
    digits_b: int = 2  # digits of the second factor
    scratchpad: bool = False  # base corpus works it out first (long multiplication; countdown: a search)
    scratchpad_errors: str = "slip"  # multiplication: unskilled demos slip once | shift (forget place value)
    trace: str = "attempts"  # countdown scratchpad: attempts (random tries) | backward (complete search)
    restart: bool = False  # countdown_turns: the action `restart` puts the original numbers back
    show_tried: bool = False  # countdown_turns with restart: observations list the first moves tried
    # frozenlake
    size: int = 4  # the map is size × size
    sizes: list[int] = field(default_factory=list)  # mixed sizes, e.g. [3,4,5,6] (max_turns scaled)
    is_slippery: bool = False  # Gymnasium's slippery dynamics (intended move with prob 1/3)
    p_frozen: float = 0.8  # probability that a cell is frozen when generating random maps
    max_turns: int = 8  # turns per episode before truncation
    max_actions_per_turn: int = 1  # moves the agent may write in one turn
    invalid_penalty: float = 0.1  # reward subtracted for an unparseable turn
    demos: str = "heuristic"  # base corpus: heuristic | optimal (frozenlake: VI) | search (countdown_turns)
    demo_restarts: float = 0.25  # search demos: fraction of their `restart` turns the base learns from
    demo_checks: float = 0.0  # search demos: share replaced by check drills (every first move's two numbers)


@dataclass
class ModelConfig:
    """The policy's architecture (a small Llama-style decoder)."""

    preset: str = "tiny"  # nano (~0.2M) | tiny (~1M) | small (~5M parameters)
    max_seq_len: int = 256  # longest prompt + completion the model can see
    source: str = "scratch"  # scratch: pre-train our own base | hf: a local transformers model at model.path
    path: str = ""  # model.source=hf: local directory of a Llama/Qwen2-style causal LM + its tokenizer


@dataclass
class PretrainConfig:
    """How each task's base model (π_ref) is built from a synthetic corpus, and cached."""

    steps: int = 800  # optimizer steps of next-token training
    batch_size: int = 64  # sequences per step
    lr: float = 3e-3  # peak AdamW learning rate (cosine decay, short warm-up)
    skill: float = (
        0.3  # fraction of skilled demonstrations in the corpus (the rest is random but well-formed)
    )
    eval_problems: int = 200  # held-out problems used to report the base model's figures
    num_problems: int = 0  # corpus from the first N training problems only (0 = all; RL meets the rest)
    pool: int = 0  # corpus sequences drawn up front (0 = min(40,000, steps × batch_size)); batches sample it
    seed: int = -1  # base model's seed; -1 = run.seed (set it to share one base across RL seeds)
    cache_dir: str = ".cache/base_models"  # base models are stored here under a hash of their settings


@dataclass
class RolloutConfig:
    """How trajectories are sampled from the policy."""

    temperature: float = 1.0  # sampling temperature for training rollouts
    top_k: int = 0  # 0 = off
    top_p: float = 1.0  # 1.0 = off
    max_new_tokens: int = 24  # per turn
    history: int = 0  # previous turns shown in a multi-turn prompt: 0 = current observation only, -1 = all


@dataclass
class AStarPOConfig:
    """A*PO: offline V* from π_ref (stage 1), then regression of β2·log(π/π_ref) onto r − V* (stage 2)."""

    beta: float = 0.5  # β1 of V* = β·log E_{π_ref}[exp(r/β)]
    beta2: float = 0.2  # β2, scale of the regressed log-ratio (targets are A*/β2 nats, docs/algorithms.md)
    num_value_samples: int = 8  # N reference samples per training prompt for V* (stage 1)
    num_trajectories: int = 128  # episodes per iteration, for EVERY algorithm (prompts × num_completions)
    filter_all_failed: bool = False  # drop training prompts where all N reference samples failed
    v_star_source: str = "importance"  # ragen: importance (K on-policy, weighted) | reference | table
    huber_delta: float = 0.0  # > 0: Huber loss on residuals beyond δ (reward units), docs/algorithms.md
    kl_coef: float = 0.0  # weight of the exact per-character KL(π_θ ‖ π_ref), docs/algorithms.md
    credit: str = "trajectory"  # astarpo: trajectory (eq. 3) | turn (V* of every state: docs/algorithms.md)
    min_state_visits: int = 1  # credit=turn: cut only at states this many reference episodes went through


@dataclass
class TrainingConfig:
    """The RL loop."""

    total_iterations: int = 100  # policy updates
    lr: float = 5e-4  # AdamW learning rate (the peak, with a schedule)
    lr_schedule: str = "constant"  # constant | cosine | linear: decay over training.total_iterations
    lr_final: float = 0.1  # cosine/linear: the last iteration's rate as a fraction of training.lr
    weight_decay: float = 0.0  # AdamW weight decay
    grad_clip: float = 1.0  # max global gradient norm
    update_epochs: int = 1  # gradient steps on each batch (A*PO's targets are fixed; GRPO/PPO/RLOO: vs π_old)
    entropy_coef: float = 0.001  # entropy bonus weight
    eval_every: int = 25  # iterations between held-out evaluations (0 = only at the end)
    eval_problems: int = 200  # held-out problems per evaluation
    checkpoint_every: int = 50  # iterations between checkpoints
    keep_last: int = 3  # checkpoints kept on disk
    max_bad_steps: int = 5  # stop after this many consecutive skipped (NaN/inf) steps; 0 = never stop
    max_kl_rise: float = 0.0  # > 0: shrink/undo a step raising the per-char KL(π_θ‖π_ref) on its batch more
    ref_reset_every: int = 0  # > 0: every N iterations π_ref ← π_θ and stage 1 is redone (0 = never)
    num_problems: int = 0  # RL's prompts: the first N training problems (0 = all); stage 1 covers only these


@dataclass
class GRPOConfig:
    """GRPO baseline."""

    clip_eps: float = 0.2  # PPO-style ratio clip
    kl_coef: float = 0.0  # weight of the k3 KL estimate to π_ref (0 = off)


@dataclass
class PPOConfig:
    """PPO baseline (critic, GAE with γ = λ = 1)."""

    clip_eps: float = 0.2  # ratio clip
    value_coef: float = 0.5  # weight of the critic's loss
    whiten_advantages: bool = True  # normalise A_t over the batch's agent tokens (mean 0, std 1)


@dataclass
class AlgorithmConfig:
    """Which RL algorithm updates the policy."""

    name: str = "ragen"  # astarpo | ragen | grpo | ppo | rloo (the registry: ALGORITHMS above)
    starpo_s_keep: float = 1.0  # StarPO-S: keep this fraction of prompt groups with highest reward std


@dataclass
class LoggingConfig:
    """Where metrics go besides metrics.jsonl."""

    tensorboard: bool = True  # write TensorBoard events into the run directory
    wandb: bool = False  # also log to Weights & Biases (pip install -e .[wandb])
    wandb_mode: str = "offline"  # online | offline
    progress: bool = True  # tqdm progress bars


@dataclass
class DistributedConfig:
    """Data-parallel training under torchrun (docs/scaling.md); ignored by a plain ``python train.py``."""

    strategy: str = "ddp"  # ddp (full replica per rank) | fsdp (FSDP2: weights, grads, optimizer sharded)
    backend: str = "auto"  # auto (nccl on GPU, gloo on CPU) | gloo | nccl
    timeout_s: int = 1800  # how long a rank waits in a collective (others wait while rank 0 evaluates)


@dataclass
class Config:
    """Everything a run needs; YAML files hold only what differs from these defaults."""

    run: RunConfig = field(default_factory=RunConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    astarpo: AStarPOConfig = field(default_factory=AStarPOConfig)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    num_completions: int = 8  # K samples per prompt: the group size of ragen/grpo; astarpo/ppo take 1


def _all_keys(node: Any, prefix: str = "") -> list[str]:
    """Every dotted key of the schema, for "did you mean" hints."""
    keys: list[str] = []
    for k, v in node.items():
        full = f"{prefix}{k}"
        keys.append(full)
        if isinstance(v, DictConfig):
            keys.extend(_all_keys(v, full + "."))
    return keys


def _hint(key: str, schema: DictConfig) -> str:
    keys = _all_keys(schema)
    leaf = key.split(".")[-1]
    close = (
        difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
        or [k for k in keys if k.split(".")[-1] == leaf][:1]
        or difflib.get_close_matches(leaf, keys, n=1, cutoff=0.6)
    )
    return f" (did you mean '{close[0]}'?)" if close else ""


def _merge(schema: DictConfig, other: Any, source: str) -> DictConfig:
    try:
        return OmegaConf.merge(schema, other)
    except ConfigKeyError as e:
        key = e.full_key or str(e.key)
        raise UserError(f"unknown config key '{key}' in {source}{_hint(key, schema)}") from None
    except ValidationError as e:
        msg = (e.msg or str(e) or type(e).__name__).splitlines()[0]  # some errors carry no msg
        where = f"bad value for '{e.full_key}'" if e.full_key else "invalid config"
        raise UserError(f"{where} in {source}: {msg}") from None
    except OmegaConfBaseException as e:
        raise UserError(f"invalid config in {source}: {str(e).splitlines()[0]}") from None


def parse_overrides(overrides: list[str]) -> DictConfig:
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise UserError(f"override '{item}' is not of the form key=value (e.g. training.lr=1e-3)")
    try:
        return OmegaConf.from_dotlist(list(overrides))
    except Exception as e:  # noqa: BLE001 - OmegaConf raises several grammar errors
        raise UserError(f"cannot parse overrides {overrides}: {str(e).splitlines()[0]}") from None


def _yaml_problem(e: Exception) -> str:
    """PyYAML's position and reason in one line: "line 3, column 7: mapping values are not allowed here".

    Its message spans several lines (context, a copy of the line, a caret); the first line alone
    ("while scanning for the next token") says neither where nor what.
    """
    mark, problem = getattr(e, "problem_mark", None), getattr(e, "problem", None)
    if mark is None or not problem:
        return str(e).splitlines()[0] if str(e) else type(e).__name__
    where = f"line {mark.line + 1}, column {mark.column + 1}"
    context = getattr(e, "context", None)
    return f"{where}: {problem}" + (f" ({context})" if context else "")


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults ← YAML file ← dotted overrides, type-checked and validated; raises UserError."""
    schema = OmegaConf.structured(Config)
    cfg = schema
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise UserError(f"config file '{path}' not found (see configs/ for examples)")
        try:
            loaded = OmegaConf.load(p)
        except Exception as e:  # noqa: BLE001 - YAML errors come in several types
            raise UserError(f"cannot read config '{path}': {_yaml_problem(e)}") from None
        if not isinstance(loaded, DictConfig):
            raise UserError(f"config '{path}' must be a mapping of sections (e.g. 'training: ...')")
        cfg = _merge(cfg, loaded, str(path))
    if overrides:
        cfg = _merge(cfg, parse_overrides(overrides), "command-line overrides")
    try:
        obj: Config = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    except OmegaConfBaseException as e:  # an unresolvable ${...} interpolation surfaces only here
        raise UserError(f"bad value for '{e.full_key}': {str(e).splitlines()[0]}") from None
    validate(obj)
    return obj


def _check(cond: bool, key: str, value: Any, expected: str) -> None:
    if not cond:
        raise UserError(f"{key}={value!r} is out of range: expected {expected}")


def _float_fields(node: Any, prefix: str = "") -> dict[str, float]:
    """Every float-valued key of the config, dotted: they must all be finite (no nan/inf from YAML)."""
    out: dict[str, float] = {}
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if dataclasses.is_dataclass(value):
            out.update(_float_fields(value, f"{prefix}{f.name}."))
        elif isinstance(value, float):
            out[f"{prefix}{f.name}"] = value
    return out


def validate(cfg: Config) -> None:
    """Range and choice checks the type system cannot express."""
    for key, value in _float_fields(cfg).items():
        _check(math.isfinite(value), key, value, "a finite number")
    _check(cfg.task.name in TASKS, "task.name", cfg.task.name, "one of " + ", ".join(TASKS))
    _check(
        cfg.algorithm.name in ALGORITHMS,
        "algorithm.name",
        cfg.algorithm.name,
        "one of " + ", ".join(ALGORITHMS),
    )
    _check(cfg.model.preset in PRESETS, "model.preset", cfg.model.preset, "one of " + ", ".join(PRESETS))
    _check(cfg.model.source in ("scratch", "hf"), "model.source", cfg.model.source, "scratch or hf")
    if cfg.model.source == "hf" and not cfg.model.path:
        raise UserError("model.source=hf needs model.path=/local/dir (a transformers model directory)")
    _check(cfg.run.device in ("auto", "cpu", "cuda"), "run.device", cfg.run.device, "auto, cpu or cuda")
    _check(
        cfg.run.dtype in ("float32", "bfloat16", "auto"),
        "run.dtype",
        cfg.run.dtype,
        "float32, bfloat16 or auto",
    )
    _check(
        cfg.distributed.strategy in ("ddp", "fsdp"),
        "distributed.strategy",
        cfg.distributed.strategy,
        "ddp or fsdp",
    )
    _check(
        cfg.distributed.backend in ("auto", "gloo", "nccl"),
        "distributed.backend",
        cfg.distributed.backend,
        "auto, gloo or nccl",
    )
    _check(
        cfg.astarpo.v_star_source in ("importance", "reference", "table"),
        "astarpo.v_star_source",
        cfg.astarpo.v_star_source,
        "importance, reference or table",
    )
    _check(
        cfg.astarpo.credit in ("trajectory", "turn"),
        "astarpo.credit",
        cfg.astarpo.credit,
        "trajectory or turn",
    )
    _check(
        cfg.astarpo.min_state_visits >= 1, "astarpo.min_state_visits", cfg.astarpo.min_state_visits, ">= 1"
    )
    _check(
        cfg.astarpo.credit != "turn" or cfg.rollout.history >= 0,
        "astarpo.credit",
        cfg.astarpo.credit,
        "trajectory when rollout.history=-1 (turn credit needs one training sequence per turn: history >= 0)",
    )
    _check(
        cfg.logging.wandb_mode in ("online", "offline"),
        "logging.wandb_mode",
        cfg.logging.wandb_mode,
        "online|offline",
    )
    positive = {
        "task.num_train": cfg.task.num_train,
        "task.num_test": cfg.task.num_test,
        "task.num_numbers": cfg.task.num_numbers,
        "task.max_number": cfg.task.max_number,
        "task.max_target": cfg.task.max_target,
        "task.digits_a": cfg.task.digits_a,
        "task.digits_b": cfg.task.digits_b,
        "task.max_turns": cfg.task.max_turns,
        "task.max_actions_per_turn": cfg.task.max_actions_per_turn,
        "model.max_seq_len": cfg.model.max_seq_len,
        "pretrain.steps": cfg.pretrain.steps,
        "pretrain.batch_size": cfg.pretrain.batch_size,
        "pretrain.eval_problems": cfg.pretrain.eval_problems,
        "rollout.max_new_tokens": cfg.rollout.max_new_tokens,
        "astarpo.num_value_samples": cfg.astarpo.num_value_samples,
        "astarpo.num_trajectories": cfg.astarpo.num_trajectories,
        "training.total_iterations": cfg.training.total_iterations,
        "training.eval_problems": cfg.training.eval_problems,
        "training.checkpoint_every": cfg.training.checkpoint_every,
        "training.keep_last": cfg.training.keep_last,
        "training.update_epochs": cfg.training.update_epochs,
        "num_completions": cfg.num_completions,
        "distributed.timeout_s": cfg.distributed.timeout_s,
    }
    for key, value in positive.items():
        _check(value > 0, key, value, "a positive number")
    _check(2 <= cfg.task.num_numbers <= 5, "task.num_numbers", cfg.task.num_numbers, "2..5")
    _check(
        not (cfg.task.name == "countdown" and cfg.task.scratchpad and cfg.task.num_numbers != 3),
        "task.num_numbers",
        cfg.task.num_numbers,
        "3 with task.scratchpad (the search trace combines two numbers, then the third)",
    )
    _check(
        cfg.task.name != "countdown_turns" or cfg.task.max_turns >= cfg.task.num_numbers - 1,
        "task.max_turns",
        cfg.task.max_turns,
        f">= task.num_numbers - 1 = {cfg.task.num_numbers - 1} (one operation a turn)",
    )
    _check(
        cfg.task.restart or not cfg.task.show_tried,
        "task.show_tried",
        cfg.task.show_tried,
        "false unless task.restart=true (without restart there is only one try to show)",
    )
    _check(
        1 <= cfg.task.digits_a <= 9 and 1 <= cfg.task.digits_b <= 9,
        "task.digits_a/b",
        cfg.task.digits_a,
        "1..9",
    )
    _check(cfg.task.trace in ("attempts", "backward"), "task.trace", cfg.task.trace, "attempts or backward")
    _check(
        cfg.task.scratchpad_errors in ("slip", "shift"),
        "task.scratchpad_errors",
        cfg.task.scratchpad_errors,
        "slip or shift",
    )
    _check(
        cfg.task.demos in ("heuristic", "optimal", "search"),
        "task.demos",
        cfg.task.demos,
        "heuristic, optimal or search",
    )
    _check(
        cfg.task.demos != "search"
        or (cfg.task.name == "countdown_turns" and cfg.task.restart and cfg.task.show_tried),
        "task.demos",
        cfg.task.demos,
        "search only with task.name=countdown_turns task.restart=true task.show_tried=true",
    )
    _check(0.0 <= cfg.task.demo_restarts <= 1.0, "task.demo_restarts", cfg.task.demo_restarts, "0..1")
    _check(
        cfg.task.demos == "search" or cfg.task.demo_restarts == TaskConfig.demo_restarts,
        "task.demo_restarts",
        cfg.task.demo_restarts,
        f"{TaskConfig.demo_restarts} unless task.demos=search (it thins the search corpus's restarts)",
    )
    _check(0.0 <= cfg.task.demo_checks <= 1.0, "task.demo_checks", cfg.task.demo_checks, "0..1")
    _check(
        cfg.task.demo_checks == 0
        or (cfg.task.demos == "search" and cfg.rollout.history == 0 and cfg.task.num_numbers == 3),
        "task.demo_checks",
        cfg.task.demo_checks,
        "0 unless task.demos=search, task.num_numbers=3 and rollout.history=0 (drills are separate "
        "two-number states)",
    )
    _check(2 <= cfg.task.size <= 12, "task.size", cfg.task.size, "2..12")
    _check(all(2 <= n <= 12 for n in cfg.task.sizes), "task.sizes", list(cfg.task.sizes), "sizes in 2..12")
    _check(0.0 < cfg.task.p_frozen <= 1.0, "task.p_frozen", cfg.task.p_frozen, "0 < p <= 1")
    _check(
        0 <= cfg.pretrain.num_problems <= cfg.task.num_train,
        "pretrain.num_problems",
        cfg.pretrain.num_problems,
        f"0..task.num_train={cfg.task.num_train} (0 = all training problems)",
    )
    _check(
        0 <= cfg.training.num_problems <= cfg.task.num_train,
        "training.num_problems",
        cfg.training.num_problems,
        f"0..task.num_train={cfg.task.num_train} (0 = all training problems)",
    )
    _check(0.0 <= cfg.pretrain.skill <= 1.0, "pretrain.skill", cfg.pretrain.skill, "0..1")
    _check(cfg.pretrain.pool >= 0, "pretrain.pool", cfg.pretrain.pool, "0 (the default) or more sequences")
    for key, value in {
        "pretrain.lr": cfg.pretrain.lr,
        "training.lr": cfg.training.lr,
        "astarpo.beta": cfg.astarpo.beta,
        "astarpo.beta2": cfg.astarpo.beta2,
        "rollout.temperature": cfg.rollout.temperature,
        "training.grad_clip": cfg.training.grad_clip,
    }.items():
        _check(value > 0, key, value, "a value > 0")
    for key, value in {"pretrain.lr": cfg.pretrain.lr, "training.lr": cfg.training.lr}.items():
        _check(value <= 10.0, key, value, "at most 10 (AdamW steps move each weight by about lr)")
    _check(0.0 < cfg.rollout.top_p <= 1.0, "rollout.top_p", cfg.rollout.top_p, "0 < top_p <= 1")
    _check(cfg.rollout.history >= -1, "rollout.history", cfg.rollout.history, "-1 (all) or >= 0")
    _check(
        0.0 < cfg.algorithm.starpo_s_keep <= 1.0,
        "algorithm.starpo_s_keep",
        cfg.algorithm.starpo_s_keep,
        "0 < f <= 1",
    )
    _check(
        cfg.training.lr_schedule in LR_SCHEDULES,
        "training.lr_schedule",
        cfg.training.lr_schedule,
        " or ".join(LR_SCHEDULES),
    )
    _check(
        0.0 <= cfg.training.lr_final <= 1.0,
        "training.lr_final",
        cfg.training.lr_final,
        "0..1 (of training.lr)",
    )
    _check(cfg.training.eval_every >= 0, "training.eval_every", cfg.training.eval_every, ">= 0")
    _check(cfg.training.entropy_coef >= 0, "training.entropy_coef", cfg.training.entropy_coef, ">= 0")
    _check(cfg.astarpo.kl_coef >= 0, "astarpo.kl_coef", cfg.astarpo.kl_coef, ">= 0")
    _check(
        cfg.astarpo.huber_delta >= 0,
        "astarpo.huber_delta",
        cfg.astarpo.huber_delta,
        ">= 0 (0 = squared loss)",
    )
    _check(cfg.run.threads >= 0, "run.threads", cfg.run.threads, ">= 0")
    _check(0 <= cfg.run.seed < 2**32, "run.seed", cfg.run.seed, "0 <= seed < 2**32 (numpy's range)")
    _check(cfg.task.seed >= 0, "task.seed", cfg.task.seed, ">= 0")
    _check(
        cfg.rollout.max_new_tokens < cfg.model.max_seq_len,
        "rollout.max_new_tokens",
        cfg.rollout.max_new_tokens,
        f"fewer than model.max_seq_len={cfg.model.max_seq_len} (the prompt needs room too)",
    )
    _check(cfg.training.max_kl_rise >= 0, "training.max_kl_rise", cfg.training.max_kl_rise, ">= 0 (0 = off)")
    _check(
        cfg.training.ref_reset_every >= 0,
        "training.ref_reset_every",
        cfg.training.ref_reset_every,
        ">= 0 (0 = never)",
    )
    _check(cfg.training.max_bad_steps >= 0, "training.max_bad_steps", cfg.training.max_bad_steps, ">= 0")
    _check(
        cfg.num_completions >= 2 or cfg.algorithm.name in ("astarpo", "ppo"),
        "num_completions",
        cfg.num_completions,
        ">= 2 for group-based algorithms (ragen, grpo, rloo)",
    )


def ineffective_settings(cfg: Config) -> list[str]:
    """One line per key that is set away from its default but has no effect with this algorithm.

    Why: the batch keys keep the names users' configs already use (``astarpo.num_trajectories`` is the
    episode budget of every algorithm, ``num_completions`` the group size of the group-based ones), so
    a key that does nothing is said out loud instead of being silently ignored.
    """
    notes = []
    default = Config()
    name = cfg.algorithm.name
    if name in ("astarpo", "ppo") and cfg.num_completions != default.num_completions:
        notes.append(
            f"num_completions={cfg.num_completions} has no effect with algorithm.name={name} (one sample per "
            f"prompt; astarpo.num_trajectories={cfg.astarpo.num_trajectories} prompts an iteration)"
        )
    if name != "ragen":
        for key in ("v_star_source",):
            if getattr(cfg.astarpo, key) != getattr(default.astarpo, key):
                notes.append(f"astarpo.{key} is used by algorithm.name=ragen only")
        if cfg.algorithm.starpo_s_keep != default.algorithm.starpo_s_keep:
            notes.append("algorithm.starpo_s_keep (StarPO-S) is used by algorithm.name=ragen only")
    if name not in ("astarpo", "ragen"):
        for key in ("beta", "beta2", "huber_delta", "kl_coef"):
            if getattr(cfg.astarpo, key) != getattr(default.astarpo, key):
                notes.append(f"astarpo.{key} is used by algorithm.name=astarpo and ragen only")
    stage1 = name == "astarpo" or (name == "ragen" and cfg.astarpo.v_star_source == "table")
    if not stage1 and cfg.astarpo.num_value_samples != default.astarpo.num_value_samples:
        notes.append(
            "astarpo.num_value_samples (stage 1) is used by algorithm.name=astarpo, and by ragen with "
            "astarpo.v_star_source=table, only"
        )
    if name != "astarpo":
        for key in ("credit", "min_state_visits"):
            if getattr(cfg.astarpo, key) != getattr(default.astarpo, key):
                notes.append(f"astarpo.{key} (stage 1) is used by algorithm.name=astarpo only")
    if cfg.training.lr_schedule == "constant" and cfg.training.lr_final != default.training.lr_final:
        notes.append("training.lr_final has no effect with training.lr_schedule=constant")
    if 0 < cfg.training.total_iterations <= cfg.training.ref_reset_every:
        notes.append(
            f"training.ref_reset_every={cfg.training.ref_reset_every} is not below "
            f"training.total_iterations={cfg.training.total_iterations}: π_ref is never reset"
        )
    if name != "grpo" and dataclasses.asdict(cfg.grpo) != dataclasses.asdict(default.grpo):
        notes.append(f"grpo.* settings have no effect with algorithm.name={name}")
    if name != "ppo" and dataclasses.asdict(cfg.ppo) != dataclasses.asdict(default.ppo):
        notes.append(f"ppo.* settings have no effect with algorithm.name={name}")
    return notes


def to_yaml(cfg: Config) -> str:
    """The resolved config as YAML, as saved into every run directory."""
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def save_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(to_yaml(cfg))
