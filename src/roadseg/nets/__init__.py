"""Networks: a registry by name (`create`, `names`, `register`) and one module per network.

``unet`` (the notebook's U-Net, `roadseg.nets.unet`) is the default everywhere. To add a network,
write a module here with a `SegNet` subclass decorated with ``@register("name")`` and import it
below; `tests/nets/test_contract.py` then runs every check on it with no further test code.

Usage::

    from roadseg import nets
    net = nets.create("unet", num_classes=23)      # nets.names() -> ['unet', ...]
"""
from .base import SegNet, check_size, count_parameters
from .registry import DEFAULT, accepted_settings, create, get, names, register
from . import dabnet, ensemble, fastunet, resunet, smp, unet  # noqa: F401  (importing a network module registers it)
from .unet import UNet

__all__ = ["SegNet", "UNet", "DEFAULT", "accepted_settings", "check_size", "count_parameters", "create", "get",
           "names", "register"]
