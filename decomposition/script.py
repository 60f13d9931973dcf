"""What every entry script shares: parse the options, check them, run, and end cleanly.

    @fails_on(CheckpointError)          # errors that are the user's input: one line, exit 1
    def main(args):
        check(check_args(args))         # the first fault of the options, as ScriptError
        ...

    if __name__ == "__main__":
        start(main, Args, unchanged="--save-dir keeps its previous files")

Bad input ends a script with one `error: ...` line and exit status 1; Ctrl-C with exit status
130 and SIGTERM with 143, each with one line saying what was left unchanged. Files are written
whole or not at all (decomposition.files), so an interrupted run leaves nothing half-written.
"""

import contextlib
import ctypes
import dataclasses
import functools
import io
import math
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from typing import ClassVar

MEMORY_LIMIT = 4e9
"""Bytes a run may plan to use: a run whose estimate is larger is refused before any work."""


class ScriptError(Exception):
    """What ends a script with one error line and exit 1: bad input, or output it cannot write; the message says which."""


class SettingsError(ScriptError):
    """Settings outside their ranges, found by the library function given them (Settings.checked)."""


class Terminated(BaseException):
    """SIGTERM or SIGHUP, raised where the main thread is, like KeyboardInterrupt for Ctrl-C."""

    def __init__(self, signum=signal.SIGTERM):
        super().__init__(signum)
        self.signum = signum


def _terminate(signum, frame):
    raise Terminated(signum)


STOPPING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def stop_quietly_until_started():
    """Until start() takes over: Ctrl-C, SIGTERM or SIGHUP while a script imports its libraries ends
    it at once with one line (nothing is written yet). Each entry script calls this first."""
    def stop(signum, frame):
        os.write(2, b"error: interrupted before the run started; nothing was written\n")
        os._exit(128 + signum)
    for signum in STOPPING:
        signal.signal(signum, stop)


def start(main, args_type, unchanged):
    """Run main(parsed options) as a script. Ctrl-C exits with 130, SIGTERM with 143 and SIGHUP with
    129, each with one `error: ...; <unchanged>` line; `finally` blocks run either way, so temporary
    files and child processes are cleaned up."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    try:
        main(parse_args(args_type))
    except (KeyboardInterrupt, Terminated) as stop:
        for signum in STOPPING:  # a second signal while the interpreter shuts down would print a traceback
            signal.signal(signum, signal.SIG_IGN)
        if isinstance(stop, KeyboardInterrupt):
            print(f"error: interrupted; {unchanged}", file=sys.stderr)
            sys.exit(130)
        print(f"error: terminated; {unchanged}", file=sys.stderr)
        sys.exit(128 + stop.signum)
    for signum in STOPPING:  # the run is complete: a signal while the interpreter shuts down changes nothing
        signal.signal(signum, signal.SIG_IGN)


def fails_on(*errors):
    """Decorate a script's main(args): ScriptError and these error types (the user's input) end it
    with one `error: ...` line and exit status 1 (SystemExit, so tests can call main directly)."""
    def decorate(main):
        @functools.wraps(main)
        def checked(args):
            try:
                return main(args)
            except (ScriptError, *errors) as error:
                sys.exit("error: " + str(error).replace("\n", "\\n"))  # one line, whatever a path holds
        return checked
    return decorate


def parse_args(args_type):
    """tyro.cli(args_type). A bad option (unknown, without its value, of the wrong type, not one of
    the choices) ends the script with one `error: ...` line and exit status 1, like every other bad
    input, instead of tyro's framed message; --help is tyro's own."""
    import tyro  # here, so that importing this module first (stop_quietly_until_started) is quick
    empty = empty_list_option(args_type, sys.argv[1:])
    if empty:
        sys.exit(f"error: {empty} needs at least one value (leave it out for the default)")
    fault = contradiction(args_type, sys.argv[1:])
    if fault:
        sys.exit(f"error: {fault}")
    framed = io.StringIO()
    try:
        with contextlib.redirect_stderr(framed):
            return tyro.cli(args_type)
    except SystemExit as stop:
        if not stop.code:  # --help, printed on stdout
            raise
        sys.exit(f"error: {framed_message(framed.getvalue())}")


def empty_list_option(args_type, words):
    """The first option of a list type among `words` given with no value (followed by another option
    or by nothing), or None: tyro would read it as the empty list, which means "the default" to
    every script."""
    import typing
    lists = {"--" + name.replace("_", "-") for name, kind in typing.get_type_hints(args_type).items()
             if typing.get_origin(kind) in (tuple, list)}
    for word, following in zip(words, [*words[1:], None]):
        if word in lists and (following is None or following.startswith("--")):
            return word
    return None


def contradiction(args_type, words):
    """Two flags given together that contradict each other, as a message, or None: --X with --no-X,
    and the pairs of args_type.CONTRADICTIONS ({(flag, flag): why})."""
    given = {word.split("=")[0] for word in words if word.startswith("--")}
    for flag in sorted(given):
        if flag.startswith("--no-") and "--" + flag[5:] in given:
            return f"--{flag[5:]} and {flag} contradict each other: give one"
    for (first, second), why in getattr(args_type, "CONTRADICTIONS", {}).items():
        if first in given and second in given:
            return f"{first} and {second} contradict each other: {why}"
    return None


def framed_message(text):
    """The message of one of tyro's framed errors: the lines under its title, down to the first rule."""
    lines = [line.strip().strip("│╭╮╰╯").strip() for line in text.splitlines()]
    message = []
    for line in lines[1:]:
        if not line or line.startswith("─"):
            break
        message.append(line)
    message = " ".join(message) or "invalid command-line arguments (see --help)"
    return message.replace("Error parsing ", "cannot parse ", 1)


