"""What an offline run directory may hold across calls of ``bora train offline`` (ours).

* :func:`refuse_finished_run`: a fresh run never writes into another run's directory.
* :func:`keep_selection`: ``--resume`` of a finished run that ``bora select`` deployed a checkpoint of does not
  re-export ``RUN/policy`` (until 2026-12-08 it silently replaced the selected policy with the last checkpoint's
  while ``selection.json`` still named the selected step).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bora_trainer.checkpoint import LATEST


def refuse_finished_run(run_dir: Path) -> None:
    """A fresh run never writes into another run's directory: its checkpoints and export would sit beside the
    new ones (``latest`` would point to whichever was written last). Raises FileExistsError (one line)."""
    pointer = run_dir / LATEST
    found = (f"a checkpoint ({pointer.read_text().strip()})" if pointer.is_file()
             else "an exported policy" if (run_dir / "policy").exists() else None)
    if found:
        raise FileExistsError(f"--out {run_dir}: already holds {found} of another run; continue it with "
                              f"--resume, or choose another --out (or move that run away)")

def keep_selection(run_dir: Path, algo: str, start: int, step: int, say: Callable[[str], None]) -> bool:
    """True when the run must not (re-)export: ``bora select`` chose ``RUN/policy`` (``selection.json``) and this
    call made no update (``start == step``: ``--resume`` of a finished run). After new updates the run exports as
    always and ``say`` reports, one line, that the selection is outdated (it is then an error where it is read:
    ``select.selection_mismatch``, since the run's checkpoints are no longer the candidates)."""
    from bora_trainer.select import SELECTION

    sel = Path(run_dir) / SELECTION
    if not sel.is_file():
        return False
    if step == start:
        say(f"offline {algo}: no update to make (step {step}); RUN/policy stays the checkpoint `bora select` "
            f"chose ({sel}), not re-exported")
        return True
    say(f"offline {algo}: trained on since `bora select` ({start} -> {step} updates): RUN/policy is now the last "
        f"checkpoint's export and {sel} is outdated; run `bora select` again")
    return False
