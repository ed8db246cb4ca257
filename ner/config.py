"""Hydra/OmegaConf glue: resolvers the YAML files use. Config flows one way: YAML -> Hydra -> constructors."""

from __future__ import annotations

from importlib import resources

from omegaconf import OmegaConf


def package_path(relative: str) -> str:
    """Absolute path of a file shipped inside the `ner` package (e.g. `data/sample`)."""
    return str(resources.files("ner").joinpath(relative))


def register_resolvers() -> None:
    """`${ner.package:data/sample}` in YAML -> the folder inside the installed package."""
    if not OmegaConf.has_resolver("ner.package"):
        OmegaConf.register_new_resolver("ner.package", package_path)
