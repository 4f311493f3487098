"""Attribution methods with the module layout and API of TorchRay's ``torchray.attribution``.

Import the methods from their modules, as with TorchRay, for example
``from xaifast.attribution.grad_cam import grad_cam``.
"""
