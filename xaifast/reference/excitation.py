"""References for the excitation-backprop ops: the normalisation and the final product."""


def ebp_normalize(grad, output, eps=1e-20):
    """``grad / (output + eps)``: the signal divided by the layer's positive-weight response.

    Args:
        grad (Tensor): the incoming excitation, any shape.
        output (Tensor): the layer's response to its input with ``W+`` (no bias), same shape.
        eps (float): added to ``output`` (TorchRay: ``1e-20``).

    Returns:
        Tensor: same shape.
    """
    return grad / (output + eps)


def ebp_product(input, grad):
    """``input * grad``: the excitation of a layer's input from the back-projected ratio.

    Args:
        input (Tensor): the layer's input, any shape.
        grad (Tensor): the back-projected normalised excitation, same shape.

    Returns:
        Tensor: same shape.
    """
    return input * grad
