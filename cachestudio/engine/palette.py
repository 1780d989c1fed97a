"""One palette for the window and the HTML report (no Qt): Okabe & Ito (2008), "Color
Universal Design", colour-blind safe. Colour never stands alone: every token kind has a
shape, every lane a line style and a label, every fault shade a word in its legend."""

from __future__ import annotations

OKABE_ITO: dict[str, str] = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
}
