"""The start and shutdown sequence every BORA node shares, and parameters declared with descriptors.

The one module of ``bora_policy.common`` that imports rclpy (the nodes' lifecycle helper): the rest of
``common`` stays rclpy-free. Three pieces:

* :func:`declare_params` declares :class:`~bora_policy.common.graph_params.ParamSpec` s with a
  ``ParameterDescriptor`` (description, integer / floating-point range, the allowed strings as
  ``additional_constraints``, read-only), so ``ros2 param describe`` shows them; a value out of range or of
  the wrong type is refused at start with ONE line naming the node, the parameter and what was expected
  (:class:`StartupError`).
* :func:`declare_graph_params`: the read-only ``graph_file`` parameter and the four graph-wide parameters
  (``control_hz``, ``chunk_size``, ``cameras``, ``residual_scale``) with their values from that file; a
  node given another value than the file's refuses to start (no node on another time base).
* :func:`run_node` (executor-spun nodes: init, construct, spin, Ctrl-C / external shutdown, destroy,
  ``try_shutdown``; a refused start exits 2 with its one line, no traceback) and :func:`ros_session`
  (nodes with their own loop: the recorder, the trainer, the live viewer; SIGINT / SIGTERM set ``stop``).
"""

from __future__ import annotations

import contextlib
import faulthandler
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any

import rclpy
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.parameter import Parameter

from bora_policy.common.graph_params import (
    GRAPH_PARAM_NAMES,
    GRAPH_SPECS,
    GraphParams,
    GraphParamsError,
    ParamSpec,
    load_graph_params,
)
from bora_policy.graph import STACK_DUMP_SIGNAL

EXIT_REFUSED = 2  # exit code of a node that refused to start (bad parameter, missing file)
# A node's teardown after its spin (executor, node, context, interpreter exit) normally takes well under a
# second; past this, faulthandler writes every thread's stack and leaves with exit code 1 (``bora up`` would
# otherwise send SIGTERM at 5 s and SIGKILL at 8 s: supervisor.STOP_STEPS). Ours: 4 s.
TEARDOWN_TIMEOUT_S = 4.0


def guard_teardown(timeout_s: float = TEARDOWN_TIMEOUT_S) -> None:
    """Arm ``faulthandler.dump_traceback_later(exit=True)`` for the rest of the process's life: if destroying
    the node, shutting the context down or the interpreter's exit hangs (a DDS teardown was seen to, once in
    CI: the supervisor needed SIGKILL), every thread's stack goes to stderr and the process leaves with exit
    code 1 after ``timeout_s``. Called once the node's work is done (its spin has ended, its files are
    closed), so nothing is cut short."""
    faulthandler.dump_traceback_later(timeout_s, exit=True)


def dump_stacks_on_signal() -> None:
    """Let :data:`STACK_DUMP_SIGNAL` write every thread's Python stack to stderr (``faulthandler``: from a C
    signal handler, so it works while the main thread is stuck in C code, e.g. a DDS call). The supervisor
    sends it to a node that did not stop after SIGINT and SIGTERM, so the log says where the node hung."""
    if threading.current_thread() is threading.main_thread():
        faulthandler.register(STACK_DUMP_SIGNAL, all_threads=True, chain=False)

GRAPH_FILE_SPEC = ParamSpec(
    "graph_file",
    "",
    "graph-wide parameter file (control_hz, chunk_size, cameras, residual_scale); '': config/graph.yaml of "
    "the repository or of share/bora_policy/config",
)


class StartupError(RuntimeError):
    """A node refused to start; the message is one line naming the node, the parameter and the expectation."""


def descriptor(spec: ParamSpec) -> ParameterDescriptor:
    """The ``ParameterDescriptor`` of a spec (type from its default; ranges only on scalars, as ROS applies them)."""
    d = ParameterDescriptor(
        name=spec.name,
        type=Parameter.Type.from_parameter_value(spec.default).value,
        description=spec.description,
        read_only=spec.read_only,
    )
    if spec.range is not None and isinstance(spec.default, float):
        d.floating_point_range = [FloatingPointRange(from_value=float(spec.range[0]), to_value=float(spec.range[1]))]
    elif spec.range is not None and isinstance(spec.default, int) and not isinstance(spec.default, bool):
        d.integer_range = [IntegerRange(from_value=int(spec.range[0]), to_value=int(spec.range[1]), step=1)]
    if spec.expected():
        d.additional_constraints = spec.expected() + (" (each element)" if isinstance(spec.default, list) else "")
    return d


