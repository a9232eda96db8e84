"""Evaluate a saved checkpoint or base model on held-out problems; plot and compare training runs.

    python evaluate.py --checkpoint runs/default/checkpoints/latest                 # console table
    python evaluate.py --checkpoint runs/default --samples 16 --json eval.json --report eval.md
    python evaluate.py --checkpoint .cache/base_models/<key> --config configs/default.yaml   # a base model
    python evaluate.py --plot runs/fl-ragen runs/fl-grpo --out plots/                # learning curves (PNG)
    python evaluate.py --compare runs/fl-ragen runs/fl-grpo                          # markdown table
    python evaluate.py --checkpoint runs/default --episodes 6 --samples 1 --gif episodes.gif   # animated
    python evaluate.py --checkpoint runs/frozenlake_slippery --exact      # + exact greedy success per map

Figures, JSON keys and failure kinds are documented in tinyzero/evaluation/__init__.py.
"""

from __future__ import annotations

from pathlib import Path

from tinyzero.errors import UserError, require_packages, run_cli

require_packages()  # one line naming the fix (e.g. activate .venv) instead of a ModuleNotFoundError

from tinyzero.cli import config_parser  # noqa: E402

SLIPPERY = {"no": [False], "yes": [True], "both": [False, True]}


def build_parser():
    parser = config_parser(__doc__)
    parser.description = __doc__
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--checkpoint", metavar="PATH", help="checkpoint, run dir, or base-model dir to evaluate"
    )
    mode.add_argument("--plot", nargs="+", metavar="RUN", help="run dirs: write learning-curve PNGs")
    mode.add_argument(
        "--compare", nargs="+", metavar="RUN", help="run dirs: print and write a markdown table"
    )
    ev = parser.add_argument_group("evaluation (--checkpoint)")
    ev.add_argument(
        "--task", help="expected task (countdown, multiplication, frozenlake); a base model's task"
    )
    ev.add_argument(
        "--episodes", type=int, help="held-out problems to evaluate (default training.eval_problems)"
    )
    ev.add_argument(
        "--samples",
        type=int,
        default=8,
        help="K sampled episodes per problem, for pass@k (8). The default evaluation plays "
        "training.eval_problems (200) × (1 greedy + 8 sampled) = 1,800 episodes: about 2 minutes for the "
        "default FrozenLake model on 2 CPU cores; --episodes 50 --samples 4 takes a fraction of that",
    )
    ev.add_argument("--no-progress", action="store_true", help="no progress bar")
    ev.add_argument("--seed", type=int, help="seed of sampling and slippery dynamics (default run.seed + 7)")
    ev.add_argument("--json", metavar="FILE", help="write every figure as JSON here")
    ev.add_argument("--report", metavar="FILE", help="write a markdown report with failure examples here")
    ev.add_argument("--examples", type=int, default=3, help="failure examples per kind in the report (3)")
    ev.add_argument(
        "--pictures",
        type=int,
        metavar="N",
        help="FrozenLake: draw N greedy episodes next to the report (default 4 with --report, else 0)",
    )
    ev.add_argument(
        "--gif",
        metavar="FILE",
        help="frozenlake, countdown_turns: write an animated GIF of greedy episodes here, one after another "
        "(the agent moving on its map / the numbers left after each operation, then SUCCESS or FAILURE): "
        "the first N held-out problems (N = --gif-episodes), so --episodes 6 --samples 1 makes one in "
        "seconds; docs/tasks.md",
    )
    ev.add_argument(
        "--gif-episodes",
        type=int,
        default=6,
        metavar="N",
        help="episodes in the --gif (6; at most the problems evaluated, --episodes)",
    )
    ev.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        metavar="S",
        help="FrozenLake: map sizes to evaluate on; larger maps get max_turns scaled like the corner-to-"
        "corner path (8 turns on 4x4 -> 14 on 6x6), shown in the group's name",
    )
    ev.add_argument("--slippery", choices=sorted(SLIPPERY), help="FrozenLake: slipperiness to evaluate on")
    ev.add_argument(
        "--exact",
        action="store_true",
        help="FrozenLake with a Markov context: also the greedy policy's exact success per map (its move "
        "in every cell, evaluated on Gymnasium's transition table): no noise from slippery dynamics",
    )
    ev.add_argument("--ref", metavar="DIR", help="reference base model for the KL (default: the run's base)")
    ev.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    parser.add_argument(
        "--out", metavar="DIR", help="--plot/--compare output dir (default: the run dir, or plots/)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.plot or args.compare:
        runs = args.plot or args.compare
        out = Path(args.out) if args.out else Path(runs[0]) if len(runs) == 1 else Path("plots")
        if args.plot:
            from tinyzero.plots import plot_learning_curves

            for path in plot_learning_curves(runs, out):
                print(f"wrote {path}")
        else:
            from tinyzero.evaluation import compare_runs

            _, table = compare_runs(runs)
            print(table, end="")
            out.mkdir(parents=True, exist_ok=True)
            (out / "compare.md").write_text(table)
            print(f"wrote {out / 'compare.md'}")
        return 0

    from tinyzero import evaluation as E  # torch import after the arguments are known to be valid

    if args.episodes is not None and args.episodes < 1:
        raise UserError(
            f"--episodes {args.episodes}: evaluate at least 1 held-out problem (e.g. --episodes 100)"
        )
    if args.samples < 1:
        raise UserError(f"--samples {args.samples}: need at least 1 sample per problem (e.g. --samples 8)")
    if args.gif and args.gif_episodes < 1:
        raise UserError(f"--gif-episodes {args.gif_episodes}: animate at least 1 episode (e.g. 6)")
    src = E.load_source(args.checkpoint, args.task, args.config, args.overrides, args.device)
    if args.gif:
        E.check_gif_task(src.cfg.task.name)  # before minutes of evaluation, not after
    if args.exact:
        E.check_exact(src.cfg)
    ev = E.evaluate_source(
        src,
        problems=args.episodes,
        samples=args.samples,
        seed=args.seed,
        sizes=args.sizes,
        slippery=SLIPPERY[args.slippery] if args.slippery else None,
        ref_dir=args.ref,
        progress=not args.no_progress,
    )
    print(E.console_table(ev.figures))
    if args.exact:
        ev.figures["exact"] = E.exact_figures(src.model, src.tok, ev.records, src.cfg.rollout.max_new_tokens)
        for g in ev.figures["exact"]:
            ratio = f" = {g['ratio']:.3f} of it" if g["ratio"] is not None else ""
            value, optimum = g["exact_greedy_success"], g["optimum"]
            print(f"exact greedy success, {g['name']}: {value:.3f} (optimum {optimum:.3f}{ratio})")
    written = []
    if args.json:
        written.append(E.write_json(ev.figures, args.json))
    n_pictures = args.pictures if args.pictures is not None else (4 if args.report else 0)
    picture = None
    if n_pictures > 0 and src.cfg.task.name == "frozenlake":
        anchor = Path(args.report or args.json or "eval.md")
        picture = E.write_episode_pictures(ev, n_pictures, anchor.with_name(anchor.stem + "_episodes.png"))
        written.append(picture)
    if args.gif:
        written.append(E.write_evaluation_gif(ev, args.gif_episodes, args.gif))
        if len(ev.records) < args.gif_episodes:
            print(f"note: the GIF shows {len(ev.records)} episodes: only that many problems were evaluated")
    if args.report:
        report = Path(args.report)
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(E.markdown_report(ev, args.examples, picture.name if picture else None))
        written.append(report)
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    run_cli(main)
