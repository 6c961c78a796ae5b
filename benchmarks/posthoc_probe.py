"""What a trained late-fusion run's fine-tuned embeddings give with cheaper heads on top, over the runs that
`benchmarks/accuracy.py --keep-runs DIR` kept (`<set>-<recipe>-fused-<seed>` folders), per set and seed:

- the run as it predicts (its per-input heads, late fusion);
- a joint head: StandardScaler + LogisticRegression over the concatenated embeddings of all inputs (the run's
  encoders, its chosen checkpoint), C chosen on val, fitted on train: the last layer re-fitted jointly
  ("retrain the last layer", as in Kirichenko et al. 2022), against the late fusion's heads trained one per input;
- the run's fused log-probabilities plus w x the joint head's, w from {0, 0.25, 0.5, 1, 2} chosen on val;
- seed ensembles: the mean of the probabilities of 2 or 3 of the runs (seeds 0, 1, 2).

`cross` scores noto's runs on OpenMoji's artwork (the test split of its CSV), as accuracy.py does.

    HF_HUB_OFFLINE=1 MM_CACHE_DIR=/tmp/exp/cache .venv/bin/python benchmarks/posthoc_probe.py /tmp/exp/runs \
        | tee benchmarks/results/posthoc_probe.log
"""
from __future__ import annotations

import argparse
import itertools
import statistics
from pathlib import Path

import numpy as np
import torch

C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 1.0)
BLEND = (0.0, 0.25, 0.5, 1.0, 2.0)


@torch.inference_mode()
def embeddings(run: Path, csv: Path) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """-> {split code: (concatenated embeddings [N, sum D], the run's fused log-probabilities [N, C], labels [N])}
    over the CSV's train (0), val (1) and test (2) rows, every input present."""
    from mmcli.data.dataset import Batches, input_specs
    from mmcli.loading import load_run, prepare_csv

    loaded = load_run(run, "cpu")
    cache, _ = prepare_csv(loaded, csv, need_label=True)
    m, out = loaded.model, {}
    for code in (0, 1, 2):
        e, lp, y = [], [], []
        for inputs, present, labels, _ in Batches(cache, cache.indices(code), 128, input_specs(m), device="cpu"):
            embs = m.with_missing(m.encode_inputs(inputs), present)
            e.append(torch.cat([embs[n].float() for n in m.names], 1))
            lp.append(torch.log_softmax(m.classify(embs, present).float(), 1))
            y.append(labels)
        out[code] = (torch.cat(e).numpy(), torch.cat(lp).numpy(), torch.cat(y).numpy())
    return out


def joint_head(d: dict) -> dict:
    """The joint logistic-regression head and its blend with the run -> test accuracies and the choices."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    (etr, _, ytr), (eva, lva, yva), (ete, lte, yte) = d[0], d[1], d[2]
    z = StandardScaler().fit(etr)
    fits = {c: LogisticRegression(C=c, max_iter=3000).fit(z.transform(etr), ytr) for c in C_GRID}
    c = max(C_GRID, key=lambda c: (fits[c].score(z.transform(eva), yva), -c))
    jva, jte = (fits[c].predict_log_proba(z.transform(x)) for x in (eva, ete))
    w = max(BLEND, key=lambda w: (((lva + w * jva).argmax(1) == yva).mean(), -w))
    return {"run": float((lte.argmax(1) == yte).mean()), "joint": float((jte.argmax(1) == yte).mean()),
            "blend": float(((lte + w * jte).argmax(1) == yte).mean()), "C": c, "w": w}


def _ms(xs: list[float]) -> str:
    return f"{statistics.mean(xs):.3f} ± {statistics.pstdev(xs):.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", type=Path, help="accuracy.py's --keep-runs folder")
    ap.add_argument("--sets", nargs="+", default=["noto", "openmoji", "mdi", "cross"])
    ap.add_argument("--recipe", default="best")
    ap.add_argument("--data", type=Path, default=Path("/tmp/mm-sets"), help="built sets (benchmarks/datasets.py)")
    args = ap.parse_args()
    print("set       | run (late fusion) | joint head | run + w x joint | 2-run ensembles | 3-run ensemble | C, w by seed")
    for name in args.sets:
        trained_on = "noto" if name == "cross" else name
        per = []
        for seed in (0, 1, 2):
            d = embeddings(args.runs / f"{trained_on}-{args.recipe}-fused-{seed}", args.data / name / "all.csv")
            per.append((joint_head(d), np.exp(d[2][1]), d[2][2]))
        y = per[0][2]
        pairs = [float(((per[a][1] + per[b][1]).argmax(1) == y).mean()) for a, b in itertools.combinations(range(3), 2)]
        three = float((sum(p[1] for p in per).argmax(1) == y).mean())
        r = [p[0] for p in per]
        print(f"{name:9} | {_ms([x['run'] for x in r])} | {_ms([x['joint'] for x in r])} | "
              f"{_ms([x['blend'] for x in r])} | {_ms(pairs)} | {three:.3f} | "
              + " ".join(f"{x['C']},{x['w']}" for x in r), flush=True)


if __name__ == "__main__":
    main()