def declare_params(node, specs: Iterable[ParamSpec]) -> dict[str, Any]:
    """Declare every spec with its descriptor; their values (override, else default), each checked."""
    out: dict[str, Any] = {}
    overrides = getattr(node, "_parameter_overrides", {})
    for spec in specs:
        given = overrides.get(spec.name)
        # an integer written for a float parameter (control_hz:=20) is that float, not a type error
        if given is not None and isinstance(spec.default, float) and given.type_ == Parameter.Type.INTEGER:
            overrides[spec.name] = Parameter(spec.name, value=float(given.value))
            given = overrides[spec.name]
        try:
            value = node.declare_parameter(spec.name, spec.default, descriptor(spec)).value
        except InvalidParameterValueException as e:
            shown = given.value if given is not None else spec.default
            raise StartupError(
                f"{node.get_name()}: parameter {spec.name} = {shown!r} is out of range: expected {spec.expected()}"
            ) from e
        except InvalidParameterTypeException as e:
            shown = given.value if given is not None else "?"
            raise StartupError(
                f"{node.get_name()}: parameter {spec.name} = {shown!r}: expected a value of type "
                f"{type(spec.default).__name__} {spec.expected()}".rstrip()
            ) from e
        try:
            spec.check(list(value) if isinstance(value, (list, tuple)) else value, node.get_name())
        except GraphParamsError as e:
            raise StartupError(str(e)) from e
        out[spec.name] = list(value) if isinstance(value, (list, tuple)) else value
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return list(a) == list(b) if isinstance(a, (list, tuple)) else a == b


def declare_graph_params(node) -> GraphParams:
    """``graph_file`` and the graph-wide parameters (read-only, values from the file); a node given another
    value of one of them than the file's refuses to start."""
    path = declare_params(node, [GRAPH_FILE_SPEC])["graph_file"]
    try:
        graph = load_graph_params(path or None)
    except GraphParamsError as e:
        raise StartupError(f"{node.get_name()}: parameter graph_file: {e}") from e
    for name in GRAPH_PARAM_NAMES:
        want = getattr(graph, name)
        want = list(want) if isinstance(want, tuple) else want
        got = declare_params(node, [replace(GRAPH_SPECS[name], default=want)])[name]
        if not _same(got, want):
            raise StartupError(
                f"{node.get_name()}: parameter {name} = {got!r} differs from the graph file {graph.source} "
                f"({want!r}): graph-wide parameters are set only there (bora up --control-hz / --graph write "
                "a resolved copy for every node)"
            )
    return graph


def _refused(e: BaseException) -> int:
    print(f"refused to start: {e}", file=sys.stderr, flush=True)
    return EXIT_REFUSED


def run_node(factory: Callable[[], Any], args: list[str] | None = None, *, hard_exit: bool = False) -> int:
    """Init rclpy, build the node, spin it on one ``SingleThreadedExecutor`` until Ctrl-C or an external
    shutdown, then shut down in order (executor, node, context). A :class:`StartupError` (or a
    ``ValueError`` / ``FileNotFoundError`` raised while building the node) exits ``EXIT_REFUSED`` with one
    line. ``hard_exit``: leave with ``os._exit`` after the clean ROS shutdown (with torch loaded, Python's
    final garbage collection was seen to hang after rclpy had shut down, so the supervisor needed SIGKILL)."""
    if hard_exit:
        try:
            rc = run_node(factory, args)
        except BaseException:  # noqa: BLE001 - e.g. a shutdown during start-up: report, then exit
            import traceback

            traceback.print_exc()
            rc = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)
    dump_stacks_on_signal()
    rclpy.init(args=args if args is not None else sys.argv)
    node = None
    ex = SingleThreadedExecutor()
    rc = 0
    try:
        try:
            node = factory()
        except (StartupError, GraphParamsError, ValueError, FileNotFoundError) as e:
            return _refused(e)
        ex.add_node(node)
        ex.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok():
            raise
        # a callback interrupted by the shutdown itself (SIGINT while a message was being taken): not an error
    finally:
        guard_teardown()
        ex.shutdown(timeout_sec=2.0)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return rc


class Session:
    """A node with its own loop (:func:`ros_session`): ``stop`` is set by SIGINT / SIGTERM."""

    def __init__(self, node, stop: threading.Event):
        self.node, self.stop = node, stop

    def spin(self, duration_s: float = 0.0, executor=None) -> None:
        """Spin until ``stop`` is set, the context shuts down or ``duration_s`` (> 0) passed."""
        end = time.monotonic() + duration_s if duration_s > 0 else None
        while not self.stop.is_set() and rclpy.ok() and (end is None or time.monotonic() < end):
            if executor is None:
                rclpy.spin_once(self.node, timeout_sec=0.1)
            else:
                executor.spin_once(timeout_sec=0.1)


@contextlib.contextmanager
def ros_session(node_name: str, args: list[str], *, handle_signals: bool = True) -> Iterator[Session]:
    """Init rclpy with ``args`` (a program name + ``--ros-args ...``), create the node ``node_name`` and yield a
    :class:`Session`; on exit destroy the node and shut the context down. ``handle_signals``: SIGINT / SIGTERM
    set ``session.stop`` (the caller closes its files in order) instead of raising KeyboardInterrupt."""
    dump_stacks_on_signal()
    rclpy.init(args=args)
    stop = threading.Event()
    old = {}
    if handle_signals:
        old = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    node = None
    try:
        node = rclpy.create_node(node_name)
        yield Session(node, stop)
    finally:
        stop.set()
        guard_teardown()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
        for s, h in old.items():
            signal.signal(s, h)


def start_main(body: Callable[[], int]) -> int:
    """Run a node's ``main`` body; a refused start (:class:`StartupError`, :class:`GraphParamsError`) exits
    ``EXIT_REFUSED`` with its one line instead of a traceback."""
    try:
        return body()
    except (StartupError, GraphParamsError) as e:
        return _refused(e)
