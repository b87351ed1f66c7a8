"""Named partials: one documented function, members with their own names."""

import functools

from jaxnn import initializers
from jaxnn._partials import named_partial


def test_a_named_partial_fixes_keywords_and_carries_its_name_and_doc():
    def power(x, *, exponent):
        return x**exponent

    square = named_partial(power, "square", "The square of ``x``.", exponent=2)
    assert isinstance(square, functools.partial) and square(3) == 9
    assert square.__name__ == "square" and square.__doc__ == "The square of ``x``."


def test_the_initializers_are_named_partials_of_variance_scaling():
    assert initializers.he_normal.__name__ == "he_normal"
    assert initializers.he_normal.func is initializers.variance_scaling
