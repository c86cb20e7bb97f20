"""What a model's outputs mean: the task vocabulary, each task's metric, and detection's decoding.

One list of tasks for the whole toolkit: the examples declare theirs with it, ``convert --task``
accepts its names, the manifest records one, and the daemon and compare choose their
post-processing and metric by it.
"""

from __future__ import annotations

from enum import Enum


class Task(str, Enum):
    CLASSIFICATION = "classification"  # softmax over classes
    BINARY_CLASSIFICATION = "binary-classification"  # one sigmoid unit: P(positive class)
    REGRESSION = "regression"
    DETECTION = "detection"  # grid detector: raw head, decoded + NMS outside the model
    RAW = "raw"  # outputs passed on as they are (a model edgekit knows nothing about)


TASK_NAMES = tuple(task.value for task in Task)
CLASSIFICATION_TASKS = (Task.CLASSIFICATION.value, Task.BINARY_CLASSIFICATION.value)
