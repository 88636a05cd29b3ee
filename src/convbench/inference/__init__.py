"""Use what you trained: predictions on new images, evaluation on other data, exports to
ONNX / TorchScript / safetensors, and model cards.

>>> from convbench.inference import predict, evaluate, export, model_card  # doctest: +SKIP
"""

from .card import model_card
from .evaluate import evaluate
from .export import export
from .predict import predict

__all__ = ["evaluate", "export", "model_card", "predict"]
