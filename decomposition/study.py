"""One runner for every study: a study is a list of stages, each a command of the kit that makes one
folder, run in order; a stage whose output exists is complete and skipped, so a study stopped at
any point (Ctrl-C, SIGTERM, a crash) goes on where it stopped when it is run again.

    stages = [Stage("networks", "runs/x/network_sets", "set_9/training.json",
                    ("train_ppo.py", "--num-sets", "10", "--save-dir", "runs/x/network_sets")), ...]
    run_study(stages, kept="the stages done so far are kept; a rerun goes on from there")

Each stage's script writes its files whole or not at all (decomposition.files), and the runner
then writes MANIFEST beside them: the command, the kit's version and the seconds it took. The
progress is one line per stage: its number, its name, the time so far and the time left
(estimated from the stages run so far and their relative costs), then its command.
"""

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Callable, Optional

from decomposition.files import json_writer, kit_path, read_json, write_file_set
from decomposition.script import ScriptError, run_script, time_left

KIT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MANIFEST = "made_by.json"
"""The record the runner writes into a stage's folder once the stage is complete."""


@dataclass(frozen=True)
class Stage:
    """One step of a study: the folder it makes, the file in it whose presence means it is complete,
    and the kit command (a script and its words) that makes it."""
    name: str
    folder: str
    output: str
    """a path inside folder: the stage is complete once it exists"""
    command: object = ()
    """a tuple of words, or a function that gives them once the earlier stages are complete (None:
    nothing to run, said in a line)"""
    reads: tuple = ()
    """paths it needs (outputs of earlier stages): a missing one is an error before it runs"""
    cost: float = 1.0
    """its expected time relative to the other stages, for the time left"""
    then: Optional[Callable[[], None]] = None
    """run after the command succeeds, before the stage counts as complete (its output is made last)"""
    foreign: Optional[Callable[[], Optional[str]]] = None
    """for a complete stage: why its output is not this study's (records of another game, say), or
    None; the study then stops before it reads or writes anything more"""
    make: Optional[Callable[[], None]] = None
    """instead of a command: a function that makes the output in this process (a part of a script's
    own study, which gathers the parts; no manifest)"""

    def complete(self):
        return os.path.exists(os.path.join(self.folder, self.output))

    def words(self):
        return self.command() if callable(self.command) else self.command


def command_line(words):
    """The command as a person would type it in the kit's folder."""
    return " ".join(["python", *(kit_path(word) if os.path.isabs(word) else word for word in words)])


def kit_version():
    """The kit's git commit (with "+changes" where the tree differs from it), or "unknown" outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=KIT, capture_output=True, text=True,
                                timeout=10)
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=KIT,
                                 capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if commit.returncode:
        return "unknown"
    return commit.stdout.strip() + ("+changes" if changed.stdout.strip() else "")


def manifest(folder):
    """The manifest of a stage's folder, or None where there is none (made before the runner, or by hand)."""
    try:
        return read_json(os.path.join(folder, MANIFEST))
    except (OSError, ValueError):
        return None


class Progress:
    """The line that opens each stage: [k/n] name, time so far, about N s left (the seconds of the
    stages run so far, scaled by the costs of those still to run)."""

    def __init__(self, stages, say):
        self.stages, self.say, self.ran, self.spent = stages, say, 0.0, 0.0

    def begin(self, k, words):
        remaining = sum(s.cost for s in self.stages[k:] if not s.complete())
        left = time_left(self.spent, self.ran, self.ran + remaining)
        self.say(f"[{k + 1}/{len(self.stages)}] {self.stages[k].name}{left}"
                 + ("" if words is None else f"\n    {command_line(words)}"))

    def end(self, stage, seconds):
        self.ran, self.spent = self.ran + stage.cost, self.spent + seconds


def say_now(line):
    print(line, flush=True)


def run_study(stages, kept, say=say_now):
    """Run the stages not complete yet, in order (each script as its own process, in the kit's folder);
    returns the names of those run. A failing stage ends the study with its script's error line, the
    stage's name and `kept`."""
    names = [stage.name for stage in stages]
    if len(set(names)) != len(names):
        raise ScriptError(f"the study names stage {next(n for n in names if names.count(n) > 1)!r} twice")
    for stage in stages:
        fault = stage.foreign() if stage.foreign is not None and stage.complete() else None
        if fault:
            raise ScriptError(f"stage {stage.name}: {fault}; refused (move it away, or give another folder)")
    progress, ran = Progress(stages, say), []
    for k, stage in enumerate(stages):
        if stage.complete():
            continue
        missing = [path for path in stage.reads if not os.path.exists(path)]
        if missing:
            raise ScriptError(f"stage {stage.name} needs {missing[0]}, which no earlier stage made; {kept}")
        if stage.make is not None:
            progress.begin(k, None)
            started = time.time()
            stage.make()
            progress.end(stage, time.time() - started)
            ran.append(stage.name)
            continue
        words = stage.words()
        if words is None:
            say(f"[{k + 1}/{len(stages)}] {stage.name}: nothing to run (no input for it)")
            continue
        progress.begin(k, words)
        started = time.time()
        try:
            run_script(list(words), KIT, kept)
        except ScriptError as error:
            raise ScriptError(f"stage {stage.name}: {error}") from None
        if stage.then is not None:
            stage.then()
        seconds = time.time() - started
        os.makedirs(stage.folder, exist_ok=True)
        write_file_set(stage.folder, {MANIFEST: json_writer(
            {"stage": stage.name, "command": command_line(words), "kit": kit_version(), "seconds": seconds}, 1)})
        progress.end(stage, seconds)
        ran.append(stage.name)
    return ran


PARTS = "parts"
"""The folder of a --save-dir where a script's own stages keep their records until it gathers them."""


@contextlib.contextmanager
def parts_folder(save_dir, settings, inputs=()):
    """Where a script's parts wait (run_parts): save_dir/parts/KEY, KEY a hash of the settings and of
    the bytes of the files they read (checkpoints, options): a rerun with other settings or other
    networks starts anew. The script removes the parts once it has saved what it gathered
    (remove_parts). Without a save_dir, a temporary folder, gone at the end."""
    if save_dir is None:
        with tempfile.TemporaryDirectory() as folder:
            yield folder
        return
    key = hashlib.sha256(json.dumps(asdict(settings), sort_keys=True, default=str).encode())
    for path in inputs:
        with open(path, "rb") as file:
            key.update(hashlib.sha256(file.read()).digest())
    yield os.path.join(save_dir, PARTS, key.hexdigest()[:16])


def remove_parts(save_dir):
    shutil.rmtree(os.path.join(save_dir, PARTS), ignore_errors=True)


def run_parts(folder, makers, kept, say=say_now, done=None):
    """Run each part {name: function giving its JSON-ready record} not done yet, in order, each
    written to the parts folder as it ends (a stage of run_study, in this process); returns every
    part's record, read back, by name. done(name) is called first for each part already there (a
    progress count leaves its work out)."""
    files = {name: re.sub(r"[^A-Za-z0-9.-]+", "_", name) + ".json" for name in makers}
    for name in makers:
        if done is not None and os.path.exists(os.path.join(folder, files[name])):
            done(name)

    def make(name):
        record = makers[name]()
        os.makedirs(folder, exist_ok=True)
        write_file_set(folder, {files[name]: json_writer(record)})

    run_study([Stage(name, folder, files[name], make=lambda name=name: make(name)) for name in makers], kept, say)
    return {name: read_json(os.path.join(folder, files[name])) for name in makers}
