"""Head-fitting choices over frozen EfficientNet-Lite0 + MiniLM features, on the accuracy benchmark's four sets.

Reads the frozen tables through `benchmarks/accuracy.py`'s `features` (computed once, kept in $MM_CACHE_DIR), then
compares on the test split: the logistic-regression probe (C on val), with and without a refit on train + val; an
MLP head like mmcli's concat head (3 seeds), refit, standardised inputs, a linear head; and feature-level modality
dropout. These numbers fed the defaults in docs/benchmarks.md ("What the recipe choices rest on").

    MM_CACHE_DIR=/tmp/mm-acc-cache HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/frozen_heads.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import features
from datasets import BUILDERS, build

torch.set_num_threads(1)


def heads(name: str, d: dict) -> None:
    y, sp = d["y"], d["split"]
    tr, va, te = sp == 0, sp == 1, sp == 2
    trva = tr | va
    C = int(y.max()) + 1
    X = {"image": d["image"], "text": d["text"], "both": np.hstack([d["image"], d["text"]])}
    def probe(x, refit=False, Cs=(0.01, 0.03, 0.1, 0.3, 1.0)):
        sc = StandardScaler().fit(x[tr]); z = sc.transform(x)
        best = max(Cs, key=lambda c: (LogisticRegression(C=c, max_iter=2000).fit(z[tr], y[tr]).score(z[va], y[va]), -c))
        rows = trva if refit else tr
        if refit: z = StandardScaler().fit(x[rows]).transform(x)
        m = LogisticRegression(C=best, max_iter=2000).fit(z[rows], y[rows])
        return m.predict_proba(z)
    def head(x, rows, epochs, seed, wd=0.01, hidden=256, lr=1e-3, drop=0.2, bs=64, std=False):
        torch.manual_seed(seed); x = torch.tensor(x, dtype=torch.float32)
        if std: x = (x - x[rows].mean(0)) / (x[rows].std(0) + 1e-6)
        D = x.shape[1]
        net = torch.nn.Sequential(torch.nn.Dropout(drop), torch.nn.Linear(D, hidden), torch.nn.ReLU(), torch.nn.Dropout(drop), torch.nn.Linear(hidden, C)) if hidden else torch.nn.Sequential(torch.nn.Dropout(drop), torch.nn.Linear(D, C))
        opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=wd)
        idx = np.where(rows)[0]; yt = torch.tensor(y)
        steps = epochs * ((len(idx) + bs - 1) // bs); warm = max(1, int(0.05*steps))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s+1)/warm if s < warm else 0.5*(1+np.cos(np.pi*min(1,(s-warm)/max(1,steps-warm)))))
        g = np.random.default_rng(seed); hist = []
        for ep in range(epochs):
            net.train(); perm = g.permutation(idx)
            for i in range(0, len(perm), bs):
                b = perm[i:i+bs]; loss = torch.nn.functional.cross_entropy(net(x[b]), yt[b])
                opt.zero_grad(); loss.backward(); opt.step(); sched.step()
            net.eval()
            with torch.no_grad(): p = torch.softmax(net(x), 1).numpy()
            hist.append(p)
        return hist
    acc = lambda p, m: float((p[m].argmax(1) == y[m]).mean())
    res = {}
    P = probe(X["both"]); res["probe"] = [acc(P, te)]
    res["probe+refit"] = [acc(probe(X["both"], True), te)]
    pi, pt = probe(X["image"]), probe(X["text"])
    res["late probe (mean logp)"] = [acc(np.log(pi+1e-9)+np.log(pt+1e-9), te)]
    for k in ("mlp", "mlp+refit", "mlp last", "mlp std", "lin wd0.01 lr3e-3", "mlp30 ens probe"):
        res[k] = []
    for seed in range(3):
        h = head(X["both"], tr, 30, seed)
        bv = int(np.argmax([acc(p, va) for p in h]))
        res["mlp"].append(acc(h[bv], te)); res["mlp last"].append(acc(h[-1], te))
        res["mlp30 ens probe"].append(acc(np.log(h[bv]+1e-9) + np.log(P+1e-9), te))
        h2 = head(X["both"], trva, bv + 1, seed)
        res["mlp+refit"].append(acc(h2[-1], te))
        h = head(X["both"], tr, 30, seed, std=True)
        bv = int(np.argmax([acc(p, va) for p in h])); res["mlp std"].append(acc(h[bv], te))
        h = head(X["both"], tr, 30, seed, hidden=0, lr=3e-3)
        bv = int(np.argmax([acc(p, va) for p in h])); res["lin wd0.01 lr3e-3"].append(acc(h[bv], te))
    for k, v in res.items():
        print(f"{name:9s} {k:24s} {np.mean(v):.3f} ± {np.std(v):.3f}")


def modality_dropout(name: str, d: dict) -> None:
    y, sp = d["y"], d["split"]
    tr, va, te = sp == 0, sp == 1, sp == 2
    C = int(y.max()) + 1
    xi, xt = torch.tensor(d["image"]), torch.tensor(d["text"])
    for p in (0.0, 0.1, 0.3, 0.5):
        accs = []
        for seed in range(2):
            torch.manual_seed(seed)
            mi, mt = torch.nn.Parameter(torch.zeros(xi.shape[1])), torch.nn.Parameter(torch.zeros(xt.shape[1]))
            net = torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Linear(xi.shape[1] + xt.shape[1], 256), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(256, C))
            opt = torch.optim.AdamW(list(net.parameters()) + [mi, mt], lr=1e-3, weight_decay=0.01)
            idx = np.where(tr)[0]; yt = torch.tensor(y); g = np.random.default_rng(seed); best = (-1, 0)
            for ep in range(30):
                net.train()
                for b in np.array_split(g.permutation(idx), len(idx) // 64):
                    a, t = xi[b], xt[b]
                    if p > 0:
                        hide = torch.rand(len(b), 2) < p
                        hide[hide.all(1)] = False
                        a = torch.where(hide[:, :1], mi, a); t = torch.where(hide[:, 1:], mt, t)
                    loss = torch.nn.functional.cross_entropy(net(torch.cat([a, t], 1)), yt[b])
                    opt.zero_grad(); loss.backward(); opt.step()
                net.eval()
                with torch.no_grad(): pr = net(torch.cat([xi, xt], 1)).argmax(1).numpy()
                v = (pr[va] == y[va]).mean()
                if v > best[0]: best = (v, (pr[te] == y[te]).mean())
            accs.append(best[1])
        print(f"{name:9s} modality dropout {p}: {np.mean(accs):.3f}", flush=True)


def main() -> None:
    os.environ.setdefault("MM_QUIET", "1")
    for name in BUILDERS:
        feats, y, split = features(build(name, Path("/tmp/mm-sets"), Path("/tmp/mm-src")))
        d = {"image": feats["image"], "text": feats["text"], "y": y, "split": split}
        heads(name, d)
        modality_dropout(name, d)


if __name__ == "__main__":
    main()
