"""m3restore: text-guided, diffusion-based image restoration with the M3-UNet.

from m3restore import load_pipeline
pipe = load_pipeline()                 # the shipped default bundle, best device available
restored = pipe(image, prompt="street sign")
"""

__version__ = "0.1.0"

__all__ = ["__version__", "load_pipeline", "RestorePipeline"]


def __getattr__(name):
    # Lazy: `import m3restore` (and `m3restore --help`) must not import torch.
    if name in ("load_pipeline", "RestorePipeline"):
        from m3restore.pipeline import restore

        return getattr(restore, name)
    raise AttributeError(f"module 'm3restore' has no attribute {name!r}")
