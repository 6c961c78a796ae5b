"""The Optuna study behind `mm tune`: storage, sampler and pruner, the trial loop, parallel workers and resume.

Optuna owns the study. Its default storage is a journal file in the tune folder (DIR/journal.log), which several
processes append to safely, and which a killed tune leaves readable: `mm tune --resume DIR` reloads it, marks the
trials whose process died as failed, queues them again, and runs until `trials` have finished. `--storage URL`
(Optuna's RDB storage: PostgreSQL, MySQL, SQLite) lets workers on several machines share one study; there, trials
of a machine that died are detected by Optuna's heartbeat and queued again.
"""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import socket
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.trial import TrialState

from mmcli.errors import MMError, UsageError
from mmcli.progress import info, warn
from mmcli.runs import _alive
from mmcli.tune.settings import TuneSettings, load_settings
from mmcli.tune.space import base_params, parse_space
from mmcli.tune.trial import TrialContext, run_trial

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
JOURNAL = "journal.log"


def make_sampler(settings: TuneSettings, seed: int) -> optuna.samplers.BaseSampler:
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if settings.sampler == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
    if settings.sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    # TPE's random start: 10 trials by default, fewer for short tunes so that most of them are guided
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(2, settings.trials // 3)))


def make_pruner(settings: TuneSettings) -> optuna.pruners.BasePruner:
    if settings.pruner == "median":
        # steps are epochs, counted from 1: pruning starts after `warmup_epochs` epochs
        return optuna.pruners.MedianPruner(n_startup_trials=settings.startup_trials,
                                           n_warmup_steps=settings.warmup_epochs + 1)
    if settings.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, settings.warmup_epochs),
                                              max_resource=int(settings.base["train"]["epochs"]))
    return optuna.pruners.NopPruner()


def make_storage(settings: TuneSettings, out: Path):
    if settings.storage is None:
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(out / JOURNAL)))
    from optuna.storages import RetryFailedTrialCallback
    from sqlalchemy.exc import SQLAlchemyError

    try:  # the heartbeat lets other machines see that a trial's machine died; its trial is then queued again
        return optuna.storages.RDBStorage(settings.storage, heartbeat_interval=60, grace_period=180,
                                          failed_trial_callback=RetryFailedTrialCallback(max_retry=2))
    except (ValueError, ImportError, SQLAlchemyError) as exc:  # a bad URL, a missing driver, no server
        raise UsageError(f"--storage {settings.storage}: {type(exc).__name__}: {exc}") from None


def open_study(settings: TuneSettings, out: Path, seed_offset: int = 0) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # mm reports trials itself; failures without tracebacks
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Fixed parameter", category=UserWarning)  # trial 0 outside a range
    study = optuna.create_study(storage=make_storage(settings, out), study_name=settings.study_name,
                                direction=settings.direction, pruner=make_pruner(settings), load_if_exists=True)
    # The sampler's seed moves on with the trials already run (and per worker), so that a resumed or parallel
    # worker does not draw the same points again.
    study.sampler = make_sampler(settings, settings.seed + seed_offset + len(study.trials))
    return study


def _stale(t: optuna.trial.FrozenTrial, host: str, local: bool) -> bool:
    """A running trial whose process has died: its pid on this machine is gone, or (journal storage, asked under the
    AskLock that this process now holds) it never got as far as recording its pid."""
    pid = t.user_attrs.get("pid")
    if pid is None:
        return local
    return t.user_attrs.get("host") == host and isinstance(pid, int) and not _alive(pid)


def prepare_study(study: optuna.Study, settings: TuneSettings, out: Path) -> None:
    """Trial 0 is the base config (queued once, whichever process gets there first); trials whose process on this
    machine has died (a killed tune) are marked failed and queued again with the same parameters."""
    params = parse_space(settings.space)
    values, sampled = base_params(settings.base, params)
    if sampled:
        warn(f"trial 0 (the base config) samples {', '.join(sampled)}: the base value is not among its categories")
    with AskLock(out):
        if not study.trials:
            study.enqueue_trial(values, user_attrs={"base": True}, skip_if_exists=True)
        _requeue_stale(study, values, local=settings.storage is None)


