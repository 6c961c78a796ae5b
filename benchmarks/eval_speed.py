"""Wall time of `mm eval` on a trained run, with and without the modality ablation (`--ablate`), and with and
without the tables training kept in the cache folder (`--tables`: frozen encoders' embeddings, frozen blocks'
outputs; they exist when CSV is the file the run trained on and $MM_CACHE_DIR the cache folder it used).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/eval_speed.py RUN CSV [--split test] [--repeats 2] [--tables both]

Run it with PYTHONPATH set to another checkout to time that version's code on the same run (the first call of
each setting also pays imports and the cache check; the minimum over repeats is printed).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("csv", type=Path)
    ap.add_argument("--split", default="test")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--tables", choices=("used", "ignored", "both"), default="used",
                    help="read the tables training kept (used), run every encoder whole (ignored), or time both")
    args = ap.parse_args()
    os.environ.setdefault("MM_QUIET", "1")
    import mmcli
    from mmcli import frozen
    from mmcli.evaluate import evaluate_run

    kept = frozen.kept_tables

    print(f"# mmcli from {Path(mmcli.__file__).parent}, {os.cpu_count()} CPU cores; run {args.run}, {args.csv}")
    with tempfile.TemporaryDirectory() as out:
        for tables, ablate in [(t, a) for t in ("used", "ignored") if args.tables in (t, "both") for a in (False, True)]:
            frozen.kept_tables = kept if tables == "used" else (lambda *a: (None, set()))
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                m = evaluate_run(args.run, args.csv, split=args.split, out_dir=Path(out), ablate=ablate)
                times.append(time.perf_counter() - start)
            heads = {k: round(v["accuracy"], 4) for k, v in m.get("ablation", {}).get("single", {}).items()}
            print(f"tables {tables}, ablate={ablate}: {min(times):.1f} s (of {', '.join(f'{t:.1f}' for t in times)}); "
                  f"{m['n']} rows, accuracy {m['accuracy']:.4f}" + (f", single inputs {heads}" if heads else ""))


if __name__ == "__main__":
    main()
