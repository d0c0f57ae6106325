"""Print the model card's summary table from a benchmarks.json written by quality.py.

    python benchmarks/card_table.py docs/benchmarks.json

One row per task, mean PSNR per level for each method that ran; the card quotes this output so
its numbers are the measured ones.
"""

from __future__ import annotations

import json
import sys

import numpy as np


def table(path: str) -> str:
    data = json.load(open(path, encoding="utf-8"))
    lines = ["| task | levels | method | mean PSNR (dB) per level | images |", "|---|---|---|---|---|"]
    for task in data["tasks"].values():
        levels = list(task["levels"])
        methods: dict[str, list[str]] = {}
        counts: dict[str, int] = {}
        for level in task["levels"].values():
            for name, result in level["methods"].items():
                values = [v for v in result["psnr"] if v is not None]
                methods.setdefault(name, []).append(f"{np.mean(values):.2f}" if values else "–")
                counts[name] = len(values)  # a method may run on a subset (CBM3D)
        for name, values in methods.items():
            row = f"| {task['title']} | {' / '.join(levels)} | {name} | {' / '.join(values)} | {counts[name]} |"
            lines.append(row)
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(sys.argv[1] if len(sys.argv) > 1 else "docs/benchmarks.json"))