@dataclass(frozen=True)
class Range:
    """The values an option may take: low <= value <= high (low < value if low_open); NaN never."""
    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    words: str = ""
    """how the message states the range; by default from the bounds"""

    def holds(self, value):
        above = value > self.low if self.low_open else value >= self.low
        return above and value <= self.high  # False for NaN

    def describe(self):
        if self.words:
            return self.words
        if self.high == math.inf:
            return "a positive number" if self.low == 0 and self.low_open else f"a number >= {self.low:g}"
        return f"between {self.low:g} and {self.high:g}"


POSITIVE = Range(0, math.inf, low_open=True, words="a positive number")
"""Finite and above 0 (counts, sizes, learning rates)."""
NON_NEGATIVE = Range(0, math.inf)
"""Finite and at least 0 (coefficients, penalties)."""
FRACTION = Range(0, 1)
"""A discount or lambda."""


def out_of_range(args, ranges):
    """The first option of `args` outside its range ({field: Range}) as a message, or None.
    Infinite values are out of range unless the range says `high=inf` and the value is finite."""
    for name, allowed in ranges.items():
        value = getattr(args, name)
        if value is None:  # an optional setting left to its default
            continue
        if not (allowed.holds(value) and math.isfinite(value)):
            return f"--{name.replace('_', '-')} must be {allowed.describe()}, got {value}"
    return None


class Settings:
    """A settings dataclass that checks its own ranges: RANGES maps a field to its Range, and a
    subclass's fault() adds the checks that relate fields to each other or to the game."""
    RANGES: ClassVar[dict] = {}

    def fault(self):
        """The first fault of the settings as an `--option ...` message, or None."""
        return out_of_range(self, self.RANGES)

    def checked(self):
        """The settings themselves, or SettingsError naming their first fault."""
        fault = self.fault()
        if fault:
            raise SettingsError(fault)
        return self


def game_fault(args, rows=None, columns=None):
    """The message for a --game (resized by rows and columns) that cannot be played, or that names a
    size (NAME@RxC) other than the rows or columns also given, or None."""
    from combogrid import GameError, game_named, sized_game
    try:
        sized_game(args.game, rows, columns)
        named = game_named(args.game)
    except GameError as error:
        return str(error)
    sizes = [(given, own) for given, own in ((rows, named.rows), (columns, named.columns)) if given is not None]
    if "@" in str(args.game) and any(given != own for given, own in sizes):
        return (f"--game {args.game} is a {named.rows}x{named.columns} grid, and the size given beside it "
                f"({' and '.join(str(given) for given, _ in sizes)}) differs: give the size once")
    return None


def model_paths_fault(paths, game):
    """The message for --model-paths that do not give one checkpoint per problem of the game, or None
    (none given: the game's default networks)."""
    if paths and len(paths) != len(game.problems):
        return f"--model-paths needs {len(game.problems)} checkpoints ({', '.join(game.problems)}), got {len(paths)}"
    return None


def check(fault):
    """Raise ScriptError(fault) if there is one (a check's message, or None)."""
    if fault:
        raise ScriptError(fault)


def run_script(words, folder, kept):
    """Run `python WORDS` in `folder` as its own process, so that its exit and its torch threads stay
    its own. A failing script ends the caller with the script's own error line and `kept` (what is
    left as it was); the script is stopped too if the caller is (Ctrl-C, SIGTERM), and it writes its
    files whole or not at all."""
    child = subprocess.Popen([sys.executable, *words], cwd=folder, stderr=subprocess.PIPE, text=True)
    try:
        _, errors = child.communicate()
    finally:
        if child.poll() is None:
            child.terminate()
            child.wait()
    if child.returncode:
        lines = [line for line in errors.splitlines() if line.strip()]
        raise ScriptError(f"{words[0]} failed ({lines[-1] if lines else f'exit {child.returncode}'}); {kept}")


def command_words(settings, leave_out=()):
    """The command-line words that give these settings (a script's Args), in field order: each field
    not at its default and not in leave_out, as tyro reads it (--flag, --no-flag, --flag A B)."""
    words = []
    for field in dataclasses.fields(settings):
        value, flag = getattr(settings, field.name), "--" + field.name.replace("_", "-")
        if field.name in leave_out or value == field.default:
            continue
        if isinstance(value, bool):
            words.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, (tuple, list)):
            words += [flag, *map(str, value)]
        else:
            words += [flag, str(value)]
    return words


def time_left(seconds, done, total):
    """The one progress format of the kit: ", N s so far, about M s left" after `seconds` spent on
    `done` of `total` units of work at an even pace ("" before the first unit ends)."""
    if not done:
        return ""
    return f", {seconds:.0f} s so far, about {seconds / done * max(0, total - done):.0f} s left"


def memory_fault(needed, what, advice):
    """The message for a run that would need `needed` bytes, more than MEMORY_LIMIT, or None."""
    if needed <= MEMORY_LIMIT:
        return None
    return (f"{what} would need about {needed / 1e9:.1f} GB (the limit is {MEMORY_LIMIT / 1e9:.0f} GB)"
            + (f": {advice}" if advice else ""))


def keep_freed_memory():
    """Ask glibc's malloc to keep freed memory for reuse rather than hand it back to the system.

    A mask-training step or a PPO update allocates and frees tensors of a megabyte or more; by
    default glibc returns such blocks to the system, and every fresh page then costs a page fault:
    about 7% of a main.py --mask-inputs run here, and 40,000 faults in six iterations of 40 PPO
    learners. Elsewhere than glibc this does nothing.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    mallopt(m_mmap_threshold, 32 * 2**20)  # serve blocks up to 32 MiB from the heap (the maximum)
    mallopt(m_trim_threshold, 2**30)       # and keep up to 1 GiB of freed heap for reuse
