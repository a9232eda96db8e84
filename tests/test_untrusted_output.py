"""Model output is untrusted text: property-based fuzzing of every reward function and action parser.

For thousands of generated strings per run (arbitrary unicode, huge exponents, deep nesting, 1 MB inputs,
code-injection attempts, answer tags in every arrangement), each call must
  - return a value of the documented kind (never raise),
  - trigger no code execution or process/file access (a Python audit hook watches for exec, compile,
    open, os.system, subprocess, ... while the call runs, so `eval`/`exec` anywhere underneath is caught),
  - stay within a work bound: at most WORK_BOUND Python/C function calls (counted with sys.setprofile,
    deterministic on any machine), and never hang (a 5 s alarm aborts a call that would).
And sampling stops at max_new_tokens whatever token stream the model emits.

Run: pytest tests/test_untrusted_output.py -q              (~6,000 cases, ~15 s)
     TINYZERO_FUZZ_EXAMPLES=50000 pytest tests/test_untrusted_output.py -q -s   (the soak quoted in
     docs/reliability.md; -s prints the cases run and the slowest call)
"""

from __future__ import annotations

import math
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinyzero.config import TaskConfig
from tinyzero.environments import countdown, make_task, multiplication
from tinyzero.environments.arith import evaluate, numbers_used
from tinyzero.environments.frozenlake_env import FrozenLakeTextEnv, parse_actions
from tinyzero.models.io import build_model
from tinyzero.models.tokenizer import CharTokenizer
from tinyzero.rollout import SamplingSettings, run_episodes

EXAMPLES = int(os.environ.get("TINYZERO_FUZZ_EXAMPLES", "1000"))
WORK_BOUND = 5_000  # function calls per scoring call; the largest seen in these tests is a few hundred
HANG_SECONDS = 5.0
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # fixed seed: a CI run is reproducible
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MB = 1 << 20
TOK = CharTokenizer()

# ----------------------------------------------------------------------------- the guard around each call

FORBIDDEN_EVENTS = (
    "exec",
    "compile",
    "open",
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.fork",
    "subprocess.Popen",
    "socket.connect",
    "ctypes.dlopen",
    "import",
    "builtins.input",
    "pickle.find_class",
)
_watch = {"on": False, "events": []}


def _audit(event: str, args: tuple) -> None:
    if _watch["on"] and event.startswith(FORBIDDEN_EVENTS):
        _watch["events"].append(event)


sys.addaudithook(_audit)  # cannot be removed; does nothing unless a guarded call is running


class Hang(BaseException):
    """Raised by the alarm; a BaseException so that the code under test cannot swallow it."""


stats: Counter[str] = Counter()
slowest: dict[str, float] = {}


