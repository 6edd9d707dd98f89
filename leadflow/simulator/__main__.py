"""``python -m leadflow.simulator --days 7 --seed 1 --out /tmp/x.jsonl``: write events, print counts."""
from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date

from .generate import SimulationConfig, write_jsonl


def main(argv: list[str] | None = None) -> int:
    d = SimulationConfig()
    ap = argparse.ArgumentParser(prog="python -m leadflow.simulator", description=__doc__)
    ap.add_argument("--out", required=True, help="JSON Lines file to write")
    ap.add_argument("--days", type=int, default=d.days)
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--start", type=date.fromisoformat, default=d.start, help="YYYY-MM-DD")
    ap.add_argument("--visitors-per-day", type=int, default=d.visitors_per_day)
    ap.add_argument("--duplicate-share", type=float, default=d.duplicate_share)
    ap.add_argument("--out-of-order-share", type=float, default=d.out_of_order_share)
    ap.add_argument("--invalid-share", type=float, default=d.invalid_share)
    ap.add_argument("--operators", type=int, default=None)
    ap.add_argument("--utc-offset-hours", type=int, default=d.utc_offset_hours)
    a = ap.parse_args(argv)
    try:
        cfg = SimulationConfig(days=a.days, seed=a.seed, start=a.start, visitors_per_day=a.visitors_per_day,
                               duplicate_share=a.duplicate_share, out_of_order_share=a.out_of_order_share,
                               invalid_share=a.invalid_share, operators=a.operators,
                               utc_offset_hours=a.utc_offset_hours)
    except ValueError as e:
        ap.error(str(e))
    t0 = time.perf_counter()
    try:
        counts = write_jsonl(cfg, a.out)
    except OSError as e:
        print(f"cannot write {a.out}: {e}", file=sys.stderr)
        return 2
    counts["seconds"] = round(time.perf_counter() - t0, 3)
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
