"""Export a checkpoint or model directory to a Hugging Face ``LlamaForCausalLM`` directory (+ tokenizer).

    python scripts/export_hf.py --checkpoint runs/default --out exported/default
    python scripts/export_hf.py --checkpoint .cache/base_models/<key> --out exported/base

--checkpoint accepts a run directory, its checkpoints/ directory, ``latest``, an ``iter_NNNNNN``
directory, or a plain model directory (e.g. a cached base model). The result loads offline with
``AutoModelForCausalLM.from_pretrained(out)`` and ``AutoTokenizer.from_pretrained(out)``; see
docs/huggingface.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tinyzero.errors import require_packages, run_cli  # noqa: E402

require_packages()  # one line naming the fix (e.g. activate .venv) instead of a ModuleNotFoundError

from tinyzero.cli import _Parser  # noqa: E402


def main() -> int:
    parser = _Parser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="run dir, checkpoint dir, latest, or model dir")
    parser.add_argument("--out", required=True, help="output directory (created; files are overwritten)")
    args = parser.parse_args()
    from tinyzero.checkpoint import export_hf  # after argparse: --help stays fast

    out = export_hf(args.checkpoint, args.out)
    print(f"exported {args.checkpoint} to {out} (LlamaForCausalLM + tokenizer)")
    return 0


if __name__ == "__main__":
    run_cli(main)