def guarded(name: str, fn: Callable[..., Any], *args: Any, limit: float = HANG_SECONDS) -> Any:
    """Call ``fn(*args)`` under the audit watch, the work counter and the hang alarm; assert all three."""
    calls = [0]

    def profile(frame, event, arg) -> None:
        if event in ("call", "c_call"):
            calls[0] += 1

    def alarm(signum, frame) -> None:
        raise Hang(f"{name} ran over {limit} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    _watch["on"], _watch["events"] = True, []
    t0 = time.perf_counter()
    sys.setprofile(profile)
    try:
        result = fn(*args)
    finally:
        sys.setprofile(None)
        elapsed = time.perf_counter() - t0
        _watch["on"] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert _watch["events"] == [], f"{name} triggered {_watch['events']}"
    assert calls[0] <= WORK_BOUND, f"{name} made {calls[0]} calls"
    stats[name] += 1
    slowest[name] = max(slowest.get(name, 0.0), elapsed)
    return result


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    if stats:  # shown with -s; docs/reliability.md quotes these
        for name in sorted(stats):
            print(f"\nfuzz {name}: {stats[name]} cases, slowest call {slowest[name] * 1e3:.2f} ms", end="")
        print(f"\nfuzz total: {sum(stats.values())} cases")


# ----------------------------------------------------------------------------- hostile strings

INJECTIONS = [
    "__import__('os').system('touch /tmp/tinyzero_pwned')",
    "exec(\"import os; os.system('id')\")",
    "eval('1+1')",
    "open('/etc/passwd').read()",
    "().__class__.__base__.__subclasses__()",
    "lambda: 0",
    "globals()",
    "${jndi:ldap://x/a}",
    "{{7*7}}",
    "'; DROP TABLE runs; --",
    "$(rm -rf /)",
    "`id`",
    "%s%s%s%n",
    "\\x00\\u0000",
    "import os",
    "1; import os",
    "1+1 if True else __import__('os')",
]
HUGE = [
    "9**9**9**9",
    "2**(2**(2**100))",
    "1e999999999",
    "10^1000000",
    "1" * 5000,
    "99999999999999999999*99999999999999999999",
    "1/0",
    "0/0",
    "(1/3)*" * 60 + "3",
    "-" * 5000 + "1",
]
UNICODE = [
    "\u202e1+2\u202c",  # right-to-left override
    "\u200b\u200d\u2060",  # zero-width characters
    "\uff11\uff12\uff0b\uff13",  # fullwidth digits and plus
    "\u0661\u0662",  # Arabic-Indic digits
    "\u00b2\u00b3",  # superscripts (str.isdigit() is True)
    "e\u0301\u0301\u0301",  # combining marks
    "\ud800",  # a lone surrogate
    "\U0001f600",
    "\x00\x1b[2J\r",
    "\ufeff",
]
STRUCTURE = [
    "<answer>",
    "</answer>",
    "<answer></answer>",
    "(",
    ")",
    "((((",
    "))))",
    "Left",
    "Down",
    "Up",
    ",",
]
FRAGMENTS = INJECTIONS + HUGE + UNICODE + STRUCTURE


def nested(depth: int, inner: str) -> str:
    return "(" * depth + inner + ")" * depth


@st.composite
def hostile(draw: st.DrawFn) -> str:
    """One string from a mixture: free unicode, fragments glued together, deep nesting, 1 MB floods,
    wrapped in answer tags in several ways."""
    kind = draw(st.integers(0, 5))
    if kind == 0:
        body = draw(st.text(max_size=300))
    elif kind == 1:
        parts = draw(st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=20)), max_size=12))
        body = draw(st.sampled_from(["", " ", "+", "*"])).join(parts)
    elif kind == 2:
        body = nested(draw(st.integers(1, 100_000)), draw(st.sampled_from(["1", "", "1+", "-1", "Left"])))
    elif kind == 3:
        fragment = draw(st.sampled_from(FRAGMENTS)) or "x"
        body = fragment * (draw(st.integers(1, MB)) // len(fragment) + 1)  # up to ~1 MB
    elif kind == 4:
        body = draw(st.text(alphabet="0123456789+-*/()x \u00d7\u00f7.e^", max_size=200))
    else:
        body = "<answer>" * draw(st.integers(0, 50_000)) + draw(st.text(max_size=50))
    wrap = draw(st.integers(0, 4))
    if wrap == 1:
        body = f"<answer>{body}</answer>"
    elif wrap == 2:
        body = f"<answer>1</answer>{body}<answer>{body[:100]}</answer>"
    elif wrap == 3:
        body = f"{body}</answer>"
    return body


big_int = st.one_of(st.integers(-(10**6), 10**6), st.integers(-(10**40), 10**40))


# ----------------------------------------------------------------------------- reward functions and parsers

ENV = FrozenLakeTextEnv(size=4, max_turns=1000, max_actions_per_turn=3)


@FUZZ
@given(hostile(), big_int, st.lists(big_int, max_size=6), big_int, big_int, st.integers(1, 5))
def test_every_reward_function_and_parser_on_hostile_text(
    text: str, target: int, numbers: list[int], a: int, b: int, k: int
) -> None:
    """One generated string goes through every scorer and parser (generation is the costly part)."""
    score = guarded("countdown.compute_score", countdown.compute_score, text, target, numbers)
    assert score in (0.0, 0.1, 1.0)
    score = guarded("multiplication.compute_score", multiplication.compute_score, text, a, b)
    assert score in (0.0, 0.1, 1.0)
    value = guarded("arith.evaluate", evaluate, text)
    assert value is None or (abs(value.numerator) <= 10**12 and value.denominator <= 10**12)
    used = guarded("arith.numbers_used", numbers_used, text)
    assert isinstance(used, list) and all(isinstance(n, int) for n in used)
    ids = guarded("frozenlake.parse_actions", parse_actions, text, k)
    assert ids is None or (1 <= len(ids) <= k and set(ids) <= {0, 1, 2, 3})
    ENV.reset(seed=len(text))
    obs, reward, terminated, truncated, info = guarded("FrozenLakeTextEnv.step", ENV.step, text)
    assert ENV.observation_space.contains(obs) and math.isfinite(reward)
    assert info["format_ok"] is (parse_actions(text, 3) is not None)


def test_the_guard_catches_what_it_claims() -> None:
    """The fuzz tests can fail: eval, file access, imports, runaway work and hangs are all caught."""
    for fn, arg in ((eval, "1+1"), (exec, "x = 1"), (open, "/dev/null"), (__import__, "sqlite3")):
        with pytest.raises(AssertionError, match="triggered"):
            guarded("probe", fn, arg)
    with pytest.raises(AssertionError, match="made"):
        guarded("probe", lambda n: [abs(i) for i in range(n)], WORK_BOUND + 1)
    with pytest.raises(Hang):
        guarded("probe", time.sleep, 10, limit=0.1)


TASKS = {
    name: make_task(TaskConfig(name=name, num_train=16, num_test=8))
    for name in ("countdown", "multiplication", "frozenlake")
}
PROBLEMS = {name: task.problems("test") for name, task in TASKS.items()}


@settings(max_examples=max(100, EXAMPLES // 5), deadline=None, derandomize=True)
@given(st.sampled_from(sorted(TASKS)), st.lists(hostile(), min_size=1, max_size=4), st.integers(0, 7))
def test_task_episodes_accept_any_text(name: str, actions: list[str], i: int) -> None:
    """The rollout path: Task.episode(...).step(text) for every turn the model writes, to the end."""
    episode = TASKS[name].episode(PROBLEMS[name][i], seed=i)
    for text in actions:
        if episode.done:
            break
        result = guarded(f"{name} episode.step", episode.step, text)
        assert math.isfinite(result.reward) and isinstance(result.observation, str)


# ----------------------------------------------------------------------------- whatever the model emits


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("nano", TOK.vocab_size, 128).eval()


def scripted(model: torch.nn.Module, script: list[int]):
    """Make the real model emit ``script`` (cycled) whatever its weights say: a hook on its output head."""
    step = {"t": 0}

    def hook(module, inputs, output):
        forced = torch.full_like(output, -1e4)
        forced[..., script[step["t"] % len(script)]] = 1e4
        step["t"] += 1
        return forced

    return model.lm_head.register_forward_hook(hook)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    st.sampled_from(sorted(TASKS)),
    st.lists(st.integers(0, TOK.vocab_size - 1), min_size=1, max_size=40),
    st.integers(1, 16),
    st.booleans(),
)
def test_sampling_stops_at_max_new_tokens_whatever_the_model_emits(
    model: torch.nn.Module, name: str, script: list[int], max_new: int, greedy: bool
) -> None:
    task = TASKS[name]
    settings_ = SamplingSettings(max_new_tokens=max_new, greedy=greedy)
    handle = scripted(model, script)
    try:
        gen = torch.Generator().manual_seed(0)
        episodes = run_episodes(model, TOK, task, PROBLEMS[name][:3], settings_, gen)
    finally:
        handle.remove()
    for ep in episodes:
        assert ep.done and 1 <= len(ep.turns) <= task.max_turns
        for turn, text in zip(ep.turns, ep.actions, strict=True):
            assert 1 <= len(turn.action_ids) <= max_new  # the EOS step counts; never more than the cap
            assert text == TOK.decode(turn.action_ids)
            if TOK.eos_id not in turn.action_ids:
                assert len(turn.action_ids) == max_new
        assert math.isfinite(ep.reward) and math.isfinite(ep.sample_logprob)


@settings(max_examples=max(100, EXAMPLES // 5), deadline=None, derandomize=True)
@given(st.lists(st.integers(-(2**63), 2**63 - 1), max_size=200))
def test_decoding_any_token_ids_never_raises(ids: list[int]) -> None:
    decoded = guarded("CharTokenizer.decode", TOK.decode, ids)
    assert isinstance(decoded, str) and len(decoded) <= len(ids)
