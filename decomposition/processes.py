"""Independent PPO learners spread over processes, one core and one torch thread each.

decomposition.ppo.BatchedPPO trains many learners as one batched computation, but much of an
iteration's work is too small for torch to split between threads (the rollout's environment
steps, the loss's per-row operations, one random permutation per learner and epoch): with two
threads, the second core mostly waits. So the learners are dealt out to `processes` processes
(learner j to process j % processes), each a BatchedPPO on one thread. Every learner runs on one
thread whatever the number of processes, and a learner does not depend on the others in its
batch, so its weights are the same bit for bit with any number of processes (test).

    results = train_in_processes(partial(ComboGridVec, ...), seeds, settings, processes=2)
"""

import ctypes
import multiprocessing
import queue
import signal
import sys
import time
from dataclasses import replace

import torch

from decomposition.ppo import BatchedPPO


class TrainingFailed(Exception):
    """A training process failed or died; the message says how."""


def learners_of(process, processes, count):
    """The learners (indices into 0 .. count - 1) that process `process` of `processes` trains."""
    return list(range(process, count, processes))


def _portable(result):
    # numpy arrays cross the pipe by value; tensors would go through shared memory
    return replace(result, state_dict={k: v.numpy() for k, v in result.state_dict.items()})


def _batch(envs_of, seeds, settings, learners, learning_rates):
    """The BatchedPPO of these learners (indices into seeds), each with its learning rate if given."""
    rates = None if learning_rates is None else [learning_rates[j] for j in learners]
    return BatchedPPO(envs_of(learners), [seeds[j] for j in learners], settings, rates)


def _train_share(envs_of, seeds, settings, learners, messages, process, learning_rates, evaluate_at):
    """A process's share: BatchedPPO on one thread, each iteration's progress and then its results
    (or the error that stopped it) sent on `messages`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the parent's handler raises; a worker just ends
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    end_with_parent()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOPPING)  # blocked by the parent while it forked
    try:
        torch.set_num_threads(1)
        ppo = _batch(envs_of, seeds, settings, learners, learning_rates)
        results = ppo.train(lambda progress: messages.put(("progress", process, progress)), evaluate_at)
        messages.put(("results", process, [_portable(r) for r in results]))
    except BaseException as error:  # noqa: B036 (whatever it is, the parent reports it)
        messages.put(("error", process, f"{type(error).__name__}: {error}"))


STOPPING = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
"""The signals that end a run."""


def end_with_parent():
    """Have Linux send this process SIGTERM when its parent dies, whatever kills the parent."""
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _combined(progress, start):
    """One progress dict (BatchedPPO.train's) for all processes, timed from `start`."""
    total = {key: sum(p[key] for p in progress) for key in ("steps", "learners", "finished", "solved", "budget_left")}
    return {**total, "seconds": time.time() - start}


def gather(workers, messages, shares, settings, on_progress):
    """Each process's results, read from `messages` as they come; on_progress(per-process progress)
    after every progress message. Raises TrainingFailed if a process fails or dies."""
    progress = [{"steps": 0, "learners": len(share), "finished": 0, "solved": 0,
                 "budget_left": len(share) * settings.total_timesteps} for share in shares]
    results = [None] * len(workers)
    while any(r is None for r in results):
        try:
            kind, process, content = messages.get(timeout=1.0)
        except queue.Empty:  # a process that exited has sent everything it was going to
            for p, worker in enumerate(workers):
                if results[p] is None and not worker.is_alive():
                    raise TrainingFailed(f"training process {p} died (exit code {worker.exitcode}"
                                         f"{', killed: out of memory?' if worker.exitcode == -9 else ''})") from None
            continue
        if kind == "error":
            raise TrainingFailed(f"training process {process} failed: {content}")
        if kind == "progress":
            progress[process] = content
            on_progress(progress)
        else:
            results[process] = content
    return results


def train_in_processes(envs_of, seeds, settings, processes, on_iteration=None, learning_rates=None, evaluate_at=()):
    """Train one learner per seed, spread over `processes` processes; returns their LearnerResults
    in order. envs_of(learners) gives the environments of those learners (indices into seeds); with
    more than one process it must be picklable where processes are spawned rather than forked.
    on_iteration(progress) sees the counts of all processes together, after any process's iteration.
    learning_rates: one per seed (default: settings'); evaluate_at: BatchedPPO.train's.
    Raises TrainingFailed if a process fails or dies, SettingsError if settings are out of range."""
    settings.checked()
    processes = max(1, min(processes, len(seeds)))
    if processes == 1:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return _batch(envs_of, seeds, settings, list(range(len(seeds))), learning_rates).train(on_iteration,
                                                                                                  evaluate_at)
        finally:
            torch.set_num_threads(threads)

    # fork where it is safe and cheap (Linux); the children run on one thread, so a parent's
    # OpenMP threads, which a fork does not copy, are never needed
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    messages = context.Queue()
    shares = [learners_of(p, processes, len(seeds)) for p in range(processes)]
    workers = [context.Process(target=_train_share, daemon=True,
                               args=(envs_of, seeds, settings, share, messages, p, learning_rates, evaluate_at))
               for p, share in enumerate(shares)]
    start = time.time()

    def on_progress(progress):
        if on_iteration is not None:
            on_iteration(_combined(progress, start))

    try:
        # a signal that arrives inside a fork is lost in its lock handling: hold them back until all
        # workers run, then the parent takes any that came
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOPPING)
        try:
            for worker in workers:
                worker.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        results = gather(workers, messages, shares, settings, on_progress)
    finally:
        for worker in workers:
            if worker.pid is None:  # never started
                continue
            if worker.is_alive():
                worker.terminate()
            worker.join()
    ordered = [None] * len(seeds)
    for share, share_results in zip(shares, results):
        for j, result in zip(share, share_results):
            ordered[j] = replace(result, state_dict={k: torch.from_numpy(v) for k, v in result.state_dict.items()})
    return ordered
