"""`mm preprocess`: validate every row and build (or reuse) the cache; report bad rows."""

from __future__ import annotations

from pathlib import Path

from mmcli.config import Config
from mmcli.data.cache import build_cache, check_bad_share
from mmcli.data.manifest import read_manifest
from mmcli.progress import info


def preprocess(csv_path: Path, cfg: Config, out_dir: Path | None = None, write_manifest: Path | None = None) -> dict:
    """-> summary {cache, rows, valid_rows, bad_rows, bad_rows_csv, row_numbers, inputs, labels, reused}. Raises
    DataError (exit 1) when the share of bad rows exceeds `data.max_bad_fraction` (the cache and bad_rows.csv are
    kept). `write_manifest`: also write the rows as read (e.g. inferred from a folder tree) to this CSV first."""
    man = read_manifest(csv_path, cfg.data, need_label=False)
    if write_manifest:
        from mmcli.data.formats import write_manifest as write_rows

        info(f"wrote the manifest ({len(man.rows)} rows) to {write_rows(man, write_manifest)}")
    cache, bad, reused = build_cache(man, cfg, out_dir)
    summary = {
        "cache": str(cache.dir),
        "rows": len(man.rows),
        "valid_rows": int(cache.valid.sum()),
        "bad_rows": len(bad),
        "bad_rows_csv": str(cache.dir / "bad_rows.csv"),
        "format": man.format,
        "row_numbers": cache.meta.get("row_numbers", ""),
        "inputs": cache.inputs,
        "label_column": man.label_column,
        "labels": cache.meta["label_names"],
        "ignored_columns": man.ignored_columns,
        "reused": reused,
    }
    info(f"{'reused' if reused else 'built'} cache {cache.dir}: {summary['valid_rows']}/{len(man.rows)} rows valid; "
         f"inputs {', '.join(i['name'] + ' (' + i['kind'] + ')' for i in cache.inputs)}; "
         f"{len(summary['labels'])} labels")
    if bad:
        info(f"  row numbers below: {summary['row_numbers']}")
    for b in bad[:10]:
        info(f"  bad {cache.meta.get('row_label', 'row')} {b.row} [{b.column}]: {b.reason}")
    if len(bad) > 10:
        info(f"  ... {len(bad) - 10} more in {summary['bad_rows_csv']}")
    check_bad_share(bad, len(man.rows), cfg.data.max_bad_fraction, cache.dir / "bad_rows.csv",
                    cache.meta.get("row_label", "row"))
    return summary
