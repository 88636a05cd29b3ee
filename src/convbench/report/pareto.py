"""Pareto front of (cost, quality) points."""

from __future__ import annotations

from .fmt import number


def pareto_front(
    points: list[tuple[float, float]], minimize_x: bool = True, maximize_y: bool = True
) -> list[int]:
    """Indices of the non-dominated points, ordered by x (best x first).

    A point is dominated when another point is at least as good on both axes and strictly
    better on one. Points with a missing or non-finite coordinate are never on the front;
    duplicates of a front point are all kept.

    >>> pareto_front([(1, 0.5), (2, 0.9), (3, 0.8), (0.5, 0.2)])
    [3, 0, 1]
    """
    sx = 1.0 if minimize_x else -1.0
    sy = -1.0 if maximize_y else 1.0
    # Transform so that smaller is better on both axes.
    valid = []
    for i, (x, y) in enumerate(points):
        fx, fy = number(x), number(y)
        if fx is not None and fy is not None:
            valid.append((sx * fx, sy * fy, i))
    valid.sort()
    front: list[int] = []
    best_y = float("inf")
    last: tuple[float, float] | None = None
    for x, y, i in valid:
        if y < best_y:
            front.append(i)
            best_y = y
            last = (x, y)
        elif (x, y) == last:
            front.append(i)
    return front
