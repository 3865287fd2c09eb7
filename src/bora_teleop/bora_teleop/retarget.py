"""Retargeting human glove angles to robot hand joint targets (pure Python).

A calibrated linear map with per-joint limits::

    q_robot = clip(M @ h + b, lower, upper)          h: human angles (m,), q_robot: (n,)

``M`` [n, m] holds per-joint gains on its non-zero entries and cross-joint *coupling* elsewhere
(e.g. one robot joint driven by the mean of the human PIP and DIP), ``b`` [n] the offsets.

YAML format (``config/retarget_*.yaml``)::

    human_joints: [index_abd, index_mcp, index_pip, index_dip, ...]   # glove angle order (rad)
    robot_joints:                       # one entry per robot hand joint, in command order
      - name: "hand/robot0:FFJ3"
        from: {index_abd: 1.0}          # human joint -> gain (several entries = coupling)
        offset: 0.0                     # rad
        lower: -0.349                   # rad, joint limit (the map output is clamped to it)
        upper: 0.349
      ...

A ``matrix:`` [n][m] list may replace the ``from:`` entries (``offset``/``lower``/``upper`` stay
per joint). The plain-data form of the simulation's operator map (``human_joint_names``,
``robot_joint_names``, ``matrix``, ``offset``) is read too when ``lower``/``upper`` lists are added.
:func:`fit_retarget` calibrates ``M`` and ``b`` from paired samples by least squares,
keeping the sparsity pattern of a template map (which human joints may feed which robot joint).
CLI: ``python -m bora_teleop.retarget fit --pairs pairs.npz --template config/retarget_shadow.yaml
--out calibrated.yaml`` (``pairs.npz`` holds ``human`` [N, m] and ``robot`` [N, n]).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml


@dataclass
class RetargetMap:
    """q_robot = clip(matrix @ h + offset, lower, upper)."""

    human_joints: list[str]
    robot_joints: list[str]
    matrix: np.ndarray
    offset: np.ndarray
    lower: np.ndarray
    upper: np.ndarray

    def __post_init__(self) -> None:
        m, n = len(self.human_joints), len(self.robot_joints)
        self.matrix = np.asarray(self.matrix, dtype=np.float64)
        self.offset = np.asarray(self.offset, dtype=np.float64).reshape(-1)
        self.lower = np.asarray(self.lower, dtype=np.float64).reshape(-1)
        self.upper = np.asarray(self.upper, dtype=np.float64).reshape(-1)
        if self.matrix.shape != (n, m):
            raise ValueError(
                f"retarget matrix: expected shape [{n} robot joints, {m} human joints], "
                f"got {self.matrix.shape}"
            )
        for name, arr in (("offset", self.offset), ("lower", self.lower), ("upper", self.upper)):
            if arr.shape != (n,):
                raise ValueError(
                    f"retarget {name}: expected {n} values (one per robot joint), got {arr.size}"
                )
        if np.any(self.lower > self.upper):
            bad = [self.robot_joints[i] for i in np.flatnonzero(self.lower > self.upper)]
            raise ValueError(f"retarget limits: lower > upper for {bad}")
        for name, arr in (("matrix", self.matrix), ("offset", self.offset)):
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"retarget {name} has non-finite entries")
        if len(set(self.human_joints)) != m or len(set(self.robot_joints)) != n:
            raise ValueError("retarget: human_joints and robot_joints must be unique names")

    @property
    def n_human(self) -> int:
        return len(self.human_joints)

    @property
    def n_robot(self) -> int:
        return len(self.robot_joints)

    def apply(self, human, clamp: bool = True) -> np.ndarray:
        """Robot hand targets (n,) for human angles (m,) or a batch [N, m] -> [N, n]."""
        h = np.asarray(human, dtype=np.float64)
        if h.shape[-1] != self.n_human:
            raise ValueError(
                f"retarget: expected {self.n_human} human angles ({self.human_joints}), got {h.shape[-1]}"
            )
        q = h @ self.matrix.T + self.offset
        return np.clip(q, self.lower, self.upper) if clamp else q

    # ------------------------------------------------------------------ YAML
    @classmethod
    def from_dict(cls, d: dict, where: str = "retarget") -> RetargetMap:
        if not isinstance(d, dict):
            raise ValueError(f"{where}: expected a mapping with human_joints and robot_joints")
        if "human_joint_names" in d:  # the plain-data form of bora_sim.operator.RetargetMap.to_dict()
            for key in ("robot_joint_names", "matrix", "lower", "upper"):
                if key not in d:
                    raise ValueError(f"{where}: missing field '{key}' (matrix form needs limits too)")
            n = len(d["robot_joint_names"])
            return cls(
                [str(h) for h in d["human_joint_names"]],
                [str(r) for r in d["robot_joint_names"]],
                d["matrix"],
                d.get("offset", [0.0] * n),
                d["lower"],
                d["upper"],
            )
        for key in ("human_joints", "robot_joints"):
            if key not in d:
                raise ValueError(f"{where}: missing field '{key}'")
        human = [str(h) for h in d["human_joints"]]
        joints = d["robot_joints"]
        if not isinstance(joints, list) or not joints:
            raise ValueError(f"{where}.robot_joints: expected a non-empty list of joint entries")
        n, m = len(joints), len(human)
        idx = {h: i for i, h in enumerate(human)}
        matrix = np.zeros((n, m))
        names, offset, lower, upper = [], np.zeros(n), np.zeros(n), np.zeros(n)
        given = d.get("matrix")
        if given is not None:
            matrix = np.asarray(given, dtype=np.float64)
        for j, e in enumerate(joints):
            w = f"{where}.robot_joints[{j}]"
            if not isinstance(e, dict) or "name" not in e:
                raise ValueError(f"{w}: expected a mapping with 'name'")
            for key in ("lower", "upper"):
                if key not in e:
                    raise ValueError(f"{w} ({e['name']}): missing joint limit '{key}' (rad)")
            names.append(str(e["name"]))
            offset[j] = float(e.get("offset", 0.0))
            lower[j], upper[j] = float(e["lower"]), float(e["upper"])
            if given is None:
                src = e.get("from", {})
                if not isinstance(src, dict):
                    raise ValueError(f"{w}.from: expected a mapping human_joint -> gain, got {src!r}")
                for h, g in src.items():
                    if h not in idx:
                        raise ValueError(f"{w}.from: unknown human joint {h!r}; known: {human}")
                    matrix[j, idx[h]] = float(g)
            elif "from" in e:
                raise ValueError(f"{w}: give either 'matrix' at the top level or 'from' per joint, not both")
        return cls(human, names, matrix, offset, lower, upper)

    def to_dict(self) -> dict:
        joints = []
        for j, name in enumerate(self.robot_joints):
            src = {
                h: float(self.matrix[j, i])
                for i, h in enumerate(self.human_joints)
                if self.matrix[j, i] != 0.0
            }
            joints.append(
                {
                    "name": name,
                    "from": src,
                    "offset": float(self.offset[j]),
                    "lower": float(self.lower[j]),
                    "upper": float(self.upper[j]),
                }
            )
        return {"human_joints": list(self.human_joints), "robot_joints": joints}

    @classmethod
    def load(cls, path: str | Path) -> RetargetMap:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"retarget map file not found: {path}")
        with open(path) as f:
            return cls.from_dict(yaml.safe_load(f), where=str(path))

    def save(self, path: str | Path) -> None:
        with open(path, "w") as f:
            yaml.safe_dump(self.to_dict(), f, sort_keys=False)

    @classmethod
    def identity(cls, names: list[str], lower, upper) -> RetargetMap:
        """Glove already in robot joint space (e.g. a robot-hand teleop device)."""
        n = len(names)
        return cls(list(names), list(names), np.eye(n), np.zeros(n), lower, upper)


def fit_retarget(
    human: np.ndarray,
    robot: np.ndarray,
    template: RetargetMap | None = None,
    human_joints: list[str] | None = None,
    robot_joints: list[str] | None = None,
    lower=None,
    upper=None,
    ridge: float = 0.0,
) -> tuple[RetargetMap, dict]:
    """Least-squares calibration of ``M`` and ``b`` from paired samples.

    ``human`` [N, m] glove angles, ``robot`` [N, n] the robot hand angles they should produce
    (e.g. the operator mimics shown robot poses). Each robot joint j is fitted independently on
    the human joints that may feed it (non-zero entries of ``template.matrix[j]``; all of them
    without a template) plus an intercept: min ||H_j w - r_j||^2 + ridge ||w||^2. Names and
    limits come from the template unless given. Returns the map and a report with the per-joint
    RMS residual (rad) and the sample count.
    """
    H = np.asarray(human, dtype=np.float64)
    R = np.asarray(robot, dtype=np.float64)
    if H.ndim != 2 or R.ndim != 2 or H.shape[0] != R.shape[0]:
        raise ValueError(
            f"fit_retarget: expected human [N, m] and robot [N, n] with the same N, got {H.shape}, {R.shape}"
        )
    if not (np.all(np.isfinite(H)) and np.all(np.isfinite(R))):
        raise ValueError("fit_retarget: samples contain NaN/inf")
    N, m = H.shape
    n = R.shape[1]
    if template is not None:
        if template.matrix.shape != (n, m):
            raise ValueError(
                f"fit_retarget: template maps {template.n_human} -> {template.n_robot} joints, "
                f"samples are {m} -> {n}"
            )
        human_joints = human_joints or template.human_joints
        robot_joints = robot_joints or template.robot_joints
        lower = template.lower if lower is None else lower
        upper = template.upper if upper is None else upper
        mask = template.matrix != 0.0
    else:
        mask = np.ones((n, m), dtype=bool)
    human_joints = human_joints or [f"h{i}" for i in range(m)]
    robot_joints = robot_joints or [f"r{j}" for j in range(n)]
    lower = np.full(n, -np.inf) if lower is None else lower
    upper = np.full(n, np.inf) if upper is None else upper
    matrix, offset, rms = np.zeros((n, m)), np.zeros(n), np.zeros(n)
    for j in range(n):
        cols = np.flatnonzero(mask[j])
        if N < len(cols) + 1:
            raise ValueError(
                f"fit_retarget: robot joint {robot_joints[j]} needs >= {len(cols) + 1} samples, got {N}"
            )
        A = np.concatenate([H[:, cols], np.ones((N, 1))], axis=1)
        reg = np.sqrt(ridge) * np.eye(len(cols) + 1)
        reg[-1, -1] = 0.0  # the offset is not regularised
        sol, *_ = np.linalg.lstsq(
            np.concatenate([A, reg]), np.concatenate([R[:, j], np.zeros(len(cols) + 1)]), rcond=None
        )
        matrix[j, cols], offset[j] = sol[:-1], sol[-1]
        rms[j] = float(np.sqrt(np.mean((A @ sol - R[:, j]) ** 2)))
    rmap = RetargetMap(list(human_joints), list(robot_joints), matrix, offset, lower, upper)
    return rmap, {
        "samples": N,
        "rms_per_joint": dict(zip(robot_joints, rms.tolist())),
        "rms_max": float(rms.max()),
    }


SIM_HEADER = """\
# Retarget map: human glove angles (rad) -> Shadow hand joint targets (rad) of the simulated robot.
# q_robot = clip(M @ h + offset, lower, upper); `from` lists the human joints feeding each robot joint
# with their gains (several = coupling). Format: bora_teleop/retarget.py. GENERATED from the simulation's
# scripted operator map (bora_sim.operator.shadow_glove_map: the map and the Shadow actuator ctrlrange) by
#   bora sim glove-map --out /tmp/m.yaml
#   python -m bora_teleop.retarget convert --sim-header --map /tmp/m.yaml --out config/retarget_shadow.yaml
# so the operator's glove stream retargets to the hand commands it meant. For a real glove, calibrate:
#   python -m bora_teleop.retarget fit --pairs pairs.npz --template config/retarget_shadow.yaml --out my.yaml
# human_joints is the order of UDP glove packets; /glove/joint_states is matched by name.
"""


def main(argv: list[str] | None = None) -> int:
    """Calibration CLI: fit a retarget map from paired glove/robot samples."""
    p = argparse.ArgumentParser(prog="python -m bora_teleop.retarget", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fit", help="least-squares fit of gains/offsets/coupling from paired samples")
    f.add_argument("--pairs", required=True, help=".npz with arrays 'human' [N, m] and 'robot' [N, n] (rad)")
    f.add_argument(
        "--template", required=True, help="retarget YAML giving names, limits and the sparsity pattern"
    )
    f.add_argument("--out", required=True, help="output retarget YAML")
    f.add_argument("--ridge", type=float, default=0.0, help="L2 regularisation of the gains (default 0)")
    g = sub.add_parser(
        "convert", help="rewrite a map (any accepted form, e.g. `bora sim glove-map`'s) in the per-joint form"
    )
    g.add_argument("--map", required=True, help="input retarget YAML")
    g.add_argument("--out", required=True)
    g.add_argument("--sim-header", action="store_true", help="start the file with the simulated Shadow map's header")
    a = sub.add_parser("apply", help="print the robot targets for one vector of human angles")
    a.add_argument("--map", required=True)
    a.add_argument("angles", type=float, nargs="+")
    args = p.parse_args(argv)
    if args.cmd == "fit":
        data = np.load(args.pairs)
        for key in ("human", "robot"):
            if key not in data:
                print(
                    f"error: {args.pairs} has no array '{key}' (keys: {list(data.keys())})", file=sys.stderr
                )
                return 2
        rmap, report = fit_retarget(
            data["human"], data["robot"], template=RetargetMap.load(args.template), ridge=args.ridge
        )
        rmap.save(args.out)
        print(
            f"fitted {rmap.n_human} -> {rmap.n_robot} joints on {report['samples']} samples, "
            f"max RMS residual {report['rms_max']:.4f} rad -> {args.out}"
        )
        return 0
    if args.cmd == "convert":
        rmap = RetargetMap.load(args.map)
        with open(args.out, "w") as fh:
            fh.write(SIM_HEADER if args.sim_header else "")
            yaml.safe_dump(rmap.to_dict(), fh, sort_keys=False, default_flow_style=None, width=110)
        print(f"wrote {rmap.n_human} -> {rmap.n_robot} joint map to {args.out}")
        return 0
    rmap = RetargetMap.load(args.map)
    print(" ".join(f"{n}={v:.4f}" for n, v in zip(rmap.robot_joints, rmap.apply(np.asarray(args.angles)))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
