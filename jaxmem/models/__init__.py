"""Models as pure functions: params pytree in, arrays out."""
from jaxmem.models import relu_output

__all__ = ["relu_output"]
