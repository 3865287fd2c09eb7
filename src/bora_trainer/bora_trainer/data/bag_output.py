"""The output directory of ``bora bag convert``: staged, checked up front, committed by rename.

Everything a conversion writes goes first into a staging directory next to its final place
(``OUT/.staging-*`` when OUT exists, ``.OUT.staging-*`` beside it when it does not). Only when
every episode has been built and written there is it committed: a new OUT is the staging
directory renamed; into an existing OUT each file is moved with ``os.replace`` (atomic per file),
data files before the JSON side files whose presence marks an episode complete. An error before
the commit removes the staging directory, so OUT is left exactly as it was (0 stray files).

A commit into an existing OUT replaces files one by one, so it is journalled (ours): ``OUT/commit.json`` names
its staging directory, the files in their order and its ledger lines, and is written before the first change;
then the JSON side files of the episodes it rewrites are removed, the files moved, the lines appended and the
journal removed. An interrupted commit (a crash, a write error) is completed by the next :class:`OutputDir` of
OUT from the files still staged, before anything is read. At every moment an episode is its old version, absent
(no JSON side file: not listed) or its new version: never a new data file beside an old side file.

A converted episode is named by (recording session, source episode id). When a different version
of an already converted episode comes (e.g. the finished recording after a live, incomplete
conversion), the more complete one is kept under the same id: the replaced files are moved to
``OUT/replaced/`` and a line is appended to ``OUT/ledger.jsonl`` (time, id, session, source id,
old and new content hashes, why). Nothing is silently duplicated or dropped.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bora_policy.common.episodes import FORMAT, DatasetMeta, EpisodeFormatError

LEDGER = "ledger.jsonl"
PENDING = "pending.json"  # episodes skipped while incomplete (a live recording): the bags of their parts
JOURNAL = "commit.json"  # a commit under way (module docstring)


class OutputError(RuntimeError):
    """The output directory cannot take the conversion (a file, unreadable, other cameras, read-only)."""


def _read_json(path: Path, what: str) -> dict | None:
    if not path.exists():
        return None
    try:
        d = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise OutputError(f"{path}: unreadable ({e}); expected {what}") from None
    if not isinstance(d, dict):
        raise OutputError(f"{path}: a JSON {type(d).__name__}; expected {what}")
    return d


def completeness(info: dict) -> tuple:
    """Order of versions of one episode: an outcome, a recorded START, more recorded steps, more steps."""
    return (
        not info.get("outcome_missing", info.get("outcome") is None),
        bool(info.get("start_recorded", True)),
        int(info.get("num_valid_steps", info.get("num_steps", 0))),
        int(info.get("num_steps", 0)),
    )


class OutputDir:
    """A conversion's view of OUT: existing episodes, the staged new ones, the commit."""

    def __init__(self, out: str | Path):
        self.out = Path(out)
        if self.out.exists() and not self.out.is_dir():
            raise OutputError(f"{self.out}: exists and is not a directory; expected an output directory")
        self.meta: DatasetMeta | None = None
        self.tmeta: dict | None = None
        self.known: dict[tuple[str, int], dict] = {}  # (session, source id) -> transitions info
        self.by_hash: dict[str, dict] = {}
        self.ids: set[int] = set()
        self.pending: dict[tuple[str, int], list[str]] = {}
        if self.out.is_dir():
            self._finish_interrupted_commit()
            self._scan()
        self._pending0 = dict(self.pending)
        self.stage: Path | None = None
        self.staged: list[tuple[int, dict, dict | None]] = []  # (id, tinfo, replaced tinfo)

    # ------------------------------------------------------------------ what is there
    def _scan(self) -> None:
        m = _read_json(self.out / "meta.json", f"a {FORMAT} meta.json")
        if m is not None:
            try:
                self.meta = DatasetMeta.from_dict(m)
            except (EpisodeFormatError, TypeError) as e:
                raise OutputError(f"{self.out / 'meta.json'}: {e}") from None
        self.tmeta = _read_json(self.out / "transitions" / "meta.json", "the transitions meta.json")
        pend = _read_json(self.out / PENDING, "a JSON object of pending episodes") or {}
        for k, v in pend.items():
            sess, _, src = k.rpartition("|")
            self.pending[(sess, int(src))] = list(v)
        for sub in ("transitions", "episodes"):
            for js in sorted((self.out / sub).glob("episode_*.json")):
                try:
                    self.ids.add(int(js.stem.split("_")[1]))
                except ValueError:
                    continue
                if sub != "transitions":
                    continue
                d = _read_json(js, "a converted episode's info")
                if not d or "content_hash" not in d:
                    continue
                self.by_hash[d["content_hash"]] = d
                if d.get("session_id") is not None and d.get("source_episode_id") is not None:
                    self.known[(str(d["session_id"]), int(d["source_episode_id"]))] = d

    def previous(self, session: str, src: int, content_hash: str) -> dict | None:
        """The converted version of this episode, if any (by key; by content for outputs without keys)."""
        return self.known.get((session, src)) or self.by_hash.get(content_hash)

    def parts(self, key: tuple[str, int]) -> list[str]:
        """Bags an episode was read from before (converted, or skipped while incomplete)."""
        known = self.known.get(key)
        return sorted(set(known.get("bags", []) if known else []) | set(self.pending.get(key, [])))

    def save_pending(self) -> None:
        """Write ``pending.json`` when it changed (episodes written since are no longer pending)."""
        for key in list(self.pending):
            if key in self.known and not self.known[key].get("outcome_missing"):
                self.pending.pop(key)
        if self.pending == self._pending0:
            return
        from bora_policy.common.episodes import _atomic_write_bytes

        payload = json.dumps({f"{s}|{e}": v for (s, e), v in sorted(self.pending.items())}, indent=2).encode()
        try:
            _atomic_write_bytes(self.out / PENDING, lambda f: f.write(payload))
        except OSError as e:
            raise OutputError(
                f"{self.out / PENDING}: cannot write ({e.strerror}); expected a writable directory"
            ) from None
        self._pending0 = dict(self.pending)

    def new_id(self) -> int:
        eid = max(self.ids) + 1 if self.ids else 0
        self.ids.add(eid)
        return eid

    # ------------------------------------------------------------------ checks against what is there
    def check_meta(self, meta: DatasetMeta) -> DatasetMeta:
        """The dataset meta after adding ``meta``'s episodes (cameras, image size, joints must agree)."""
        if self.meta is None:
            self.meta = meta
            return meta
        for key in ("camera_names", "image_size", "arm_joint_names", "hand_joint_names"):
            if getattr(self.meta, key) != getattr(meta, key):
                raise OutputError(
                    f"{self.out / 'meta.json'}: {key} is {getattr(self.meta, key)!r} but the recording has "
                    f"{getattr(meta, key)!r}; expected the same (convert into another --out)"
                )
        self.meta.tasks = sorted(set(self.meta.tasks) | set(meta.tasks))
        if self.meta.reward != meta.reward:  # a changed reward config: episodes of both definitions may remain,
            self.meta.reward = None  # so the dataset no longer records one (``bora train online`` then warns)
        return self.meta

    def check_tmeta(self, tmeta: dict) -> None:
        if self.tmeta is None:
            self.tmeta = tmeta
            return
        for key in ("chunk_size", "action_dim", "state_dim", "z_dim"):
            if self.tmeta.get(key) != tmeta[key]:
                raise OutputError(
                    f"{self.out / 'transitions' / 'meta.json'}: {key} is {self.tmeta.get(key)} but the "
                    f"recording has {tmeta[key]}; expected the same (convert into another --out)"
                )

    # ------------------------------------------------------------------ staging
    def staging(self) -> Path:
        if self.stage is None:
            for parent in self.out.parents:
                if parent.exists() and not parent.is_dir():
                    raise OutputError(f"{self.out}: {parent} is a file; expected a writable directory")
            try:
                if self.out.is_dir():
                    self.stage = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.out))
                else:
                    self.out.parent.mkdir(parents=True, exist_ok=True)
                    self.stage = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.staging-", dir=self.out.parent))
            except OSError as e:
                raise OutputError(
                    f"{self.out}: cannot write there ({e.strerror}); expected a writable directory"
                ) from None
        return self.stage

    def add(self, eid: int, tinfo: dict, replaced: dict | None) -> None:
        self.staged.append((eid, tinfo, replaced))
        self.known[(str(tinfo.get("session_id", "")), int(tinfo["source_episode_id"]))] = tinfo
        self.by_hash[tinfo["content_hash"]] = tinfo

    def abort(self) -> None:
        if self.stage is not None:
            shutil.rmtree(self.stage, ignore_errors=True)
            self.stage = None

    def commit(self, reason: dict[int, str]) -> None:
        """Move the staged files into OUT (see module docstring); record replaced versions."""
        if self.stage is None:
            return
        stage, self.stage = self.stage, None
        journalled = False
        try:
            if not self.out.exists():
                os.replace(stage, self.out)
                return
            files = sorted(p for p in stage.rglob("*") if p.is_file())
            # data first, then episode JSONs, then transitions JSONs (their presence = a complete episode)
            order = lambda p: (p.suffix == ".json", p.parent.name == "transitions", str(p))  # noqa: E731
            replaced = {eid: old for eid, _, old in self.staged if old is not None}
            for eid, old in replaced.items():
                self._keep_replaced(eid, old)
            lines = []
            for eid, tinfo, old in self.staged:
                if old is not None and old.get("content_hash") != tinfo["content_hash"]:
                    lines.append(
                        json.dumps(
                            {
                                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                "episode_id": eid,
                                "session_id": tinfo.get("session_id"),
                                "source_episode_id": tinfo["source_episode_id"],
                                "replaced_hash": old.get("content_hash"),
                                "by_hash": tinfo["content_hash"],
                                "kept_in": f"replaced/{old.get('content_hash', '')[:12]}",
                                "reason": reason.get(eid, ""),
                                "bags": tinfo.get("bags", []),
                            }
                        )
                    )
            rels = [p.relative_to(stage).as_posix() for p in sorted(files, key=order)]
            write_json(self.out / JOURNAL, {"stage": os.path.relpath(stage, self.out), "files": rels, "ledger": lines})
            journalled = True  # from here on the staged files are the commit's only copy: kept until it is done
            self._apply(stage, rels, lines)
            journalled = False
        except OSError as e:
            raise OutputError(
                f"{e.filename or self.out}: cannot write ({e.strerror}); expected a writable directory"
            ) from None
        finally:
            if not journalled:
                shutil.rmtree(stage, ignore_errors=True)

    def _apply(self, stage: Path, rels: list[str], lines: list[str]) -> None:
        """The journalled part of a commit (also its completion after an interruption): the files ``rels`` still in
        ``stage`` (one moved before the interruption is no longer there) replace those of OUT, after the episode JSON
        side files they rewrite are removed; then the ``lines`` not yet in the ledger are appended and the journal
        is removed. Every step can be done again."""
        for rel in rels:  # old completeness markers first: a rewritten episode is then absent until its new one
            if Path(rel).name.startswith("episode_") and rel.endswith(".json") and (stage / rel).exists():
                (self.out / rel).unlink(missing_ok=True)
        for rel in rels:
            if (stage / rel).exists():
                dst = self.out / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(stage / rel, dst)
        ledger = self.out / LEDGER
        done = set(ledger.read_text().splitlines()) if ledger.exists() else set()
        new = [line for line in lines if line not in done]
        if new:
            with open(ledger, "a") as f:
                f.write("\n".join(new) + "\n")
                f.flush()
                os.fsync(f.fileno())
        (self.out / JOURNAL).unlink()

    def _finish_interrupted_commit(self) -> None:
        """Complete a commit that was interrupted between its first and last change (``OUT/commit.json`` present,
        module docstring), from the files still in its staging directory, then remove that directory."""
        j = _read_json(self.out / JOURNAL, "the journal of an interrupted commit (stage, files, ledger)")
        if j is None:
            return
        stage = self.out / str(j.get("stage") or "")
        if not j.get("stage") or not stage.is_dir() or not isinstance(j.get("files"), list):
            raise OutputError(
                f"{self.out / JOURNAL}: an interrupted commit whose staging directory {stage} is missing; expected it "
                "(the commit is completed from it; else convert the episodes it lists again into another --out)"
            )
        try:
            self._apply(stage, [str(r) for r in j["files"]], [str(x) for x in j.get("ledger") or []])
        except OSError as e:
            raise OutputError(
                f"{e.filename or self.out}: cannot complete an interrupted commit ({e.strerror}); expected a "
                "writable directory"
            ) from None
        shutil.rmtree(stage, ignore_errors=True)

    def _keep_replaced(self, eid: int, old: dict) -> None:
        dst = self.out / "replaced" / str(old.get("content_hash", "unknown"))[:12]
        dst.mkdir(parents=True, exist_ok=True)
        for sub in ("episodes", "transitions"):
            for suffix in (".npz", ".json"):
                src = self.out / sub / f"episode_{eid:06d}{suffix}"
                if src.exists():
                    (dst / sub).mkdir(exist_ok=True)
                    shutil.copy2(src, dst / sub / src.name)


def write_json(path: Path, data: Any) -> None:
    from bora_policy.common.episodes import _atomic_write_bytes, _json_default

    payload = json.dumps(data, indent=2, default=_json_default).encode()
    _atomic_write_bytes(path, lambda f: f.write(payload))
