"""What an evaluation writes: ``results.csv``, ``summary.json`` and ``report.html``.

``results.csv`` has one row per image and method, appended (and flushed to disk) as each
image finishes, so an interrupted run leaves a valid file and ``--resume`` can skip what is
done. Columns: :data:`CSV_FIELDS`. Empty cells mean "not measured" (metric unavailable, or not
applicable such as OCR without a known string).

``summary.json`` holds per-method means (:func:`method_means`), the dataset, weights with
sha256, versions, seed and wall time; written atomically.

``report.html`` is one self-contained page (inline CSS and JS, no network): the summary table
(Table-3 style: PSNR, SSIM, LPIPS, FID, and OCR CER when measured) and the per-image table,
both sortable by clicking a column header, and per image the degraded input, a restored image
(method chosen from a menu), the ground truth and a before/after slider. Images are referenced
by relative path (``images/...``), so the page stays small and the folder can be moved as a
whole; ``loading="lazy"`` keeps long reports quick. At most :data:`MAX_GALLERY` images get a
gallery card.
"""

from __future__ import annotations

import csv
import html
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from m3restore import files
from m3restore.errors import ConfigError

__all__ = [
    "CSV_FIELDS",
    "MAX_GALLERY",
    "METRICS",
    "ResultsWriter",
    "atomic_write_text",
    "image_path",
    "method_means",
    "read_results",
    "write_report",
    "write_summary",
]

CSV_FIELDS = ("image", "method", "prompt", "psnr", "ssim", "lpips", "ocr_cer", "ocr_text", "truth_text", "seconds")
#: metric -> (column header, higher is better, decimals)
METRICS = {
    "psnr": ("PSNR (dB) ↑", True, 2),
    "ssim": ("SSIM ↑", True, 4),
    "lpips": ("LPIPS ↓", False, 4),
    "fid": ("FID ↓", False, 2),
    "ocr_cer": ("OCR CER ↓", False, 3),
}
MAX_GALLERY = 200
DEGRADED_DIR = "_degraded"
TARGET_DIR = "_target"


