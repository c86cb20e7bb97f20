"""The TFLite reader: LiteRT's interpreter at the shapes it allocates, with XNNPACK's delegation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgekit.foreign import LITERT_LOAD, LITERT_RESHAPE, RESHAPE_HINT, mapped
from edgekit.predict.graph.ir import Op, Shapes, Tensor
from edgekit.quiet import XNNPACK_NOTICE, filtered_stderr
from edgekit.runtimes.base import describe_shapes


def read_tflite(path: Path, shapes: Shapes, feeds: Any = None) -> tuple[list[Op], list[Tensor], str]:
    """Every tensor at the shapes LiteRT allocates for ``shapes`` (a dynamic signature's
    placeholder ``[1, 1, 1, 3]`` would price a 220-MMAC network at 5)."""
    from edgekit.runtimes.tflite import interpreter_class

    with mapped(LITERT_LOAD, f"{path.name} is not a readable TFLite model"), filtered_stderr(XNNPACK_NOTICE):
        interpreter = interpreter_class()(model_path=str(path))
    ops_details = interpreter._get_ops_details()  # the only public-enough view of the graph
    resized = any(
        list(detail["shape"]) != list(shapes.get(detail["name"], detail["shape"]))
        for detail in interpreter.get_input_details()
    )
    with mapped(LITERT_RESHAPE, f"{path.name} cannot take input shapes {describe_shapes(shapes)}"):
        _resize(interpreter, shapes)
    undelegated, partitions = _delegation(interpreter)
    run_time_shapes = any(str(op["op_name"]) in RUN_TIME_SHAPE_OPS for op in ops_details)
    if resized or not partitions or run_time_shapes:
        # Shapes from LiteRT's own kernels: inside an XNNPACK partition the tensors of a resized
        # input keep their placeholder sizes after allocation (and after invoke). Only then:
        # LiteRT 2.3's reference kernels abort (SIGABRT, uncatchable) allocating some int8 graphs
        # that XNNPACK takes, such as 150 chained int8 ADDs.
        interpreter = _allocated_without_delegate(path, shapes)
        if run_time_shapes:
            _propagate_run_time_shapes(interpreter, feeds)
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    produced = {int(i) for op in ops_details for i in op["outputs"]}
    graph_inputs = {d["index"] for d in interpreter.get_input_details()}

    def tensor(index: int) -> Tensor:
        d = details[index]
        dtype = np.dtype(d["dtype"])
        shape = tuple(int(x) for x in d["shape"])
        constant = index not in produced and index not in graph_inputs
        return Tensor(str(index), shape, dtype.itemsize, dtype.name, constant)

    ops = [
        Op(
            str(op["op_name"]),
            [tensor(int(i)) for i in op["inputs"] if int(i) >= 0],
            [tensor(int(i)) for i in op["outputs"] if int(i) >= 0],
            {
                "partitions": partitions,
                "channels_last": True,
                **({"undelegated": True} if index in undelegated else {}),
            },
        )
        for index, op in enumerate(ops_details)
    ]
    return ops, [tensor(i) for i in sorted(graph_inputs)], "tflite"


# A graph that computes shapes while it runs (a Keras Dense on a 4-D tensor under a dynamic batch
# becomes SHAPE → GATHER → PACK → RESHAPE around each FULLY_CONNECTED) has tensors that keep a
# placeholder size until an inference sizes them: ConvNeXt-Tiny's pointwise layers read as 27
# MMACs allocated and 4.2 GMACs after one inference.
RUN_TIME_SHAPE_OPS = frozenset({"SHAPE"})


def _propagate_run_time_shapes(interpreter: Any, feeds: Any) -> None:
    """One inference with LiteRT's own kernels, so every tensor has the size it runs at: the
    given feeds where they fit, zeros otherwise (any value sizes a shape-computing graph)."""
    for detail in interpreter.get_input_details():
        shape, dtype = tuple(int(x) for x in detail["shape"]), np.dtype(detail["dtype"])
        given = None if feeds is None else feeds.get(detail["name"])
        value = np.asarray(given) if given is not None else None
        if value is None or value.shape != shape or value.dtype != dtype:
            value = np.zeros(shape, dtype)
        interpreter.set_tensor(detail["index"], value)
    try:
        interpreter.invoke()
    except (RuntimeError, ValueError):  # noqa: S110 - the allocated sizes stay: a lower bound, as before
        pass


def _resize(interpreter: Any, shapes: Shapes) -> None:
    for detail in interpreter.get_input_details():
        want = list(shapes.get(detail["name"], detail["shape"]))
        if list(detail["shape"]) != want:
            interpreter.resize_tensor_input(detail["index"], want)


def _allocated_without_delegate(path: Path, shapes: Shapes) -> Any:
    """An interpreter allocated at ``shapes`` with LiteRT's own kernels: what propagates every
    tensor's shape when the delegate refused the model (or there is none)."""
    from edgekit.runtimes.tflite import interpreter_class

    Interpreter = interpreter_class()  # noqa: N806
    try:
        from ai_edge_litert.interpreter import OpResolverType

        interpreter = Interpreter(
            model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        )
    except (ImportError, TypeError, ValueError):
        interpreter = Interpreter(model_path=str(path))
    with mapped(
        LITERT_RESHAPE, f"{path.name} cannot be prepared at input shapes {describe_shapes(shapes)}", hint=RESHAPE_HINT
    ):
        _resize(interpreter, shapes)
        interpreter.allocate_tensors()
    return interpreter


def _delegation(interpreter: Any) -> tuple[set[int], int]:
    """The XNNPACK delegate's partitioning, read after allocating as LiteRT would."""
    from edgekit.runtimes.tflite import delegation

    try:
        with filtered_stderr(XNNPACK_NOTICE):
            interpreter.allocate_tensors()
        return delegation(interpreter)
    except Exception:  # noqa: BLE001 - a model the delegate refuses is analysed without delegation
        return set(), 0
