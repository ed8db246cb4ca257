"""ner: biomedical named-entity recognition with PyTorch Lightning (JNLPBA, softmax vs CRF heads)."""

__version__ = "0.1.0"
