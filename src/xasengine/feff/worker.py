"""Runs feff10-rs in its own process, so the parent can enforce a timeout and survive a crash."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(workdir: str) -> int:
    import feff10

    work = Path(workdir)
    result = feff10.run(str(work / "feff.inp"), str(work))
    stages = {str(s.stage).split(".")[-1]: float(s.duration_secs) for s in result.stages}
    (work / "stage_timings.json").write_text(json.dumps(stages))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
