"""Wall-clock ratios of the kit's runs, measured side by side on this machine.

    python benchmarks/speed.py            # 3 alternating repetitions, medians

Prints:
  main.py / imports        `python main.py` against `python -c "import torch, gymnasium, tyro, tabulate"`
                           (target <= 2.5: the floor of any run is importing its libraries)
  10 seeds / 1 seed        `python main.py --num-seeds 10` against `python main.py` (target <= 3)
  10 seeds, input masks / 1 seed   the same with --mask-inputs (target <= 2)
"""

import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from decomposition.script import POSITIVE, ScriptError, check, fails_on, out_of_range, start  # noqa: E402

COMMANDS = {
    "imports": ["-c", "import torch, gymnasium, tyro, tabulate"],
    "main.py": ["main.py"],
    "10 seeds": ["main.py", "--num-seeds", "10"],
    "10 seeds, input masks": ["main.py", "--num-seeds", "10", "--mask-inputs"],
}
RATIOS = [("main.py", "imports", 2.5), ("10 seeds", "main.py", 3.0), ("10 seeds, input masks", "main.py", 2.0)]


@dataclass
class Args:
    repetitions: int = 3
    """runs of each command, alternated so that both see the same machine load"""


def wall_time(arguments, cwd=ROOT):
    """Seconds `python ARGUMENTS` takes in folder cwd; a failing command ends the benchmark."""
    start = time.perf_counter()
    try:  # the command's own error line, if it fails, ends this one; nothing else of its output is shown
        subprocess.run([sys.executable, *arguments], cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    except subprocess.CalledProcessError as failure:
        last = failure.stderr.strip().splitlines()[-1:] or [f"exit status {failure.returncode}"]
        raise ScriptError(f"python {' '.join(arguments)} failed: {last[0]}") from None
    return time.perf_counter() - start


@fails_on()
def main(args):
    check(out_of_range(args, {"repetitions": POSITIVE}))
    times = {name: [] for name in COMMANDS}
    for _ in range(args.repetitions):
        for name, arguments in COMMANDS.items():
            times[name].append(wall_time(arguments))
    median = {name: statistics.median(values) for name, values in times.items()}
    for name, value in median.items():
        print(f"{name:<24} {value:6.2f} s   (runs: {', '.join(f'{t:.2f}' for t in times[name])})")
    for numerator, denominator, target in RATIOS:
        ratio = median[numerator] / median[denominator]
        verdict = "" if target is None else f"  target <= {target}: {'met' if ratio <= target else 'MISSED'}"
        print(f"ratio {numerator} / {denominator}: {ratio:.2f}{verdict}")


if __name__ == "__main__":
    start(main, Args, unchanged="nothing was written")
