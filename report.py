"""Build answers.pdf, the assignment's answers and an appendix of the later studies, from results/.

    python report.py              # run what results/ lacks, then write answers.pdf
    python report.py --reuse      # only rebuild the PDF from the records in results/
    python report.py --stages discovery_ablations/neuron_no_polish   # make chosen folders, no PDF

Every folder of results/ is a stage of one study (decomposition.answers_study) with the kit command
that makes it; a stage whose record is there is complete and not run again (move its folder away to
make it again), so a stopped run goes on where it stopped. The PDF is built in four steps, a module
each: the records read and checked (answers_records), what is computed from them (answers_analyses),
the text, tables and figures of the two parts (answers_assignment, answers_appendix, answers_figures)
and the layout (pdf). Every number is read from the records; none is typed. Needs
requirements-dev.pip (fpdf2, matplotlib).
"""

if __name__ == "__main__":  # first, so that a Ctrl-C while the libraries load is one line too
    from decomposition.script import stop_quietly_until_started
    stop_quietly_until_started()


import contextlib
import os
from dataclasses import dataclass, replace

from decomposition import answers_appendix, answers_assignment, answers_records, answers_study
from decomposition.answers_records import BadResults
from decomposition.files import kit_path, unwritable
from decomposition.script import ScriptError, check, fails_on, start
from decomposition.study import command_line, run_study

KIT = os.path.dirname(os.path.abspath(__file__))


@dataclass
class Args:
    results_dir: str = os.path.join(KIT, "results")
    """folder with one sub-folder per stage of the study (default, seeds, ..., variants)"""
    output: str = os.path.join(KIT, "answers.pdf")
    """the PDF to write"""
    reuse: bool = False
    """build from the records already in results_dir, running no stage"""
    training_log: str = os.path.join(KIT, "models", "training.json")
    """train_ppo.py's record of how the shipped networks were trained"""
    stages: tuple[str, ...] = ()
    """run only these stages of the study (folders under results/, such as discovery_ablations/neuron_no_polish;
    a complete one is said and left as it is) and build no PDF"""


def kit_relative(args):
    """args with every path absolute, then relative to the kit where it lies inside it: report.py
    works from the kit's folder, wherever it is started, and the records name the kit's files as
    results/... as the commands in the PDF do."""
    return replace(args, **{name: kit_path(getattr(args, name))
                            for name in ("results_dir", "output", "training_log")})


def check_args(args):
    """The first fault of the arguments, as a message, or None."""
    if os.path.isdir(args.output) or not args.output or args.output.endswith(os.sep):
        return f"--output {args.output!r} is a folder: give the path of the PDF to write"
    if os.path.lexists(args.output) and not os.path.isfile(args.output):
        return f"--output {args.output} is not a regular file (a device, a FIFO or a broken link): not replaced"
    if os.path.exists(args.results_dir) and not os.path.isdir(args.results_dir):
        return f"--results-dir {args.results_dir} is not a folder"
    names = [stage.name for stage in answers_study.stages()]
    unknown = [name for name in args.stages if name not in names]
    if unknown:
        return f"unknown stage {unknown[0]!r}: the stages are {', '.join(names)}"
    if args.stages and args.reuse:
        return "--stages runs stages and --reuse runs none: give one of them"
    if not args.reuse and not os.path.isfile(args.training_log):
        return f"training record not found: {args.training_log} (written by train_ppo.py)"
    if not args.reuse and unwritable(args.results_dir):
        return f"cannot write to --results-dir {args.results_dir}: {unwritable(args.results_dir)}"
    folder = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(folder):
        return f"--output {args.output}: its folder {folder} does not exist"
    if unwritable(folder):
        return f"cannot write --output {args.output}: {unwritable(folder)}"
    return None


def run_all(args):
    """Run the stages of the answers study not complete yet: all of them, or those --stages names."""
    stages = [stage for stage in answers_study.stages(args.results_dir) if not args.stages or stage.name in args.stages]
    for stage in stages:
        if args.stages and stage.complete():
            print(f"{stage.name}: complete ({os.path.join(stage.folder, stage.output)} is there); move its folder "
                  "away to make it again", flush=True)
    run_study(stages, "the results written so far are kept; rerun to go on where it stopped")


def commands():
    """{results folder: the command that makes it}, as the PDF shows them."""
    return {stage.name: command_line(stage.words()) for stage in answers_study.stages("results")}


def build(records, output):
    from decomposition.pdf import Report
    report = Report()
    shown = commands()
    for block in [*answers_assignment.blocks(records, shown), *answers_appendix.blocks(records, shown)]:
        report.add(*block)
    report.save(output)


@fails_on()
def main(args):
    check(check_args(args))
    args = kit_relative(args)
    with contextlib.chdir(KIT):
        if args.stages:
            run_all(args)
            return
        if not args.reuse:
            run_all(args)
        try:
            build(answers_records.load(args.results_dir, args.training_log), args.output)
        except BadResults as error:
            raise ScriptError(f"{error}; rerun python report.py without --reuse") from None
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
            raise ScriptError(f"a results file in {args.results_dir} or {args.training_log} is malformed "
                              f"({type(error).__name__}: {error}); rerun python report.py without --reuse") from None
    print(f"wrote {args.output}")


if __name__ == "__main__":
    start(main, Args, unchanged="answers.pdf is unchanged, and the stages done so far are kept")