def _requeue_stale(study: optuna.Study, base: dict, local: bool) -> None:
    host = socket.gethostname()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if _stale(t, host, local):
            pid = t.user_attrs.get("pid", "?")
            study.tell(t.number, state=TrialState.FAIL)
            is_base = bool(t.user_attrs.get("base"))
            params = t.params or (base if is_base else {})  # killed before sampling: the same kind of trial again
            study.enqueue_trial(params, user_attrs={"retry_of": t.number, "base": is_base})
            info(f"trial {t.number} was cut off (its process {pid} is gone): queued again")


def counts(study: optuna.Study) -> dict[str, int]:
    out = {"finished": 0, "running": 0, "failed": 0}
    for t in study.get_trials(deepcopy=False):
        if t.state in FINISHED:
            out["finished"] += 1
        elif t.state == TrialState.RUNNING:
            out["running"] += 1
        elif t.state == TrialState.FAIL:
            out["failed"] += 1
    return out


def done(study: optuna.Study, settings: TuneSettings) -> bool:
    """Enough trials have finished or are under way; or as many have failed (a space where nothing trains)."""
    c = counts(study)
    return c["finished"] + c["running"] >= settings.trials or c["failed"] >= settings.trials


class AskLock:
    """An exclusive lock on DIR/.ask.lock from "are more trials needed?" until the next trial exists, so that
    parallel workers on this machine start exactly the missing number of trials."""

    def __init__(self, out: Path) -> None:
        self.path, self.fd = out / ".ask.lock", None

    def __enter__(self) -> AskLock:  # noqa: PYI034
        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __exit__(self, *exc: object) -> None:
        self.release()


def work(study: optuna.Study, settings: TuneSettings, out: Path, deadline: float, threads: int = 0,
         on_trial: Callable[[optuna.Study], None] | None = None, max_trials: int | None = None) -> None:
    """Run trials one after another until the study has enough (or the deadline passes); `on_trial` after each."""
    ctx = TrialContext(settings, out, parse_space(settings.space), threads)
    ran = 0
    while max_trials is None or ran < max_trials:
        with AskLock(out) as lock:
            if done(study, settings) or time.time() >= deadline:
                return
            ctx.release = lock.release
            study.optimize(lambda trial: run_trial(trial, ctx), n_trials=1, catch=(Exception,))
        ran += 1
        if on_trial is not None:
            on_trial(study)


def _worker(out: str, index: int, deadline: float, threads: int) -> None:
    """A parallel worker process (spawned): the same loop as in-process, quiet."""
    os.environ["MM_QUIET"] = "1"
    settings = load_settings(Path(out))
    study = open_study(settings, Path(out), seed_offset=1000 * (index + 1))
    try:
        work(study, settings, Path(out), deadline, threads)
    except KeyboardInterrupt:
        pass


def run_parallel(study: optuna.Study, settings: TuneSettings, out: Path, deadline: float, jobs: int,
                 on_trial: Callable[[optuna.Study], None]) -> None:
    """`jobs` worker processes, each with 1/jobs of the CPU threads (unless train.threads says otherwise); this
    process polls the study for the progress display. The first trial runs alone when none has finished yet: it
    builds the cache and the frozen encoders' tables that the others then share."""
    if counts(study)["finished"] == 0:
        work(study, settings, out, deadline, on_trial=on_trial, max_trials=1)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    ctx = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools in an unknown state
    procs = [ctx.Process(target=_worker, args=(str(out), k, deadline, threads), daemon=False) for k in range(jobs)]
    for p in procs:
        p.start()
    try:
        while any(p.is_alive() for p in procs):
            time.sleep(1.0)
            on_trial(study)
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.terminate()
    bad = [p.exitcode for p in procs if p.exitcode not in (0, None)]
    if bad:
        raise MMError(f"{len(bad)} of {jobs} tune workers ended with an error (exit codes {bad}); resume with "
                      f"mm tune --resume {out}")
