"""analytic.fit: a formula set's figure read back as a polynomial in the sizes, and where two polynomials differ."""
from analytic import textbook
from analytic.fit import B, D, L, T, V, differences, fit, set_figure


def test_a_polynomial_is_read_back_with_its_fractions():
    assert fit(lambda s: 12 * s[L] * s[D] ** 2 + 2 * s[V] * s[D] + s[B] * s[T] * s[D] / 2) == \
        12 * L * D**2 + 2 * V * D + B * T * D / 2


def test_what_is_no_polynomial_of_that_form_is_none():
    assert fit(lambda s: s[T] ** 3) is None
    assert fit(lambda s: max(s[B], s[T])) is None


def test_the_textbooks_parameter_count_and_where_it_differs():
    theirs = fit(set_figure(textbook, "params"))
    assert theirs == 12 * D**2 * L + 2 * D * L + D * T + 2 * D * V + D
    assert differences(theirs, 12 * D**2 * L + 2 * D * V) == [(D * T, 1, 0), (D * L, 2, 0), (D, 1, 0)]
