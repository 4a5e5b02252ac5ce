"""Task heads that take an already built backbone."""

from kerlm.heads.classifier import Classifier

__all__ = ["Classifier"]
