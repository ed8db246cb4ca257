"""ner: biomedical named-entity recognition with PyTorch Lightning (JNLPBA, softmax vs CRF heads)."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """`ner.Predictor`, imported on first use: `import ner` stays cheap (no torch) for the command lines."""
    if name == "Predictor":
        from ner.inference.predictor import Predictor

        return Predictor
    raise AttributeError(f"module 'ner' has no attribute {name!r}")
