"""What a tune leaves in its folder while it runs and at the end: trials.csv, best.yaml, the best trials' run
folders (the others are deleted: a pretrained run folder is about 100 MB), progress lines and the final table."""

from __future__ import annotations

import csv
import io
import shutil
import time
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from mmcli.config import dump_config, load_config
from mmcli.files import atomic_write_text
from mmcli.progress import console, log_line, make_progress, quiet
from mmcli.tune.settings import TuneSettings
from mmcli.tune.space import apply_params

STATES = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed",
          TrialState.RUNNING: "running", TrialState.WAITING: "waiting"}


def ranked(study: optuna.Study, settings: TuneSettings) -> list[FrozenTrial]:
    """Completed trials, best first (ties: the earlier trial)."""
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    sign = -1.0 if settings.goal == "max" else 1.0
    return sorted(done, key=lambda t: (sign * t.value, t.number))


def epochs(t: FrozenTrial) -> int:
    """Epochs the trial trained: each one reported its validation metric."""
    return len(t.intermediate_values)


def seconds(t: FrozenTrial) -> float | None:
    if t.datetime_start and t.datetime_complete:
        return (t.datetime_complete - t.datetime_start).total_seconds()
    return None


def error(t: FrozenTrial) -> str:
    if t.state != TrialState.FAIL:
        return ""
    return t.user_attrs.get("error") or "its process ended before the trial finished (killed?)"


def trial_rows(study: optuna.Study, settings: TuneSettings) -> list[dict]:
    """One row per trial: number, state, value, epochs, seconds, every searched key, test value, error."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        value = t.value if t.state == TrialState.COMPLETE else (  # a pruned trial: its last epoch's
            t.intermediate_values[t.last_step] if t.state == TrialState.PRUNED and t.intermediate_values else None)
        secs = seconds(t)
        row = {"trial": t.number, "state": STATES.get(t.state, t.state.name.lower()),
               settings.metric: value, "epochs": epochs(t), "seconds": None if secs is None else round(secs, 2)}
        row.update({key: t.params.get(key) for key in settings.space})
        row["base"] = bool(t.user_attrs.get("base"))
        row["test_" + settings.metric.removeprefix("val_")] = t.user_attrs.get("test_value")
        row["error"] = error(t)
        rows.append(row)
    return rows


def write_trials_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def best_config(settings: TuneSettings, t: FrozenTrial) -> str:
    """The base config with the trial's values: YAML that `mm train --config` takes as it is."""
    cfg = load_config(base=apply_params(settings.base, t.params))
    head = (f"# mm tune: best of the trials on {settings.csv} (trial {t.number}, {settings.metric} {t.value:.4f})\n"
            f"# searched: {', '.join(f'{k}={v!r}' for k, v in t.params.items())}\n")
    return head + dump_config(cfg)


def keep_best_runs(study: optuna.Study, settings: TuneSettings, out: Path) -> None:
    """Delete the run folders of finished trials outside the best `keep`; running trials' folders stay."""
    keep = {t.number for t in ranked(study, settings)[: settings.keep]}
    states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
    root = out / "trials"
    if not root.is_dir():
        return
    for folder in root.iterdir():
        number = int(folder.name) if folder.name.isdigit() else None
        if number is None or number in keep or states.get(number, TrialState.RUNNING) in (TrialState.RUNNING,
                                                                                            TrialState.WAITING):
            continue
        shutil.rmtree(folder, ignore_errors=True)


def write_outputs(study: optuna.Study, settings: TuneSettings, out: Path) -> FrozenTrial | None:
    """trials.csv, best.yaml and the pruned set of run folders, as they stand now. -> the best trial, if any."""
    write_trials_csv(out / "trials.csv", trial_rows(study, settings))
    best = ranked(study, settings)
    if best:
        atomic_write_text(out / "best.yaml", best_config(settings, best[0]))
    keep_best_runs(study, settings, out)
    return best[0] if best else None


def _fmt(x: object) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


class Progress:
    """Trials finished out of the target, best so far and an ETA: a live bar on a terminal, else a line per trial."""

    def __init__(self, study: optuna.Study, settings: TuneSettings) -> None:
        from rich.progress import TextColumn

        self.settings = settings
        self.seen = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
        self.start, self.start_done = time.time(), self._finished(study)
        self.bar = make_progress(TextColumn("{task.fields[best]}"))
        self.task = self.bar.add_task("trials", total=settings.trials, completed=self.start_done, best="")

    def _finished(self, study: optuna.Study) -> int:
        return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))

    def __enter__(self) -> Progress:  # noqa: PYI034
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)

    def update(self, study: optuna.Study) -> None:
        best = ranked(study, self.settings)
        best_text = f"best {self.settings.metric} {best[0].value:.4f} (trial {best[0].number})" if best else ""
        finished = self._finished(study)
        self.bar.update(self.task, completed=min(finished, self.settings.trials), best=best_text)
        for t in study.get_trials(deepcopy=False):
            if t.state.is_finished() and t.number not in self.seen:
                self.seen.add(t.number)
                log_line(self._line(t, finished, best_text))

    def _line(self, t: FrozenTrial, finished: int, best_text: str) -> str:
        rate = (time.time() - self.start) / max(finished - self.start_done, 1)
        eta = rate * max(self.settings.trials - finished, 0)
        what = {TrialState.COMPLETE: f"{self.settings.metric} {_fmt(t.value)}",
                TrialState.PRUNED: f"pruned after epoch {epochs(t)}",
                TrialState.FAIL: f"failed: {error(t)}"}.get(t.state, t.state.name.lower())
        return (f"trial {t.number}: {what}; {finished}/{self.settings.trials} done; {best_text}; "
                f"eta {eta / 60:.1f} min")


def _short(keys: list[str]) -> dict[str, str]:
    """train.lr -> lr, unless two searched keys share the last part."""
    last = [k.split(".")[-1] for k in keys]
    return {k: (n if last.count(n) == 1 else k) for k, n in zip(keys, last)}


def print_table(study: optuna.Study, settings: TuneSettings, out: Path, top: int = 10) -> None:
    """The best trials (then the rest by number, up to `top` rows) as a rich table on stderr; the searched values
    share one column, so that the table fits a terminal whatever the size of the space."""
    from rich.table import Table

    if quiet():
        return
    rows = trial_rows(study, settings)
    order = {t.number: k for k, t in enumerate(ranked(study, settings))}
    rows.sort(key=lambda r: (order.get(r["trial"], len(order)), r["trial"]))
    short = _short(list(settings.space))
    table = Table(title=f"mm tune: {len(rows)} trials ({settings.metric}, {settings.goal})")
    for col in ("trial", "state", settings.metric, "epochs", "seconds"):
        table.add_column(col, justify="left" if col == "state" else "right", no_wrap=True)
    table.add_column("values", overflow="fold")
    for r in rows[:top]:
        values = ", ".join(f"{short[k]}={_fmt(r[k])}" for k in settings.space)
        table.add_row(_fmt(r["trial"]) + (" (base)" if r["base"] else ""), r["state"], _fmt(r[settings.metric]),
                      _fmt(r["epochs"]), _fmt(r["seconds"]), values)
    states = [r["state"] for r in rows]
    table.caption = (", ".join(f"{states.count(s)} {s}" for s in dict.fromkeys(states)) +
                     (f"; best config: {out / 'best.yaml'}" if (out / "best.yaml").exists() else ""))
    console.print(table)
