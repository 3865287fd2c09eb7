"""``bora train offline|online``: dispatch to the offline (Sec. 3.1) or online (Sec. 3.2) trainer."""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    usage = "usage: bora train {offline,online} [options]   (bora train offline --help)"
    if not argv or argv[0] in ("-h", "--help"):
        print(usage + "\n\n  offline  offline phase: BC warm-up then BC+PPO with the chunk critic (and baselines)\n"
              "  online   online phase: residual chunk actor with RLPD and human interventions")
        return 0 if argv else 2
    if argv[0] == "offline":
        from bora_trainer.offline.cli import main as run
    elif argv[0] == "online":
        from bora_trainer.online.cli import main as run
    else:
        print(f"bora train: unknown phase {argv[0]!r}\n{usage}", file=sys.stderr)
        return 2
    return int(run(argv[1:]) or 0)
