"""Two cheap additions to the linear probe, screened over the frozen features: a kNN vote and a label-name prior.

On each set's frozen EfficientNet-Lite0 + MiniLM features (the tables `benchmarks/accuracy.py` probes), beside its
probe (StandardScaler + LogisticRegression, C on val):
- kNN: cosine similarity on the standardised features, each of the k nearest training rows voting exp(s / 0.05)
  for its label; the probe's probabilities mixed with the vote's, (1 - w) p + w q, k and w chosen on val;
- label-name prior: MiniLM's embedding of the text against that of each class name (cosine), added with weight w
  to the text probe's log-probabilities; test accuracy for each w, and the w val picks.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/probe_extras.py | tee benchmarks/results/probe_extras.log
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import C_GRID, features
from datasets import BUILDERS, build

KS, MIX, PRIOR = (1, 3, 5, 10, 20), (0.0, 0.25, 0.5, 0.75, 1.0), (0.0, 5.0, 10.0, 20.0)


def fitted_probe(z: np.ndarray, y: np.ndarray, tr, va):
    """-> the LogisticRegression with C chosen on val (z standardised on train)."""
    from sklearn.linear_model import LogisticRegression

    fits = {c: LogisticRegression(C=c, max_iter=3000).fit(z[tr], y[tr]) for c in C_GRID}
    return fits[max(C_GRID, key=lambda c: (fits[c].score(z[va], y[va]), -c))]


def knn_vote(z: np.ndarray, tr, y: np.ndarray, k: int, n_cls: int, temp: float = 0.05) -> np.ndarray:
    """[N, D] features -> [N, n_cls] vote shares of each row's k most similar training rows (cosine)."""
    a = z[tr] / np.linalg.norm(z[tr], axis=1, keepdims=True)
    s = (z / np.linalg.norm(z, axis=1, keepdims=True)) @ a.T
    idx = np.argsort(-s, axis=1)[:, :k]
    rows = np.arange(len(z))[:, None]
    q = np.zeros((len(z), n_cls))
    np.add.at(q, (np.repeat(rows, k, axis=1), y[tr][idx]), np.exp(s[rows, idx] / temp))
    return q / q.sum(1, keepdims=True)


def accuracy(p: np.ndarray, y: np.ndarray, rows) -> float:
    return float((p[rows].argmax(1) == y[rows]).mean())


def knn_rows(x: np.ndarray, y: np.ndarray, split: np.ndarray) -> str:
    from sklearn.preprocessing import StandardScaler

    tr, va, te = split == 0, split == 1, split == 2
    z = StandardScaler().fit(x[tr]).transform(x)
    p, n_cls = fitted_probe(z, y, tr, va).predict_proba(z), int(y.max()) + 1
    votes = {k: knn_vote(z, tr, y, k, n_cls) for k in KS}
    grid = [(accuracy((1 - w) * p + w * votes[k], y, va), -w, k, w) for k in KS for w in MIX]
    _, _, k, w = max(grid)
    mixed = accuracy((1 - w) * p + w * votes[k], y, te)
    return (f"{accuracy(p, y, te):.3f} | {' / '.join(f'{accuracy(votes[k], y, te):.3f}' for k in (1, 5, 10))} | "
            f"{mixed:.3f} (k={k}, w={w})")


def class_name_similarity(texts_emb: np.ndarray, names: list[str]) -> np.ndarray:
    """[N, 384] MiniLM text embeddings -> [N, C] cosine similarity to each class name's embedding."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from mmcli.models.pretrained import minilm_folder

    folder = minilm_folder()
    tok, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    batch = tok(names, padding=True, return_tensors="pt")
    with torch.no_grad():
        h = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    label = torch.nn.functional.normalize((h * mask).sum(1) / mask.sum(1), dim=1).numpy()
    return texts_emb / np.linalg.norm(texts_emb, axis=1, keepdims=True) @ label.T


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="+", default=["noto", "openmoji", "mdi", "cross"], choices=list(BUILDERS))
    ap.add_argument("--data", type=Path, default=Path("/tmp/mm-sets"))
    ap.add_argument("--src", type=Path, default=Path("/tmp/mm-src"))
    args = ap.parse_args()
    os.environ.setdefault("MM_QUIET", "1")
    from sklearn.preprocessing import StandardScaler

    knn, prior = [], []
    for name in args.sets:
        csv_path = build(name, args.data, args.src)
        f, y, split = features(csv_path)
        x = {"image": f["image"], "text": f["text"], "fused": np.hstack([f["image"], f["text"]])}
        knn += [f"| {name} | {mod} | {knn_rows(x[mod], y, split)} |" for mod in x]
        with open(csv_path, newline="", encoding="utf-8") as fh:
            names = sorted({r["label"] for r in csv.DictReader(fh)})
        tr, va, te = split == 0, split == 1, split == 2
        z = StandardScaler().fit(f["text"][tr]).transform(f["text"])
        logp, sim = fitted_probe(z, y, tr, va).predict_log_proba(z), class_name_similarity(f["text"], names)
        by_w = {w: (accuracy(logp + w * sim, y, va), accuracy(logp + w * sim, y, te)) for w in PRIOR}
        chosen = max(PRIOR, key=lambda w: (by_w[w][0], -w))
        prior.append(f"| {name} | {accuracy(sim, y, te):.3f} | "
                     f"{' / '.join(f'{by_w[w][1]:.3f}' for w in PRIOR)} | {chosen:g} -> {by_w[chosen][1]:.3f} |")
    print("# probe extras over the frozen features (test accuracy; choices on val)\n")
    print("| set | input | probe | kNN alone, k = 1 / 5 / 10 | probe + kNN vote (k, w on val) |\n|---|---|---|---|---|")
    print("\n".join(knn))
    print(f"\n| set | class-name similarity alone | text probe + w x similarity, w = "
          f"{' / '.join(f'{w:g}' for w in PRIOR)} | w on val -> test |\n|---|---|---|---|")
    print("\n".join(prior))


if __name__ == "__main__":
    main()
