"""Write a polars frame (the aggregated table, or raw runs) as CSV, Parquet or JSON.

CSV has no nested values: list and struct columns are written as JSON text. A text cell that a
spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, tab or carriage
return: a suite name, a model path, an error message are all user text) is prefixed with ``'``.
JSON is an array of row objects (NaN and infinities become null: they are not JSON). Parquet
keeps the types.
"""

from __future__ import annotations

import io
import json
import math
import os
import sys
from pathlib import Path
from typing import IO, Any

import polars as pl

from lembench.errors import UserError
from lembench.report import EXPORT_FORMATS as FORMATS


def flat(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with nested (list, struct, array) columns as JSON text (encoded by polars: wrap
    the value in a one-field struct, encode, cut the wrapper off again)."""
    nested = [
        name
        for name, dtype in frame.schema.items()
        if isinstance(dtype, pl.List | pl.Struct | pl.Array)
    ]
    objects = [name for name, dtype in frame.schema.items() if isinstance(dtype, pl.Object)]
    exprs = []
    prefix = len('{"v":')
    for name in nested:
        encoded = pl.struct(pl.col(name).alias("v")).struct.json_encode()
        text = encoded.str.slice(prefix, encoded.str.len_chars() - prefix - 1)
        exprs.append(pl.when(pl.col(name).is_not_null()).then(text).alias(name))
    exprs += [
        pl.Series(name, [_json(v) for v in frame[name].to_list()], dtype=pl.String)
        for name in objects
    ]
    return frame.with_columns(exprs) if exprs else frame


#: What makes a spreadsheet read a cell as a formula (OWASP's CSV injection list).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with every text cell that starts like a formula prefixed with ``'`` (numbers,
    negative ones included, are number columns and stay as they are)."""
    texts = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    pattern = "^[" + "".join("\\" + c if c in "-+" else c for c in FORMULA_START) + "]"
    return frame.with_columns(
        pl.when(pl.col(name).str.contains(pattern))
        .then(pl.lit("'") + pl.col(name))
        .otherwise(pl.col(name))
        .alias(name)
        for name in texts
    )


def _json(v: Any) -> str | None:
    return None if v is None else json.dumps(_clean(v), ensure_ascii=False, default=str)


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    return v


def json_text(frame: pl.DataFrame) -> str:
    """The frame as a JSON array of row objects (polars writes NaN and infinities as null)."""
    if any(isinstance(dtype, pl.Object) for dtype in frame.schema.values()):
        rows = _clean(frame.to_dicts())
        return json.dumps(rows, ensure_ascii=False, default=str, allow_nan=False) + "\n"
    return frame.write_json() + "\n"


def export(frame: pl.DataFrame, fmt: str, out: Path | IO[Any] | None = None) -> None:
    """Write ``frame`` as ``fmt`` (csv, parquet, json) to the path ``out`` (written whole or not at
    all: via a temporary file renamed into place), a file object, or stdout when None."""
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if out is None:
        if fmt == "parquet":
            if sys.stdout.isatty():
                raise UserError("parquet is binary: give --out FILE (or redirect stdout)")
            # Whole, then written: a pipe closed early (`| head`) is a BrokenPipeError the CLI ends
            # quietly on, not a parquet writer's transport error half-way through.
            buffer = io.BytesIO()
            frame.write_parquet(buffer)
            sys.stdout.buffer.write(buffer.getvalue())
            sys.stdout.buffer.flush()
            return
        out = sys.stdout
    if isinstance(out, str | os.PathLike):
        path = Path(out)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            _write(frame, fmt, tmp)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return
    _write(frame, fmt, out)


def _write(frame: pl.DataFrame, fmt: str, out: Path | IO[Any]) -> None:
    if fmt == "parquet":
        frame.write_parquet(out)
    elif fmt == "csv":
        if isinstance(out, Path):
            csv_safe(flat(frame)).write_csv(out)
        else:
            out.write(csv_safe(flat(frame)).write_csv())
    elif isinstance(out, Path):
        out.write_text(json_text(frame), "utf-8")
    else:
        out.write(json_text(frame))
