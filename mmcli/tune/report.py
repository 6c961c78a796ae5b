"""DIR/report.md for `mm tune`: the best trial against the base config, the optimisation history and the parameter
importance (Optuna's fANOVA evaluator), drawn as PNGs beside it."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.trial import TrialState

from mmcli.files import atomic_write_text
from mmcli.plots import _figure, _save
from mmcli.tune.outputs import epochs, ranked, trial_rows
from mmcli.tune.settings import TuneSettings


def history_png(path: Path, study: optuna.Study, settings: TuneSettings) -> None:
    """Each finished trial's value by trial number (pruned ones at their last reported epoch) and the best so far."""
    fig = _figure(7, 3.5)
    ax = fig.add_subplot()
    trials = study.get_trials(deepcopy=False)
    better = max if settings.goal == "max" else min
    for state, style, label in ((TrialState.COMPLETE, {"color": "tab:blue"}, "complete"),
                                (TrialState.PRUNED, {"color": "grey", "marker": "x"}, "pruned (last epoch)")):
        pts = [(t.number, t.value if state == TrialState.COMPLETE else t.intermediate_values[t.last_step])
               for t in trials if t.state == state and (t.value is not None or t.intermediate_values)]
        if pts:
            ax.scatter(*zip(*pts), s=18, label=label, **style)
    best, xs, ys = None, [], []
    for t in trials:
        if t.state == TrialState.COMPLETE and t.value is not None:
            best = t.value if best is None else better(best, t.value)
            xs.append(t.number)
            ys.append(best)
    if xs:
        ax.step(xs, ys, where="post", color="tab:red", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(settings.metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("optimisation history")
    _save(fig, path)


def importances(study: optuna.Study) -> dict[str, float] | str:
    """{key: share of the variance of the value} over completed trials, or why there is none."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(done) < 2:
        return "needs at least 2 completed trials"
    try:
        return optuna.importance.get_param_importances(study, evaluator=optuna.importance.FanovaImportanceEvaluator(
            seed=0))
    except (ValueError, RuntimeError) as exc:  # e.g. no parameter varied among the completed trials
        return f"not computed: {exc}"


def importance_png(path: Path, imp: dict[str, float]) -> None:
    keys = list(imp)[::-1]
    fig = _figure(6, 1 + 0.4 * len(keys))
    ax = fig.add_subplot()
    ax.barh(keys, [imp[k] for k in keys], color="tab:blue")
    ax.set_xlabel("importance (fANOVA, share of the variance of the value)")
    ax.set_xlim(0, max(1e-9, max(imp.values())) * 1.1)
    ax.set_title("parameter importance")
    _save(fig, path)


def _table(rows: list[dict], cols: list[str]) -> list[str]:
    def cell(v: object) -> str:
        return "-" if v is None or v == "" else (f"{v:.4g}" if isinstance(v, float) else str(v))

    return ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)] + [
        "| " + " | ".join(cell(r[c]) for c in cols) + " |" for r in rows]


def write_report(study: optuna.Study, settings: TuneSettings, out: Path) -> Path:
    """report.md (and history.png, importance.png) in the tune folder."""
    rows = trial_rows(study, settings)
    states = [r["state"] for r in rows]
    lines = [f"# mm tune: {settings.csv}", "",
             f"{len(rows)} trials: " + ", ".join(f"{states.count(s)} {s}" for s in dict.fromkeys(states))
             + f". Value: {settings.metric} of the trial's final model ({settings.goal}imised); sampler "
             f"{settings.sampler}, pruner {settings.pruner}; target {settings.trials} finished trials.", ""]
    best = ranked(study, settings)
    base = next((t for t in best if t.user_attrs.get("base")), None)
    if best:
        b = best[0]
        lines += ["## Best trial", "", (f"Trial {b.number}: {settings.metric} **{b.value:.4f}** after {epochs(b)} "
                  f"epochs; config `best.yaml` (`mm train data.csv --config best.yaml`), run folder "
                  f"`trials/{b.number:04d}`."), ""]
        lines += [f"- `{k}`: {v!r}" for k, v in b.params.items()] + [""]
        if base is not None:
            lines += [(f"Base config (trial {base.number}): {settings.metric} {base.value:.4f}; the best is "
                      f"{b.value - base.value:+.4f} from it."), ""]
    if rows:
        history_png(out / "history.png", study, settings)
        lines += ["## Optimisation history", "", "![optimisation history](history.png)", ""]
    imp = importances(study)
    lines += ["## Parameter importance", ""]
    if isinstance(imp, dict) and imp:
        importance_png(out / "importance.png", imp)
        lines += ["![parameter importance](importance.png)", ""] + [f"- `{k}`: {v:.3f}" for k, v in imp.items()]
    else:
        lines.append(f"Not drawn: {imp or 'no parameters'}.")
    order = {t.number: k for k, t in enumerate(best)}
    rows.sort(key=lambda r: (order.get(r["trial"], len(order)), r["trial"]))
    cols = ["trial", "state", settings.metric, "epochs", "seconds", *settings.space, "error"]
    lines += ["", "## Trials (best first)", "", *_table(rows, cols), ""]
    atomic_write_text(out / "report.md", "\n".join(lines))
    return out / "report.md"

