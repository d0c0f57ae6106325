"""m3restore: text-guided, diffusion-based image restoration with the M3-UNet.

from m3restore import load_pipeline, load_restorer
restorer = load_restorer()             # the shipped bundle + installed specialists, as `m3restore restore`
restored = restorer(image, prompt="street sign")
pipe = load_pipeline()                 # one all-in-one pass of the bundle's own network (--plan none)
"""

__version__ = "0.1.0"

__all__ = ["__version__", "load_pipeline", "load_restorer", "RestorePipeline", "Restorer"]


def __getattr__(name):
    # Lazy: `import m3restore` (and `m3restore --help`) must not import torch.
    if name in ("load_pipeline", "RestorePipeline"):
        from m3restore.pipeline import restore

        return getattr(restore, name)
    if name in ("load_restorer", "Restorer"):
        from m3restore.pipeline import restorer

        return getattr(restorer, name)
    raise AttributeError(f"module 'm3restore' has no attribute {name!r}")
