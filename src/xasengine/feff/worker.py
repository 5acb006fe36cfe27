"""Runs feff10-rs in its own process, so the parent can enforce a timeout and survive a crash."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path


def main(workdir: str) -> int:
    import feff10

    work = Path(workdir)
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = feff10.run(str(work / "feff.inp"), str(work))
        except BaseException as exc:  # re-raised in the main thread
            outcome["error"] = exc

    # Terminated (timeout, or the job died): take FEFF's stage processes in this process group along.
    # FEFF runs in a thread so that the main thread stays free to receive the signal.
    signal.signal(signal.SIGTERM, lambda *_: os.killpg(0, signal.SIGKILL))
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.5)
    if "error" in outcome:
        raise outcome["error"]
    stages = {str(s.stage).split(".")[-1]: float(s.duration_secs) for s in outcome["result"].stages}
    (work / "stage_timings.json").write_text(json.dumps(stages))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