def image_path(folder: str, name: str) -> str:
    """Relative path (from the run folder) of an image: ``images/<folder>/<name>.png``."""
    return f"images/{folder}/{name}.png"


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and a rename (readers never see half a file)."""
    files.atomic_write_text(path, text, error=ConfigError)


# --------------------------------------------------------------------------------------------
# results.csv
# --------------------------------------------------------------------------------------------


def _cell(value: Any, decimals: int | None = None) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.{decimals}f}" if decimals is not None else repr(value)
    return str(value)


_DECIMALS = {"psnr": 4, "ssim": 6, "lpips": 6, "ocr_cer": 4, "seconds": 3}


class ResultsWriter:
    """Appends rows to ``results.csv`` and makes each batch durable (flush + fsync)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        new = not self.path.exists() or self.path.stat().st_size == 0
        if not new:
            _drop_partial_last_line(self.path)
        self.handle = open(self.path, "a", encoding="utf-8", newline="")
        self.writer = csv.DictWriter(self.handle, fieldnames=CSV_FIELDS, extrasaction="ignore")
        if new:
            self.writer.writeheader()
            self.sync()

    def write(self, row: dict[str, Any]) -> None:
        self.writer.writerow({k: _cell(row.get(k), _DECIMALS.get(k)) for k in CSV_FIELDS})

    def sync(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def close(self) -> None:
        if not self.handle.closed:
            self.sync()
            self.handle.close()


def _drop_partial_last_line(path: Path) -> None:
    """Cut a last line that a crash left without its newline."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as handle:
            handle.truncate(data.rfind(b"\n") + 1)


def _number(text: str | None) -> float | None:
    if text is None or text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return None


def read_results(path: Path) -> list[dict[str, Any]]:
    """Rows of ``results.csv`` with numbers parsed (None for empty cells); malformed rows are skipped."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, encoding="utf-8", newline="") as handle:
        text = handle.read()
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    reader = csv.DictReader(text.splitlines())
    if reader.fieldnames is None or "image" not in reader.fieldnames or "method" not in reader.fieldnames:
        return []
    rows = []
    for raw in reader:
        if raw.get("image") in (None, "") or raw.get("method") in (None, "") or None in raw.values():
            continue
        row: dict[str, Any] = {k: raw.get(k, "") for k in CSV_FIELDS}
        for k in ("psnr", "ssim", "lpips", "ocr_cer", "seconds"):
            row[k] = _number(raw.get(k))
        rows.append(row)
    return rows


def method_means(rows: Iterable[dict[str, Any]], method: str) -> dict[str, Any]:
    """Means of each per-image metric over the rows of ``method`` (None where nothing was measured)."""
    mine = [r for r in rows if r["method"] == method]
    out: dict[str, Any] = {"images": len(mine)}
    for key in ("psnr", "ssim", "lpips", "ocr_cer", "seconds"):
        values = [r[key] for r in mine if r.get(key) is not None]
        out[key] = float(sum(values) / len(values)) if values else None
    return out


# --------------------------------------------------------------------------------------------
# summary.json
# --------------------------------------------------------------------------------------------


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    """Write ``summary`` as JSON (non-finite numbers become null)."""
    atomic_write_text(path, json.dumps(_json_safe(summary), indent=2, ensure_ascii=False) + "\n")


# --------------------------------------------------------------------------------------------
# report.html
# --------------------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.5em;margin:0 0 .3em}h2{font-size:1.2em;margin:1.5em 0 .5em}
.meta,.notes{color:#555}.notes li{margin:.1em 0}.partial{background:#fff3cd;border:1px solid #e0c060;padding:.5em}
table{border-collapse:collapse;background:#fff;margin:.3em 0}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:right;white-space:nowrap}
th{background:#eee;cursor:pointer;user-select:none}th:hover{background:#e0e0e0}
td.t,th.t{text-align:left;white-space:normal}
th[data-dir=asc]::after{content:" ▲"}th[data-dir=desc]::after{content:" ▼"}
.scroll{max-height:30em;overflow:auto;display:inline-block;border:1px solid #ddd}
.card{background:#fff;border:1px solid #ddd;margin:1em 0;padding:.6em}
.card h3{margin:0 0 .4em;font-size:1em}.card .m{color:#555;font-weight:normal}
.panels{display:grid;grid-template-columns:repeat(auto-fill,minmax(240px,1fr));gap:8px}
figure{margin:0}figure img{display:block;width:100%;height:auto;background:#eee;image-rendering:auto}
figcaption{font-size:12px;color:#555;text-align:center}
.cmp{position:relative;--x:50%}.cmp .top{position:absolute;left:0;top:0;clip-path:inset(0 calc(100% - var(--x)) 0 0)}
.cmp .bar{position:absolute;top:0;bottom:0;left:var(--x);width:2px;background:#fff;box-shadow:0 0 2px #000}
.cmp input{width:100%;margin:4px 0 0}
"""

_JS = """
function sortBy(th){
  const table=th.closest('table'),tb=table.tBodies[0],i=[...th.parentNode.children].indexOf(th);
  const num=th.dataset.type==='num',dir=th.dataset.dir==='asc'?'desc':'asc',s=dir==='asc'?1:-1;
  table.querySelectorAll('th').forEach(h=>delete h.dataset.dir);th.dataset.dir=dir;
  const key=r=>{const c=r.cells[i],v=c.dataset.v!==undefined?c.dataset.v:c.textContent;
    if(!num)return v;const f=parseFloat(v);return isNaN(f)?null:f};
  [...tb.rows].map(r=>[key(r),r]).sort((a,b)=>{if(a[0]===b[0])return 0;if(a[0]===null)return 1;
    if(b[0]===null)return -1;return a[0]<b[0]?-s:s}).forEach(p=>tb.appendChild(p[1]));
}
document.querySelectorAll('table.sortable th').forEach(th=>th.addEventListener('click',()=>sortBy(th)));
const DATA=JSON.parse(document.getElementById('data').textContent);
function pick(m){
  document.querySelectorAll('.card').forEach(card=>{
    const n=card.dataset.name,d=(DATA.rows[m]||{})[n];
    card.querySelectorAll('img.restored').forEach(img=>{img.src=d?DATA.dirs[m]+'/'+card.dataset.file:'';
      img.alt=d?m:'not restored by '+m});
    card.querySelector('.m').textContent=d?(m+': '+d):(m+': not done');
  });
}
const sel=document.getElementById('method');if(sel){sel.addEventListener('change',()=>pick(sel.value));pick(sel.value);}
document.querySelectorAll('.cmp input').forEach(r=>r.addEventListener('input',()=>
  r.parentNode.style.setProperty('--x',r.value+'%')));
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _fmt(value: Any, decimals: int) -> tuple[str, str]:
    """(shown text, sort value)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–", ""
    if isinstance(value, float) and math.isinf(value):
        return "∞", "1e308"
    return f"{value:.{decimals}f}", repr(float(value))


def _num_td(value: Any, decimals: int) -> str:
    shown, key = _fmt(value, decimals)
    return f'<td data-v="{key}">{shown}</td>'


def _summary_table(summary: dict[str, Any]) -> str:
    methods = summary.get("methods", {})
    show_ocr = any(m.get("means", {}).get("ocr_cer") is not None for m in methods.values())
    cols = ["psnr", "ssim", "lpips", "fid"] + (["ocr_cer"] if show_ocr else [])
    head = '<th class="t" data-type="text">Method</th>' + "".join(
        f'<th data-type="num">{_e(METRICS[c][0])}</th>' for c in cols
    )
    head += '<th data-type="num">Images</th><th data-type="num">s / image</th><th class="t">Prompt</th>'
    body = []
    for mid, m in methods.items():
        means = m.get("means", {})
        cells = [f'<td class="t">{_e(m.get("label", mid))}</td>']
        for c in cols:
            value = m.get("fid") if c == "fid" else means.get(c)
            cells.append(_num_td(value, METRICS[c][2]))
        cells.append(_num_td(means.get("images"), 0))
        cells.append(_num_td(means.get("seconds"), 3))
        cells.append(f'<td class="t">{_e(m.get("prompt_mode") or "")}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="sortable" id="summary"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _results_table(rows: list[dict[str, Any]], labels: dict[str, str], has_text: bool) -> str:
    cols = [("psnr", 2), ("ssim", 4), ("lpips", 4)] + ([("ocr_cer", 3)] if has_text else [])
    head = '<th class="t" data-type="text">Image</th><th class="t" data-type="text">Method</th>'
    head += "".join(f'<th data-type="num">{_e(METRICS[c][0])}</th>' for c, _ in cols)
    if has_text:
        head += '<th class="t" data-type="text">OCR reading</th><th class="t" data-type="text">Truth</th>'
    head += '<th data-type="num">Seconds</th><th class="t" data-type="text">Prompt</th>'
    body = []
    for r in rows:
        cells = [
            f'<td class="t">{_e(r["image"])}</td>',
            f'<td class="t">{_e(labels.get(r["method"], r["method"]))}</td>',
        ]
        cells += [_num_td(r.get(c), d) for c, d in cols]
        if has_text:
            cells += [
                f'<td class="t">{_e(r.get("ocr_text") or "")}</td>',
                f'<td class="t">{_e(r.get("truth_text") or "")}</td>',
            ]
        cells += [_num_td(r.get("seconds"), 3), f'<td class="t">{_e(r.get("prompt") or "")}</td>']
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<div class="scroll"><table class="sortable" id="results"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _url(path: str) -> str:
    return quote(path, safe="/")


def _gallery(summary: dict[str, Any], rows: list[dict[str, Any]], names: list[str], dirs: dict[str, str]) -> str:
    methods = [m for m, info in summary.get("methods", {}).items() if info.get("kind") != "reference"]
    if not names or not methods:
        return "<p>No images.</p>"
    models = [m for m in methods if summary["methods"][m].get("kind") == "model"]
    chosen = models[0] if models else methods[-1]  # the first model row, else the last baseline
    options = "".join(
        f'<option value="{_e(m)}"{" selected" if m == chosen else ""}>'
        f"{_e(summary['methods'][m].get('label', m))}</option>"
        for m in methods
    )
    texts = {r["image"]: r.get("truth_text") for r in rows if r.get("truth_text")}
    cards = []
    for name in names[:MAX_GALLERY]:
        file = _e(_url(f"{name}.png"))
        deg = _e(_url(image_path(DEGRADED_DIR, name)))
        tgt = _e(_url(image_path(TARGET_DIR, name)))
        truth = f" · “{_e(texts[name])}”" if name in texts else ""
        cards.append(
            f'<section class="card" data-name="{_e(name)}" data-file="{file}">'
            f'<h3>{_e(name)}{truth} <span class="m"></span></h3><div class="panels">'
            f'<figure><img loading="lazy" src="{deg}" alt="degraded"><figcaption>degraded</figcaption></figure>'
            f'<figure><img loading="lazy" class="restored" alt="restored"><figcaption>restored</figcaption></figure>'
            f'<figure><img loading="lazy" src="{tgt}" alt="ground truth"><figcaption>ground truth</figcaption></figure>'
            f'<figure><div class="cmp"><img loading="lazy" class="restored" alt="restored">'
            f'<img loading="lazy" class="top" src="{deg}" alt="degraded"><div class="bar"></div>'
            f'<input type="range" min="0" max="100" value="50" aria-label="before/after"></div>'
            f"<figcaption>before ◀ slider ▶ after</figcaption></figure></div></section>"
        )
    more = ""
    if len(names) > MAX_GALLERY:
        more = f"<p>Showing the first {MAX_GALLERY} of {len(names)} images; all of them are under images/.</p>"
    return f'<p><label>Restored by <select id="method">{options}</select></label></p>' + "".join(cards) + more


def write_report(
    path: Path,
    summary: dict[str, Any],
    rows: list[dict[str, Any]],
    names: list[str],
    dirs: dict[str, str],
) -> None:
    """Write ``report.html`` (see the module docstring).

    ``names`` are the images in dataset order that have saved images; ``dirs`` maps method id
    to its image folder relative to the run folder (``images/<method>``).
    """
    labels = {m: info.get("label", m) for m, info in summary.get("methods", {}).items()}
    has_text = any(r.get("truth_text") for r in rows)
    per_image: dict[str, dict[str, str]] = {}
    for r in rows:
        if summary.get("methods", {}).get(r["method"], {}).get("kind") == "reference":
            continue
        bits = [f"PSNR {r['psnr']:.2f} dB" if r.get("psnr") is not None and math.isfinite(r["psnr"]) else None]
        bits.append(f"SSIM {r['ssim']:.4f}" if r.get("ssim") is not None else None)
        bits.append(f"LPIPS {r['lpips']:.4f}" if r.get("lpips") is not None else None)
        bits.append(f"CER {r['ocr_cer']:.3f} “{r.get('ocr_text') or ''}”" if r.get("ocr_cer") is not None else None)
        per_image.setdefault(r["method"], {})[r["image"]] = " · ".join(b for b in bits if b)
    data = json.dumps({"rows": per_image, "dirs": {m: _url(d) for m, d in dirs.items()}}, ensure_ascii=True)
    data = data.replace("</", "<\\/")
    ds = summary.get("dataset", {})
    images = summary.get("images", {})
    title = f"m3restore eval: {ds.get('dataset', '?')}"
    meta = [
        f"{images.get('scored', 0)} of {images.get('total', 0)} images",
        f"seed {summary.get('seed')}",
        f"wall time {summary.get('wall_time_s', 0):.1f} s",
        f"m3restore {summary.get('versions', {}).get('m3restore', '?')}",
    ]
    if ds.get("degrade"):
        meta.insert(1, f"degradation {ds['degrade']}")
    partial = ""
    if not summary.get("complete", True):
        why = summary.get("stopped") or "interrupted"
        partial = (
            f'<p class="partial">Partial results ({_e(why)}): {images.get("scored", 0)} of '
            f"{images.get('total', 0)} images. Continue with <code>--resume</code>.</p>"
        )
    notes = "".join(f"<li>{_e(line)}</li>" for line in summary.get("notes", []))
    weights = "".join(
        f"<li>{_e(w.get('label'))}: <code>{_e(w.get('path'))}</code> · predictor sha256 "
        f"<code>{_e((w.get('predictor_sha256') or '')[:16])}…</code></li>"
        for w in summary.get("weights", [])
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{_e(title)}</title><style>{_CSS}</style></head><body>
<h1>{_e(title)}</h1>
<p class="meta">{_e(" · ".join(meta))}</p>
{partial}<ul class="notes">{notes}{weights}</ul>
<h2>Summary</h2>
{_summary_table(summary)}
<p class="meta">PSNR and SSIM on 8-bit rounded RGB (data range 255; SSIM: 11x11 Gaussian window, sigma 1.5,
channel mean). Click a column header to sort.</p>
<h2>Per image</h2>
{_results_table(rows, labels, has_text)}
<h2>Images</h2>
{_gallery(summary, rows, names, dirs)}
<script type="application/json" id="data">{data}</script>
<script>{_JS}</script>
</body></html>
"""
    atomic_write_text(path, page)
