"""Import zennit (test-only reference LRP) on the CPU build of torch.

zennit imports ``torchvision.models.resnet`` at import time, only to name two ResNet block classes
for its ResNet canonizer. PyPI's torchvision is built against the CUDA torch and does not import
beside torch 2.13.0+cpu, so scripts/setup.sh installs zennit with ``--no-deps``; where torchvision
is missing (or broken), this gives zennit two placeholder classes under those names. Nothing in
hessflow's tests uses the ResNet canonizer.
"""

from __future__ import annotations

import sys
import types


def import_zennit():
    try:
        import torchvision.models.resnet  # noqa: F401
    except Exception:  # missing, or the CUDA build failing to register its ops
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        tv = types.ModuleType("torchvision")
        models = types.ModuleType("torchvision.models")
        resnet = types.ModuleType("torchvision.models.resnet")

        class Bottleneck:  # placeholders: never instantiated by hessflow's tests
            pass

        class BasicBlock:
            pass

        resnet.Bottleneck, resnet.BasicBlock = Bottleneck, BasicBlock
        tv.models, models.resnet = models, resnet
        sys.modules.update({"torchvision": tv, "torchvision.models": models,
                            "torchvision.models.resnet": resnet})
    import zennit
    return zennit
