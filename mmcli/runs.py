"""The run folder: layout, creation, `latest`, a write lock, and safetensors weights (atomic)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from mmcli.errors import MMError, UsageError
from mmcli.files import atomic_path, atomic_write_text

RUNS_ROOT = Path("runs")


def new_run_dir(output: str | Path | None) -> Path:
    """`-o` as given (must not hold a run already), else runs/<timestamp>."""
    if output is not None:
        run = Path(output)
        if (run / "config.yaml").exists():
            raise UsageError(f"{run} already holds a run; pick another -o/--output, or continue it with --resume {run}")
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run, k = RUNS_ROOT / stamp, 2
        while run.exists():
            run, k = RUNS_ROOT / f"{stamp}-{k}", k + 1
    try:
        run.mkdir(parents=True, exist_ok=True)
        probe = run / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise MMError(f"cannot write the run folder {run}: {exc.strerror or exc}") from None
    return run


def update_latest(run: Path) -> None:
    """Point `runs/latest` at `run` (a relative symlink, swapped atomically) when the run lives in `runs/`; a run
    written elsewhere with -o leaves that folder's neighbours alone."""
    link = run.parent / "latest"
    if run.name == "latest" or run.parent.resolve() != RUNS_ROOT.resolve():
        return
    tmp = run.parent / f".latest.{os.getpid()}"
    try:
        if tmp.is_symlink():
            tmp.unlink()
        tmp.symlink_to(run.name, target_is_directory=True)
        os.replace(tmp, link)
    except OSError:
        pass  # filesystems without symlinks: `latest` is a convenience, never a reason to fail


def resolve_run(path: str | Path | None) -> Path:
    """A run folder (default runs/latest) that holds a trained model, or a UsageError that says what is wrong."""
    run = Path(path) if path is not None else RUNS_ROOT / "latest"
    if not run.exists():
        hint = "train one with `mm train data.csv`" if path is None else "check the path"
        raise UsageError(f"run folder {run} not found; {hint}")
    for needed in ("config.yaml", "labels.json", "model.safetensors", "metrics.json"):
        if not (run / needed).exists():
            hint = f"; if its training was interrupted, finish it with mm train --resume {run}" \
                if (run / "last").exists() else ""
            raise UsageError(f"{run} is not a finished run folder (no {needed}){hint}")
    return run.resolve()


class RunLock:
    """An exclusive lock file in the run folder, so two trainings can't write into it at once."""

    def __init__(self, run: Path) -> None:
        self.path = run / ".lock"

    def __enter__(self) -> RunLock:  # noqa: PYI034
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pid = self.path.read_text().strip() or "?"
            if pid.isdigit() and not _alive(int(pid)):
                self.path.unlink(missing_ok=True)
                return self.__enter__()
            raise UsageError(f"{self.path.parent} is in use by another mm process (pid {pid}); "
                             f"wait for it or remove {self.path} if it is gone") from None
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return self

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def save_weights(model, path: Path, overrides: dict | None = None) -> None:
    """`model`'s state dict as safetensors, with `overrides` (key -> tensor) in place of the model's own values."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in {**model.state_dict(), **(overrides or {})}.items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp))


def load_weights(model, path: Path) -> None:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise MMError(f"cannot read weights {path}: {exc} (truncated or not a safetensors file?)") from None
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if k != "fusion.weights"]  # saved before late-fusion weights existed: they stay 1
    if missing or unexpected:
        raise MMError(f"weights {path} do not fit the model in its config.yaml "
                      f"(missing {len(missing)} tensors, unexpected {len(unexpected)}: {(missing + unexpected)[:3]})")


def write_json(path: Path, obj: object) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")
